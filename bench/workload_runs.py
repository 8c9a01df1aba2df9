"""What bench/pair_workloads.py and bench/run_scaling.py share: where the peer allocators'
Debian libraries are, and one run of kmm-workloads under a preloaded library, parsed.

Depends on: the standard library only. Imported from the scripts' own folder (python3 puts a
script's folder first on sys.path).
"""

import os
import subprocess

# The peers' libraries (Debian's libmimalloc2.0, libjemalloc2, libtcmalloc-minimal4).
PEERS = {
    "mimalloc": "libmimalloc.so.2",
    "jemalloc": "libjemalloc.so.2",
    "tcmalloc": "libtcmalloc_minimal.so.4",
}


def peer_libdir():
    """The folder of the host's libraries: /usr/lib/<multiarch>."""
    try:
        arch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    except OSError:
        arch = ""
    return "/usr/lib/" + (arch or "x86_64-linux-gnu")


def run_workload(binary, preload, args, runtime=None):
    """binary ARGS with preload in LD_PRELOAD ('' for glibc) and runtime (a folder, or None)
    first in LD_LIBRARY_PATH: (the result line's fields as a dict of strings, None), or
    (None, why) when the run failed or printed no result line."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    if runtime:
        env["LD_LIBRARY_PATH"] = runtime + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    p = subprocess.run([binary] + list(args), capture_output=True, text=True, env=env, check=False)
    lines = [l for l in p.stdout.splitlines() if l.startswith("workload=")]
    if p.returncode != 0 or not lines:
        return None, f"rc {p.returncode}: " + (p.stderr.strip()[-300:] or "no result line")
    fields = {}
    for kv in lines[-1].split():
        if "=" in kv:
            k, v = kv.split("=", 1)
            fields[k] = v
    return fields, None
