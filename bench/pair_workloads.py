#!/usr/bin/env python3
"""Paired A/B runs of bench/workloads under two allocators: is B faster than A, and by how much?

Usage (from the repository root):
    python3 bench/pair_workloads.py [--build build] [--pairs 16] A B "WORKLOAD THREADS [SCALE]" ...

A and B: glibc, mimalloc, jemalloc, tcmalloc, kmm (BUILD/lib/libkmm-preload.so), or the path
of any preloadable library (an older build of kmm, say). Each pair runs A then B, the next
pair B then A, back to back, and the ratio B/A is taken within the pair; the table gives the
median of those ratios with its quartiles, beside each side's median and best time.

Why pairs. The machines this project is measured on are shared VMs whose speed drifts by 10-50 %
over minutes (other guests): a best-of-N taken in turns can credit a change with a window of
fast minutes that the other side missed (at stop 36 a change read -17 % in a best of 11 and
+14 % in the next best of 9, and 0.99-1.02 in 16 pairs). Runs a second apart see the same
machine, so the ratio within a pair cancels most of the drift; the median over pairs and its
quartiles say how sure the difference is (a change is only as real as q1..q3 excluding 1.0).

Also reported: the ratio of CPU time (user + system) and each side's median of minor page
faults (a first touch costs ~13 us here) and peak RSS. Standard library only.
"""

import argparse
import os
import statistics
import sys

from workload_runs import PEERS, peer_libdir, run_workload


def library(name, build):
    """The path to preload for name ('' for glibc), or exit naming what is missing."""
    if name == "glibc":
        return ""
    if name == "kmm":
        path = os.path.join(build, "lib", "libkmm-preload.so")
    elif name in PEERS:
        path = os.path.join(peer_libdir(), PEERS[name])
    else:
        path = name
    if not os.path.isfile(path):
        sys.exit(f"pair_workloads: no library for '{name}' at {path}")
    return os.path.abspath(path)


def run_once(binary, lib, args):
    f, why = run_workload(binary, lib, args)
    if f is None or "minflt" not in f:
        sys.exit(f"pair_workloads: {' '.join(args)} under {lib or 'glibc'} failed ({why or 'no minflt='})")
    return float(f["seconds"]), float(f["cpu"]), int(f["maxrss_kb"]), int(f["minflt"])


def quartiles(xs):
    s = sorted(xs)
    return s[len(s) // 4], statistics.median(s), s[(3 * len(s)) // 4]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="build directory (bin/kmm-workloads, lib/)")
    ap.add_argument("--pairs", type=int, default=16, help="pairs of runs per workload (default 16)")
    ap.add_argument("a", help="allocator A (the reference)")
    ap.add_argument("b", help="allocator B")
    ap.add_argument("workloads", nargs="+", help='"WORKLOAD THREADS [SCALE]", e.g. "larson 2 4"')
    opt = ap.parse_args()
    if opt.pairs < 2:
        sys.exit("pair_workloads: --pairs must be at least 2")
    binary = os.path.join(opt.build, "bin", "kmm-workloads")
    if not os.access(binary, os.X_OK):
        sys.exit(f"pair_workloads: {binary} is missing (cmake --build {opt.build} --target kmm-workloads)")
    lib_a, lib_b = library(opt.a, opt.build), library(opt.b, opt.build)

    print(f"B = {opt.b} against A = {opt.a}, {opt.pairs} pairs each (order alternating); "
          "wall and CPU as B/A within each pair: median [q1, q3]\n")
    print(f"| workload | {opt.a} wall s (median / best) | {opt.b} wall s (median / best) | B/A wall | B/A cpu "
          f"| faults A / B | peak RSS MB A / B |")
    print("|---|---|---|---|---|---|---|")
    for w in opt.workloads:
        args = w.split()
        a_runs, b_runs = [], []
        for i in range(opt.pairs):
            if i % 2 == 0:
                a_runs.append(run_once(binary, lib_a, args))
                b_runs.append(run_once(binary, lib_b, args))
            else:
                b_runs.append(run_once(binary, lib_b, args))
                a_runs.append(run_once(binary, lib_a, args))
        wall = quartiles([b[0] / a[0] for a, b in zip(a_runs, b_runs)])
        cpu = quartiles([b[1] / a[1] for a, b in zip(a_runs, b_runs)])

        def med(runs, k):
            return statistics.median(r[k] for r in runs)

        print(f"| {w} | {med(a_runs, 0):.4f} / {min(r[0] for r in a_runs):.4f} "
              f"| {med(b_runs, 0):.4f} / {min(r[0] for r in b_runs):.4f} "
              f"| **{wall[1]:.3f}** [{wall[0]:.3f}, {wall[2]:.3f}] | {cpu[1]:.3f} [{cpu[0]:.3f}, {cpu[2]:.3f}] "
              f"| {med(a_runs, 3):.0f} / {med(b_runs, 3):.0f} "
              f"| {med(a_runs, 2) / 1024:.1f} / {med(b_runs, 2) / 1024:.1f} |", flush=True)


if __name__ == "__main__":
    main()
