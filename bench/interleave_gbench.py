#!/usr/bin/env python3
"""bench/interleave_gbench.py — two or more builds of a Google Benchmark binary, run in turn.

What it does: runs each binary once per round (binary A, then B, ..., then the next round),
for --rounds rounds, with the same --benchmark_filter and --benchmark_min_time, and prints for
every benchmark and binary the lowest and the median CPU time over the rounds. When the names
follow kmm-bench-kmalloc's WORKLOAD/ALLOCATOR/SIZE/threads:N, it also prints kmm / mimalloc
per binary from the lowest times. On a shared VM whose speed drifts 10-50 % over minutes, the
lowest of interleaved runs compares builds; one run of each does not (docs/BENCHMARKS.md).

With --spread it also prints how far each row's rounds lie apart: max / min, and the largest
deviation of one round from the rounds' mean, in per cent, against --tolerance (issue 16's
"2-thread rows stable to +-20 % across three runs" is one binary, --rounds 3 --spread).

Depends on: Python 3's standard library, and the binaries' --benchmark_format=json.

    python3 bench/interleave_gbench.py --rounds 4 \\
        --filter '(hot|batch)/(kmm|mimalloc)/[0-9]+/threads:1$' /tmp/bench-old build/bin/kmm-bench-kmalloc
    python3 bench/interleave_gbench.py --rounds 3 --spread \
        --filter '(hot|batch)/(kmm|mimalloc)/[0-9]+/threads:2$' build/bin/kmm-bench-kmalloc
"""
import argparse
import collections
import json
import statistics
import subprocess
import sys


def run_once(binary, bench_filter, min_time):
    out = subprocess.run([binary, f"--benchmark_filter={bench_filter}", f"--benchmark_min_time={min_time}",
                          "--benchmark_format=json"], check=True, capture_output=True, text=True).stdout
    return {b["name"]: b["cpu_time"] for b in json.loads(out)["benchmarks"] if b.get("run_type") != "aggregate"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--filter", default=".")
    ap.add_argument("--min-time", default="0.2")
    ap.add_argument("--spread", action="store_true", help="print each row's spread over the rounds")
    ap.add_argument("--tolerance", type=float, default=20.0, help="--spread's bound, per cent of the mean")
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    times = collections.defaultdict(list)  # (benchmark, binary) -> CPU times
    for _ in range(args.rounds):
        for b in args.binaries:
            for name, t in run_once(b, args.filter, args.min_time).items():
                times[(name, b)].append(t)
    if not times:
        sys.exit("no benchmark matched the filter")
    print(f"| benchmark | binary | lowest | median ({args.rounds} rounds) |\n|---|---|---|---|")
    for (name, b), v in sorted(times.items()):
        print(f"| {name} | {b} | {min(v):.2f} | {statistics.median(v):.2f} |")
    ratios = []
    for (name, b), v in sorted(times.items()):
        parts = name.split("/")
        if len(parts) == 4 and parts[1] == "kmm":
            peer = times.get(("/".join([parts[0], "mimalloc"] + parts[2:]), b))
            if peer:
                ratios.append(f"| {parts[0]} {parts[2]} B {parts[3]} | {b} | {min(v) / min(peer):.2f} |")
    if ratios:
        print("\n| kmm / mimalloc (lowest) | binary | ratio |\n|---|---|---|")
        print("\n".join(ratios))
    if args.spread:
        print_spread(times, args.tolerance)


def print_spread(times, tolerance):
    """Each row's rounds: max / min and the largest deviation from their mean, per cent."""
    print(f"\n| benchmark | binary | rounds | max / min | largest deviation from the mean | within +-{tolerance:g} % |")
    print("|---|---|---|---|---|---|")
    outside = 0
    for (name, b), v in sorted(times.items()):
        mean = statistics.fmean(v)
        dev = max(abs(x - mean) for x in v) / mean * 100.0
        ok = dev <= tolerance
        outside += not ok
        rounds = " / ".join(f"{x:.2f}" for x in v)
        print(f"| {name} | {b} | {rounds} | {max(v) / min(v):.2f} | {dev:.1f} % | {'yes' if ok else '**no**'} |")
    print(f"\n{len(times) - outside} of {len(times)} rows within +-{tolerance:g} % of their mean")


if __name__ == "__main__":
    main()
