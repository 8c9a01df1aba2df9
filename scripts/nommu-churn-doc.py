#!/usr/bin/env python3
# scripts/nommu-churn-doc.py — the churn table of docs/NOMMU.md ("Network-buffer churn"), from
# the program itself, so that the document cannot drift from it (its failed-load counts once
# stood 36 short: churn came to count program loads that could not start).
#
#   scripts/nommu-churn-doc.py --kmm build/bin/kmm docs/NOMMU.md           rewrites the file
#   scripts/nommu-churn-doc.py --kmm build/bin/kmm --check docs/NOMMU.md   exit 1 and a diff if stale
#
# The workload is examples/nommu-churn.kms's (`churn steps=3000 every=500 bufs=4`) on its four
# machines, for seeds 1..8. One scenario runs all 32; `let` prints each value. Per machine:
# the mean of the runs' churn.avg_largest, the lowest churn.min_largest (both in KB, rounded),
# the sum of churn.failed_programs. The table's rows are rewritten, and the count in the prose's
# "the seed's wins on N of 8 seeds" (seeds where direction=seed's average is above both other
# kmalloc2 rules'); nothing else. Depends on: Python 3, scripts/doc_tables.py.
import os
import re
import subprocess
import sys

import doc_tables
import tempfile

SEEDS = range(1, 9)
CHURN = "churn steps=3000 every=500 bufs=4 seed={seed}"
# (the table's first cell, the boot line), in the table's order.
MACHINES = [
    ("kmalloc=pow2, buddy", "boot ram=2M mmu=off kmalloc=pow2"),
    ("kmalloc2, range, direction=seed", "boot ram=2M mmu=off kmalloc=kmalloc2 page_alloc=range direction=seed"),
    ("kmalloc2, range, direction=source", "boot ram=2M mmu=off kmalloc=kmalloc2 page_alloc=range direction=source"),
    ("kmalloc2, range, bottom-up", "boot ram=2M mmu=off kmalloc=kmalloc2 page_alloc=range direction=bottom-up"),
]
HEAD = "| configuration | largest free block, mean of the 8 runs' averages |"


def measure(kmm):
    script = []
    for m, (_, boot) in enumerate(MACHINES):
        for seed in SEEDS:
            script += [boot, CHURN.format(seed=seed)]
            script += [f"let m{m}_s{seed}_{v} = churn.{v}" for v in ("avg_largest", "min_largest", "failed_programs")]
    with tempfile.NamedTemporaryFile("w", suffix=".kms", delete=False) as f:
        f.write("\n".join(script) + "\n")
        path = f.name
    try:
        out = subprocess.run([kmm, "run", "-q", path], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    values = {name: int(v) for name, v in re.findall(r"^\$(\w+) = (-?\d+)$", out, re.M)}
    rows = []
    avg_of = lambda m, s: values[f"m{m}_s{s}_avg_largest"]
    wins = sum(1 for s in SEEDS if avg_of(1, s) > avg_of(2, s) and avg_of(1, s) > avg_of(3, s))
    for m, (label, _) in enumerate(MACHINES):
        avg = [values[f"m{m}_s{s}_avg_largest"] for s in SEEDS]
        low = min(values[f"m{m}_s{s}_min_largest"] for s in SEEDS)
        failed = sum(values[f"m{m}_s{s}_failed_programs"] for s in SEEDS)
        rows.append(f"| {label} | {round(sum(avg) / len(avg) / 1024)} KB | {round(low / 1024)} KB | {failed} |")
    return rows, wins


WINS = r"the seed's wins on \d+ of 8 seeds"


def rewrite(doc, measured):
    rows, wins = measured
    if not re.search(WINS, doc):
        sys.exit(f"no {WINS!r} in the document")
    doc = re.sub(WINS, f"the seed's wins on {wins} of 8 seeds", doc)
    lines = doc.split("\n")
    head = next((i for i, line in enumerate(lines) if line.startswith(HEAD)), None)
    if head is None or not lines[head + 1].startswith("|---"):
        sys.exit(f"no churn table (a line starting {HEAD!r}, then |---) in the document")
    end = head + 2
    while end < len(lines) and lines[end].startswith("| "):
        end += 1
    return "\n".join(lines[:head + 2] + rows + lines[end:])


if __name__ == "__main__":
    sys.exit(doc_tables.main(lambda old, kmm: rewrite(old, measure(kmm)), "scripts/nommu-churn-doc.py", "kmm churn"))
