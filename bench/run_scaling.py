#!/usr/bin/env python3
"""Thread scaling of whole allocators: bench/workloads at 1, 2, 4, 8, 16 threads (issue 16).

Runs kmm-workloads under glibc, mimalloc, tcmalloc, jemalloc and kmm (LD_PRELOAD), every
allocator in one run, and prints per workload a Markdown table of throughput (millions of
malloc/free/realloc calls a second, the median of the repetitions) with kmm's ratio to each
peer and each allocator's speedup over its own one-thread run.

Weak scaling: every thread does the same work at every thread count. The workloads that split
a fixed total among their threads (larson, xmalloc, pool, small, realloc, fragment, huge) are
given SCALE x THREADS; tight, bigchurn and threads already give every thread its own share.
Throughput is then ops / wall seconds, ops being the workload's own count (kmm-workloads'
ops= field), so a run that scales perfectly keeps its wall time and multiplies its throughput.

The order is repetition-major: the first repetition completes every (workload, threads,
allocator) cell before the second starts, so a run stopped by --budget-s still gives whole
tables; the allocators' order rotates from cell to cell. Each run's line is appended to --out
(JSON lines) as it finishes.

A machine without the build or the peers (the lent 16-core device: nothing can be installed
there) gets a kit: --make-kit DIR copies kmm-workloads, libkmm-preload.so, the peers' libraries
and every shared library they need beyond the C library into DIR; --kit DIR runs from it.

    python3 bench/run_scaling.py --threads 1,2                       # here: 2 cores
    python3 bench/run_scaling.py --make-kit build/scaling-kit        # then, on the device:
    python3 bench/run_scaling.py --kit build/scaling-kit --budget-s 360 --out $OUT/scaling.jsonl

Standard library only.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

from workload_runs import PEERS, peer_libdir, run_workload
# Workloads whose total work is split among their threads: given SCALE x THREADS.
SPLIT = {"larson", "xmalloc", "pool", "small", "realloc", "fragment", "huge"}
# One thread's work, as kmm-workloads' SCALE, for a run of 0.1-0.3 s under mimalloc on one
# thread of the 2-core development VM (shorter runs measure the process's start); --scale
# multiplies it.
WORK = {"larson": 8, "xmalloc": 1, "pool": 4, "threads": 8, "tight": 1, "small": 2, "realloc": 8, "fragment": 1,
        "bigchurn": 1, "huge": 1}
# The C library and the loader: the device's own are used, never copies.
SYSTEM_LIBS = ("libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux", "linux-vdso")


def locate(args):
    """The workload binary, the library directory for LD_LIBRARY_PATH (or None), and each
    allocator's preload path ('' for glibc); allocators not found are left out, with a note."""
    if args.kit:
        kit = os.path.abspath(args.kit)
        binary = os.path.join(kit, "bin", "kmm-workloads")
        libs = {"glibc": "", "kmm": os.path.join(kit, "lib", "libkmm-preload.so")}
        for name, f in PEERS.items():
            libs[name] = os.path.join(kit, "peers", f)
        runtime = os.path.join(kit, "runtime")
    else:
        build = os.path.abspath(args.build)
        binary = os.path.join(build, "bin", "kmm-workloads")
        libs = {"glibc": "", "kmm": os.path.join(build, "lib", "libkmm-preload.so")}
        libdir = peer_libdir()
        for name, f in PEERS.items():
            libs[name] = os.path.join(libdir, f)
        runtime = None
    if not os.access(binary, os.X_OK):
        sys.exit(f"missing {binary} (cmake --build BUILD --target kmm-workloads kmm-preload)")
    chosen = {}
    for a in args.allocs.split(","):
        if a not in libs:
            sys.exit(f"unknown allocator {a} (glibc, mimalloc, jemalloc, tcmalloc, kmm)")
        if libs[a] == "" or os.access(libs[a], os.R_OK):
            chosen[a] = libs[a]
        else:
            print(f"note: {a} not found ({libs[a]}), left out", file=sys.stderr)
    return binary, runtime, chosen


def needed_libs(path):
    """The shared libraries path needs beyond the C library (ldd), as real paths."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) != 2:
            continue
        target = parts[1].strip().split(" (")[0].strip()
        if not target.startswith("/") or any(s in os.path.basename(target) for s in SYSTEM_LIBS):
            continue
        found.append(target)
    return found


def make_kit(args):
    build = os.path.abspath(args.build)
    kit = os.path.abspath(args.make_kit)
    for d in ("bin", "lib", "peers", "runtime"):
        os.makedirs(os.path.join(kit, d), exist_ok=True)
    binary = os.path.join(build, "bin", "kmm-workloads")
    preload = os.path.join(build, "lib", "libkmm-preload.so")
    for f in (binary, preload):
        if not os.access(f, os.R_OK):
            sys.exit(f"missing {f} (cmake --build {args.build} --target kmm-workloads kmm-preload)")
    shutil.copy2(binary, os.path.join(kit, "bin"))
    shutil.copy2(preload, os.path.join(kit, "lib"))
    sources = [binary, preload]
    libdir = peer_libdir()
    for name, f in PEERS.items():
        src = os.path.join(libdir, f)
        if os.access(src, os.R_OK):
            shutil.copy(os.path.realpath(src), os.path.join(kit, "peers", f))
            sources.append(src)
        else:
            print(f"note: {name} not found ({src}), not in the kit", file=sys.stderr)
    copied = set()
    for s in sources:
        for dep in needed_libs(s):
            name = os.path.basename(dep)
            if name not in copied:
                shutil.copy(os.path.realpath(dep), os.path.join(kit, "runtime", name))
                copied.add(name)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(kit) for f in fs)
    print(f"kit {kit}: {size / 1e6:.1f} MB; runtime: {', '.join(sorted(copied)) or 'none'}")


def run_one(binary, runtime, preload, workload, threads, scale):
    arg_scale = scale * WORK.get(workload, 1) * (threads if workload in SPLIT else 1)
    f, why = run_workload(binary, preload, [workload, str(threads), str(arg_scale)], runtime)
    if f is not None and "ops" not in f:
        return None, "no ops= field (an older kmm-workloads)"
    return f, why


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}"


def table(results, workloads, thread_counts, allocs):
    """Per workload: each allocator's M ops/s with its speedup over its first row, then kmm's
    throughput over mimalloc's and tcmalloc's (above 1: kmm is faster)."""
    out = []
    peers = [p for p in ("mimalloc", "tcmalloc") if p in allocs and "kmm" in allocs]
    for w in workloads:
        rows = [t for t in thread_counts if any((w, t, a) in results for a in allocs)]
        if not rows:
            continue
        out.append(f"\n### {w}: M ops/s, median (speedup over {rows[0]} thread{'s' if rows[0] > 1 else ''})\n")
        head = ["threads"] + allocs + [f"kmm / {p}" for p in peers]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        base = {}
        for t in rows:
            mops = {}
            for a in allocs:
                runs = results.get((w, t, a), [])
                if runs:
                    mops[a] = statistics.median(r["ops"] / r["seconds"] for r in runs) / 1e6
            if t == rows[0]:
                base = dict(mops)
            cells = [str(t)]
            for a in allocs:
                cells.append(f"{mops[a]:.1f} ({mops[a] / base[a]:.1f}x)" if a in mops and a in base else "-")
            for p in peers:
                cells.append(f"**{mops['kmm'] / mops[p]:.2f}**" if "kmm" in mops and p in mops else "-")
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="the build directory (default: build)")
    ap.add_argument("--kit", help="run from a kit made by --make-kit instead of the build")
    ap.add_argument("--make-kit", metavar="DIR", help="copy what a run needs into DIR and stop")
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--workloads", default="larson,xmalloc,pool,threads")
    ap.add_argument("--allocs", default="glibc,mimalloc,tcmalloc,jemalloc,kmm")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=int, default=1, help="multiplies each thread's work (WORK)")
    ap.add_argument("--budget-s", type=float, default=0, help="start no repetition after this many seconds")
    ap.add_argument("--out", help="append every run's result to this file (JSON lines)")
    args = ap.parse_args()
    if args.make_kit:
        make_kit(args)
        return 0
    binary, runtime, libs = locate(args)
    allocs = list(libs)
    workloads = args.workloads.split(",")
    thread_counts = [int(t) for t in args.threads.split(",")]
    out = open(args.out, "a") if args.out else None
    results = {}
    failures = []
    start = time.monotonic()
    cell = 0
    reps_done = 0
    for rep in range(args.reps):
        if rep > 0 and args.budget_s and time.monotonic() - start > args.budget_s:
            print(f"note: budget of {args.budget_s:.0f} s spent after {rep} repetition(s)", file=sys.stderr)
            break
        for w in workloads:
            for t in thread_counts:
                cell += 1
                order = allocs[cell % len(allocs):] + allocs[: cell % len(allocs)]
                for a in order:
                    f, err = run_one(binary, runtime, libs[a], w, t, args.scale)
                    if err:
                        failures.append(f"{a} {w} {t}: {err}")
                        continue
                    r = {"alloc": a, "workload": w, "threads": t, "rep": rep, "seconds": float(f["seconds"]),
                         "cpu": float(f["cpu"]), "maxrss_kb": int(f["maxrss_kb"]), "minflt": int(f["minflt"]),
                         "ops": int(f["ops"])}
                    results.setdefault((w, t, a), []).append(r)
                    if out:
                        out.write(json.dumps(r) + "\n")
                        out.flush()
        reps_done = rep + 1
    elapsed = time.monotonic() - start
    print(f"## Scaling: {machine()}; {reps_done} repetition(s), scale {args.scale} a thread, {elapsed:.0f} s")
    print(table(results, workloads, thread_counts, allocs))
    for f in failures:
        print(f"\nfailed: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
