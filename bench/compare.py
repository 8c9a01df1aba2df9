#!/usr/bin/env python3
"""Run kmm-bench-kmalloc and print kmm beside glibc and mimalloc as a Markdown table.

Usage (from the repository root):
    python3 bench/compare.py [--binary build/bin/kmm-bench-kmalloc] [--runs 3]
                             [--repetitions 3] [--min-time 0.5] [--filter REGEX]
                             [--save-json DIR] [--load-json FILE ...]

Each run starts the binary once with --benchmark_format=json, --benchmark_repetitions=R
and --benchmark_report_aggregates_only=true; the median of the R repetitions is taken, and
with --runs N > 1 the median over the N runs. The time is CPU time per kmalloc/kfree pair
per thread (Google Benchmark's cpu_time divided by the pairs one iteration does).

Targets (issue 2, "Speed"): kmm at most 1.5x mimalloc's time on every size, and no slower
than glibc on every size <= 1 KiB. Each row says which it meets.

Page faults: the benchmark counts minor faults of its threads (getrusage RUSAGE_THREAD) as
the counter `minflt`, per iteration; the table shows them per million pairs. The whole
process's minor faults and peak RSS (getrusage RUSAGE_CHILDREN) are printed under the table.

Standard library only.
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

ALLOCATORS = ("kmm", "glibc", "mimalloc")
MI_TARGET = 1.5
GLIBC_TARGET = 1.0
GLIBC_TARGET_MAX_SIZE = 1024

ROW_RE = re.compile(r"^(hot|batch)/(kmm|glibc|mimalloc)/(\d+)/threads:(\d+)$")
PAGES_RE = re.compile(r"^pages/order:(\d+)/threads:(\d+)$")
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def default_binary():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "build", "bin", "kmm-bench-kmalloc")


def run_once(args):
    cmd = [
        args.binary,
        "--benchmark_format=json",
        f"--benchmark_repetitions={args.repetitions}",
        "--benchmark_report_aggregates_only=true",
        f"--benchmark_min_time={args.min_time}",
    ]
    if args.filter:
        cmd.append(f"--benchmark_filter={args.filter}")
    print("running: " + " ".join(cmd), file=sys.stderr)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = json.loads(out)
    data["process"] = {
        "minflt": after.ru_minflt - before.ru_minflt,
        "majflt": after.ru_majflt - before.ru_majflt,
        "maxrss_kib": after.ru_maxrss,  # largest child so far, KiB on Linux
        "wall_s": round(wall, 1),
    }
    return data


def medians(data):
    """{run_name: (ns_per_pair_cpu, ns_per_pair_wall_per_thread, faults_per_Mpair)} from one run."""
    rows = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"])
        pairs = float(b.get("pairs", 1.0)) or 1.0
        scale = UNIT_NS[b.get("time_unit", "ns")]
        m = ROW_RE.match(name) or PAGES_RE.match(name)
        threads = int(m.group(m.lastindex)) if m else int(b.get("threads", 1))
        cpu = b["cpu_time"] * scale / pairs
        wall = b["real_time"] * scale * threads / pairs
        faults = float(b.get("minflt", 0.0)) / pairs * 1e6
        rows[name] = (cpu, wall, faults)
    return rows


def combine(runs):
    names = set()
    for r in runs:
        names.update(r)
    out = {}
    for n in names:
        vals = [r[n] for r in runs if n in r]
        out[n] = tuple(statistics.median(v[i] for v in vals) for i in range(3))
    return out


def fmt_ns(x):
    if x is None:
        return "-"
    return f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}"


def fmt_faults(x):
    if x is None:
        return "-"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def table(res):
    keys = {}
    for name in res:
        m = ROW_RE.match(name)
        if m:
            keys[(m.group(1), int(m.group(3)), int(m.group(4)))] = True
    order = sorted(keys, key=lambda k: (0 if k[0] == "hot" else 1, k[2], k[1]))
    lines = [
        "| workload | size | threads | kmm ns | glibc ns | mimalloc ns | kmm/glibc | kmm/mimalloc "
        "| minflt/1M pairs (kmm, glibc, mi) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    met = {"mi": [0, 0], "glibc": [0, 0]}
    misses = []
    for wl, size, thr in order:
        v = {a: res.get(f"{wl}/{a}/{size}/threads:{thr}") for a in ALLOCATORS}
        k, g, mi = (v[a][0] if v[a] else None for a in ALLOCATORS)
        rg = k / g if k is not None and g else None
        rm = k / mi if k is not None and mi else None
        flags = []
        if rm is not None:
            met["mi"][1] += 1
            if rm <= MI_TARGET:
                met["mi"][0] += 1
            else:
                flags.append(f"MISS <=1.5x mi")
        if rg is not None and size <= GLIBC_TARGET_MAX_SIZE:
            met["glibc"][1] += 1
            if rg <= GLIBC_TARGET:
                met["glibc"][0] += 1
            else:
                flags.append("MISS <=glibc")
        flag = "ok" if not flags else ", ".join(flags)
        if flags:
            misses.append((wl, size, thr))
        faults = ", ".join(fmt_faults(v[a][2] if v[a] else None) for a in ALLOCATORS)
        lines.append(
            f"| {wl} | {size} | {thr} | {fmt_ns(k)} | {fmt_ns(g)} | {fmt_ns(mi)} | {fmt_ratio(rg)} "
            f"| {fmt_ratio(rm)} | {faults} | {flag} |"
        )
    summary = (
        f"Target kmm <= 1.5x mimalloc: met in {met['mi'][0]} of {met['mi'][1]} rows. "
        f"Target kmm <= glibc (sizes <= 1 KiB): met in {met['glibc'][0]} of {met['glibc'][1]} rows."
    )
    return "\n".join(lines), summary


def pages_table(res):
    rows = []
    for name, (cpu, wall, faults) in res.items():
        m = PAGES_RE.match(name)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), cpu, wall, faults))
    if not rows:
        return ""
    rows.sort()
    lines = ["| buddy | threads | ns per alloc_pages+free_pages (CPU) | wall per pair per thread | minflt/1M pairs |",
             "|---|---:|---:|---:|---:|"]
    for order, thr, cpu, wall, faults in rows:
        lines.append(f"| order {order} | {thr} | {fmt_ns(cpu)} | {fmt_ns(wall)} | {fmt_faults(faults)} |")
    return "\n".join(lines)


def wall_check(res):
    """Rows where wall time per pair per thread differs from CPU time by more than 25 %:
    the threads were not on a CPU the whole time (descheduled, yielding in a lock)."""
    out = []
    for name, (cpu, wall, _) in sorted(res.items()):
        if cpu > 0 and abs(wall - cpu) / cpu > 0.25:
            out.append(f"{name}: cpu {fmt_ns(cpu)} ns, wall/thread {fmt_ns(wall)} ns")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=default_binary())
    ap.add_argument("--runs", type=int, default=1, help="whole runs of the binary (median over runs)")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--min-time", default="0.5", help="--benchmark_min_time, seconds")
    ap.add_argument("--filter", default="", help="--benchmark_filter regex")
    ap.add_argument("--save-json", metavar="DIR", help="keep each run's JSON in DIR")
    ap.add_argument("--show-wall", action="store_true", help="list rows whose wall time differs from CPU time")
    ap.add_argument("--load-json", metavar="FILE", nargs="+", help="render saved runs instead of running")
    args = ap.parse_args()

    datas = []
    if args.load_json:
        for f in args.load_json:
            with open(f) as fh:
                datas.append(json.load(fh))
    else:
        for i in range(args.runs):
            d = run_once(args)
            datas.append(d)
            if args.save_json:
                os.makedirs(args.save_json, exist_ok=True)
                with open(os.path.join(args.save_json, f"run{i + 1}.json"), "w") as fh:
                    json.dump(d, fh, indent=1)

    res = combine([medians(d) for d in datas])
    ctx = datas[0].get("context", {})
    print(f"Host: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz; "
          f"{len(datas)} run(s) x {args.repetitions if not args.load_json else '?'} repetitions, medians. "
          f"Times: CPU ns per kmalloc+kfree pair per thread.\n")
    t, summary = table(res)
    print(t)
    print()
    print(summary)
    pt = pages_table(res)
    if pt:
        print()
        print(pt)
    print()
    for i, d in enumerate(datas):
        p = d.get("process")
        if p:
            print(f"Run {i + 1}: whole process {p['minflt']} minor faults, {p['majflt']} major, "
                  f"peak RSS {p['maxrss_kib']} KiB, {p['wall_s']} s.")
    w = wall_check(res)
    if w:
        print()
        print(f"{len(w)} of {len(res)} rows: wall time per pair per thread differs from CPU time by > 25 % "
              "(threads off a CPU: other load on the machine, or yielding in a lock)" +
              ("; --show-wall lists them." if not args.show_wall else ":"))
        if args.show_wall:
            for line in w:
                print("  " + line)


if __name__ == "__main__":
    main()
