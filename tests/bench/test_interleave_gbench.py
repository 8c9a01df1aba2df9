#!/usr/bin/env python3
"""tests/bench/test_interleave_gbench.py — bench/interleave_gbench.py's arithmetic, on a fake
Google Benchmark binary whose times are known.

The fake binary prints one round's JSON per call (round 1, 2, 3 from a counter file), so the
lowest, the median, kmm / mimalloc and --spread's max / min and largest deviation from the
mean are all fixed numbers; a row 28.6 % off its mean must be reported outside +-20 %.

Depends on: Python 3's standard library. Usage: test_interleave_gbench.py PATH/TO/interleave_gbench.py
"""
import os
import subprocess
import sys
import tempfile

FAKE = r'''#!/usr/bin/env python3
import json, os, sys
counter = os.environ["FAKE_GBENCH_COUNTER"]
n = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(n + 1))
times = {"hot/kmm/16/threads:2": [4.0, 4.4, 4.2],
         "hot/mimalloc/16/threads:2": [3.0, 3.0, 3.3],
         "batch/kmm/8/threads:2": [100.0, 150.0, 100.0]}
print(json.dumps({"benchmarks": [{"name": k, "run_type": "iteration", "cpu_time": v[n % 3]}
                                 for k, v in times.items()]}))
'''


def main():
    tool = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        fake = os.path.join(d, "fake-bench")
        with open(fake, "w") as f:
            f.write(FAKE)
        os.chmod(fake, 0o755)
        env = dict(os.environ, FAKE_GBENCH_COUNTER=os.path.join(d, "rounds"))
        out = subprocess.run([sys.executable, tool, "--rounds", "3", "--spread", fake], env=env,
                             check=True, capture_output=True, text=True).stdout
    want = [
        f"| hot/kmm/16/threads:2 | {fake} | 4.00 | 4.20 |",
        f"| hot 16 B threads:2 | {fake} | 1.33 |",
        f"| batch/kmm/8/threads:2 | {fake} | 100.00 / 150.00 / 100.00 | 1.50 | 28.6 % | **no** |",
        f"| hot/kmm/16/threads:2 | {fake} | 4.00 / 4.40 / 4.20 | 1.10 | 4.8 % | yes |",
        "2 of 3 rows within +-20 % of their mean",
    ]
    missing = [w for w in want if w not in out]
    if missing:
        print(out)
        sys.exit("missing from the output:\n" + "\n".join(missing))
    print("interleave_gbench: lowest, median, ratio and spread as computed by hand")


if __name__ == "__main__":
    main()
