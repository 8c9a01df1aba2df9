#!/usr/bin/env python3
# scripts/long-functions.py — lists the functions of C/C++ sources longer than a limit
# (issue 18: no function over ~120 lines in src/).
#
# Usage: long-functions.py [--max N] [PATH...]   (default: --max 120, src/ of the repository)
# Prints "LINES FILE:LINE NAME", longest first; exit 1 when one is over the limit, 0 when none.
#
# How: lexical. Comments, string and character literals are blanked; a function is a `{`
# whose statement text (what precedes it since the last `;`, `{` or `}`) ends in a closing
# parenthesis (optionally followed by const, noexcept, override, an initializer list or a
# trailing return type) and is not a control statement or a lambda; its length counts the
# lines from its signature to its closing brace. Functions nested in functions (lambdas,
# local classes) count toward the enclosing one only.
# Depends on: Python 3 only. Invariant: the scan never executes or compiles anything.
import os
import re
import sys

CONTROL = re.compile(r"^\s*(if|for|while|switch|catch|else\s+if|do)\b")
NOT_FUNC = re.compile(r"\b(class|struct|union|enum|namespace)\b[^()]*$|=\s*$|\]\s*(\([^)]*\))?[^)]*$")
TAIL = re.compile(r"\)\s*(const|noexcept|override|final|mutable|volatile|&|&&|\s)*(->\s*[\w:<>,\s*&]+)?\s*$")


HEX = "0123456789abcdefABCDEF"


def blank(text):
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and i > 0 and text[i - 1] in HEX and i + 1 < n and text[i + 1] in HEX:
            out.append(c)  # a digit separator (1'000'000), not a character literal
            i += 1
        elif c in "\"'":
            m = re.match(r'R"([^(]*)\(', text[i - 1:i + 20]) if c == '"' and i > 0 and text[i - 1] == "R" else None
            if m:
                end = text.find(")" + m.group(1) + '"', i)
                j = n if end < 0 else end + len(m.group(1)) + 2
            else:
                j = i + 1
                while j < n and text[j] != c:
                    j += 2 if text[j] == "\\" else 1
                j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + (c if j - 1 > i else ""))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    text = blank(open(path, encoding="utf-8", errors="replace").read())
    found = []
    stack = []  # (is_function, start_line, name)
    stmt_start = 0
    for i, c in enumerate(text):
        if c == "{":
            stmt = text[stmt_start:i]
            head = re.sub(r"(?<!:):(?!:)\s*[\w:]+\s*(\([^()]*\)|\{[^{}]*\})(\s*,\s*[\w:]+\s*(\([^()]*\)|\{[^{}]*\}))*\s*$", "", stmt)
            is_func = (not any(f for f, _, _ in stack) and TAIL.search(head) is not None and not CONTROL.search(stmt)
                       and not NOT_FUNC.search(head.split("(")[0]) and "(" in head)
            if is_func:
                # The signature's first line: the statement's first non-blank character.
                off = stmt_start + (len(stmt) - len(stmt.lstrip()))
                line = text.count("\n", 0, off) + 1
                name = re.findall(r"([~\w:]+)\s*\(", head)
                stack.append((True, line, name[0] if name else "?"))
            else:
                stack.append((False, 0, ""))
            stmt_start = i + 1
        elif c == "}":
            if stack:
                is_func, line, name = stack.pop()
                if is_func:
                    end = text.count("\n", 0, i) + 1
                    found.append((end - line + 1, line, name))
            stmt_start = i + 1
        elif c == ";":
            stmt_start = i + 1
    return found


def main(argv):
    limit = 120
    if len(argv) >= 2 and argv[0] == "--max":
        limit, argv = int(argv[1]), argv[2:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = argv or [os.path.join(root, "src")]
    rows = []
    for p in paths:
        walk = [(p, [], [""])] if os.path.isfile(p) else os.walk(p)
        for dirpath, _, files in walk:
            for f in sorted(files):
                full = os.path.join(dirpath, f)
                if full.endswith((".c", ".cc", ".cpp", ".h", ".hpp")):
                    for n, line, name in functions(full):
                        if n > limit:
                            rows.append((n, f"{os.path.relpath(full, root)}:{line}", name))
    for n, where, name in sorted(rows, reverse=True):
        print(f"{n:5d} {where} {name}")
    return 1 if rows else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
