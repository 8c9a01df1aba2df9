#!/usr/bin/env python3
# scripts/traces-doc.py — the per-trace tables and final maps of docs/TRACES.md, from
# `kmm replay TRACE --policy all --ram 4M` itself, so that the document cannot drift from the
# program (its end-free figures once stood 28K stale).
#
#   scripts/traces-doc.py --kmm build/bin/kmm docs/TRACES.md           rewrites the file
#   scripts/traces-doc.py --kmm build/bin/kmm --check docs/TRACES.md   exit 1 and a diff if stale
#
# Each section "### NAME: ..." is filled from tests/data/traces/NAME.rep.gz: its line
# "N operations; peak live payload ...", its table rows and its maps block. Depends on: Python 3,
# scripts/doc_tables.py.
import csv
import io
import os
import re
import subprocess
import sys

import doc_tables

RAM = "4M"


def k(b):
    return f"{round(int(b) / 1024)}K"


def replay(kmm, trace, *extra):
    return subprocess.run([kmm, "replay", trace, "--policy", "all", "--ram", RAM, *extra], check=True,
                          capture_output=True, text=True).stdout


def section(kmm, trace):
    rows = list(csv.DictReader(io.StringIO(replay(kmm, trace, "--csv"))))
    text = replay(kmm, trace)
    head = re.match(r"trace \S+: (\d+) ops .*peak live payload (\S+)", text)
    ops, peak = head.group(1), head.group(2)
    table = []
    for r in rows:
        fail = "none"
        if r["first_fail_op"]:
            fail = (f"op {r['first_fail_op']}: {r['first_fail_size']} B, {k(r['first_fail_free'])}, "
                    f"{k(r['first_fail_largest'])}: {r['first_fail_kind']} ({r['failures']} failed)")
        table.append(f"| {r['policy']} | {k(r['peak_footprint'])} | {100 * float(r['utilization']):.1f} % | "
                     f"{float(r['overhead_per_alloc']):.1f} | {100 * float(r['internal_frag']):.1f} % | "
                     f"{100 * float(r['external_frag']):.1f} % | {k(r['end_free'])} | {k(r['end_largest'])} | {fail} |")
    maps = text.split("final physical maps (X used, - free):\n", 1)[1].strip("\n").split("\n")
    if peak.endswith("K"):
        peak = f"{round(float(peak[:-1]))}K"
    return ops, peak, table, maps


def rewrite(doc, kmm, traces_dir):
    lines = doc.split("\n")
    out, i, name = [], 0, None
    while i < len(lines):
        line = lines[i]
        m = re.match(r"### ([\w.-]+): ", line)
        if m:
            name = m.group(1)
            ops, peak, table, maps = section(kmm, os.path.join(traces_dir, name + ".rep.gz"))
        if name and re.match(r"\d+ operations; peak live payload ", line):
            line = re.sub(r"^\d+ operations; peak live payload \S+?\.", f"{ops} operations; peak live payload {peak}.", line)
        if name and line.startswith("|---"):
            out.append(line)
            i += 1
            while i < len(lines) and lines[i].startswith("| "):
                i += 1
            out.extend(table)
            continue
        if name and line.startswith("Final physical maps") and i + 1 < len(lines) and lines[i + 1] == "```":
            out += [line, "```"] + maps + ["```"]
            i += 2
            while lines[i] != "```":
                i += 1
            i += 1
            name = None  # the section is done
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


TRACES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "traces")

if __name__ == "__main__":
    sys.exit(doc_tables.main(lambda old, kmm: rewrite(old, kmm, TRACES), "scripts/traces-doc.py", "kmm replay"))
