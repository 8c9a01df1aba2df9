# scripts/doc_tables.py — the command line the scripts that regenerate a document's tables from
# the program share (scripts/traces-doc.py, scripts/nommu-churn-doc.py): `--kmm BIN DOC`
# rewrites DOC; `--check` leaves it and exits 1 with a diff when it is stale (their ctests).
# Depends on: Python 3.
import argparse
import difflib
import sys


def main(rewrite, script, what):
    """rewrite(old_text, kmm_binary) -> the document as the program says it should read."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--kmm", required=True)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("doc")
    a = ap.parse_args()
    with open(a.doc) as f:
        old = f.read()
    new = rewrite(old, a.kmm)
    if not a.check:
        with open(a.doc, "w") as f:
            f.write(new)
        return 0
    if new == old:
        return 0
    sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), a.doc, what))
    print(f"{a.doc} is stale: run {script} --kmm build/bin/kmm {a.doc}")
    return 1
