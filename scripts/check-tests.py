#!/usr/bin/env python3
# scripts/check-tests.py — fails on tests that can pass when what they test is broken
# (issue 22), over the tree's CMake files and tests/:
#   1. PASS_REGULAR_EXPRESSION in a CMake file: CTest then ignores the exit status, so a
#      program that prints the right line and fails still passes. Use
#      tests/common/run_and_match.cmake (exit status and output, both).
#   2. A GoogleTest TEST/TEST_F/TEST_P body with no assertion (EXPECT_*, ASSERT_*, FAIL,
#      ADD_FAILURE, GTEST_FAIL...), neither in the body nor in a function of the same file
#      that the body calls (helpers that assert count, transitively; a fixture's SetUp or
#      TearDown that asserts counts for its TEST_Fs).
#   3. A death test (EXPECT/ASSERT_DEATH, _EXIT) whose pattern is the empty string "": any
#      death passes it, a null dereference included.
#   4. A TEST of a *DeathTest suite with no death assertion (itself or in a helper it calls):
#      GoogleTest runs those suites first and alone, and a reader takes them for death tests.
# Usage: check-tests.py [ROOT]. Exit 0 when clean, 1 with one line per finding.
# Run by CTest as lint.tests_can_fail (tests/CMakeLists.txt).
#
# Depends on: Python 3 only. Invariant: the C++ scan is lexical (comments and string
# literals are blanked before braces are matched); it never compiles anything.
import os
import re
import sys

ASSERTION = re.compile(r"\b(EXPECT_[A-Z_0-9]+|ASSERT_[A-Z_0-9]+|FAIL|ADD_FAILURE|ADD_FAILURE_AT|GTEST_FAIL|"
                       r"GTEST_FAIL_AT)\s*\(")
TEST_MACRO = re.compile(r"^\s*(TEST|TEST_F|TEST_P|TYPED_TEST|TYPED_TEST_P)\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)", re.M)
CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
DEATH_EMPTY = re.compile(r"\b(EXPECT|ASSERT)_(DEATH|EXIT|DEBUG_DEATH)\s*\(")
DEATH = re.compile(r"\b(EXPECT|ASSERT)_(DEATH|EXIT|DEBUG_DEATH|DEATH_IF_SUPPORTED)\s*\(")
SKIP_DIRS = {".git", "build", "build-asan", "build-tsan", "build-arm", "build-arm-quick", "build-firmware"}


def blank(src):
    """Comments and string/char literals replaced by spaces (newlines kept); literals keep
    their quotes so an empty string stays recognisable as ""."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == 'R' and src.startswith('R"', i) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', src[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = ")" + m.group(1) + '"'
            j = src.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('"' + re.sub(r"[^\n]", " ", src[i + 1:j - 1]) + '"')
            i = j
        elif c == "'" and i > 0 and src[i - 1].isalnum():  # a digit separator: 1'000'000
            out.append(c)
            i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", src[i + 1:j - 1]) + c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def body_at(text, pos):
    """The {...} block starting at the first '{' at or after pos: (start, end) or None."""
    start = text.find("{", pos)
    if start < 0:
        return None
    depth = 0
    for k in range(start, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return start, k + 1
    return None


def asserting_functions(text, assertion=ASSERTION):
    """Names of functions in this file whose body has an `assertion`, closed under 'calls a
    function that does'."""
    bodies = {}
    # A definition: NAME ( ... ) [const] [noexcept] [-> T] {   at any depth (members too).
    for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\(([^;{}()]|\([^;{}()]*\))*\)\s*(const\s*)?(noexcept\s*)?(override\s*)?"
                         r"(->\s*[\w:<>*& ]+)?\{", text):
        name = m.group(1)
        if name in ("if", "for", "while", "switch", "catch", "TEST", "TEST_F", "TEST_P", "TYPED_TEST"):
            continue
        b = body_at(text, m.end() - 1)
        if b:
            bodies.setdefault(name, []).append(text[b[0]:b[1]])
    asserting = {name for name, bs in bodies.items() if any(assertion.search(b) for b in bs)}
    changed = True
    while changed:
        changed = False
        for name, bs in bodies.items():
            if name in asserting:
                continue
            if any(c in asserting for b in bs for c in CALL.findall(b)):
                asserting.add(name)
                changed = True
    return asserting


def fixture_asserts(text, fixture, asserting):
    """A fixture class whose SetUp/TearDown/constructor asserts checks every TEST_F of it."""
    m = re.search(r"\b(class|struct)\s+" + re.escape(fixture) + r"\b[^;{]*\{", text)
    if not m:
        return False
    b = body_at(text, m.end() - 1)
    if not b:
        return False
    cls = text[b[0]:b[1]]
    for hook in ("SetUp", "TearDown", "~" + fixture, fixture):
        hm = re.search(re.escape(hook) + r"\s*\([^)]*\)\s*(override\s*)?\{", cls)
        if hm:
            hb = body_at(cls, hm.end() - 1)
            if hb and (ASSERTION.search(cls[hb[0]:hb[1]]) or
                       any(c in asserting for c in CALL.findall(cls[hb[0]:hb[1]]))):
                return True
    # A fixture deriving from another fixture of this file inherits its hooks.
    base = re.search(r":\s*(public\s+)?(\w+)", text[m.start():b[0]])
    if base and base.group(2) != fixture and base.group(2) not in ("testing", "Test"):
        return fixture_asserts(text, base.group(2), asserting)
    return False


def death_pattern_is_empty(text, open_paren):
    """For EXPECT_DEATH(stmt, pattern) / EXPECT_EXIT(stmt, pred, pattern): whether the last
    argument is exactly ""."""
    depth = 0
    args_start = open_paren + 1
    commas = []
    for k in range(open_paren, len(text)):
        c = text[k]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                last = text[(commas[-1] + 1) if commas else args_start:k]
                return last.strip() == '""'
        elif c == "," and depth == 1:
            commas.append(k)
    return False


def check_cpp(path, findings):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = blank(f.read())
    asserting = None
    dying = None
    for m in TEST_MACRO.finditer(text):
        b = body_at(text, m.end())
        if not b:
            line = text.count("\n", 0, m.start()) + 1
            findings.append(f"{path}:{line}: {m.group(2)}.{m.group(3)}: no body found (the scan lost its braces)")
            continue
        body = text[b[0]:b[1]]
        if m.group(2).endswith("DeathTest") and not DEATH.search(body):
            if dying is None:
                dying = asserting_functions(text, DEATH)
            if not any(c in dying for c in CALL.findall(body)):
                line = text.count("\n", 0, m.start()) + 1
                findings.append(f"{path}:{line}: {m.group(2)}.{m.group(3)} is in a death-test suite but has no death "
                                "assertion (move it to a suite of its own)")
        if ASSERTION.search(body):
            continue
        if asserting is None:
            asserting = asserting_functions(text)
        if any(c in asserting for c in CALL.findall(body)):
            continue
        if m.group(1) in ("TEST_F", "TEST_P") and fixture_asserts(text, m.group(2), asserting):
            continue
        line = text.count("\n", 0, m.start()) + 1
        findings.append(f"{path}:{line}: {m.group(2)}.{m.group(3)} has no assertion: it passes whatever the code does")
    for m in DEATH_EMPTY.finditer(text):
        if death_pattern_is_empty(text, m.end() - 1):
            line = text.count("\n", 0, m.start()) + 1
            findings.append(f"{path}:{line}: {m.group(0).rstrip('(').strip()} with an empty pattern: any death passes it "
                            "(match the report's text; tests/common/fault_probe.h for a fault)")


def check_cmake(path, findings):
    with open(path, encoding="utf-8", errors="replace") as f:
        for no, line in enumerate(f, 1):
            code = line.split("#", 1)[0]
            if "PASS_REGULAR_EXPRESSION" in code:
                findings.append(f"{path}:{no}: PASS_REGULAR_EXPRESSION makes CTest ignore the exit status "
                                "(use tests/common/run_and_match.cmake)")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    root = os.path.normpath(root)
    findings = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build"))
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            shown = os.path.normpath(os.path.join(rel, name))
            if name == "CMakeLists.txt" or name.endswith(".cmake"):
                check_cmake_path = path
                before = len(findings)
                check_cmake(check_cmake_path, findings)
                findings[before:] = [f.replace(path, shown, 1) for f in findings[before:]]
            elif name.endswith(".cpp") and (rel == "tests" or rel.startswith("tests" + os.sep)):
                before = len(findings)
                check_cpp(path, findings)
                findings[before:] = [f.replace(path, shown, 1) for f in findings[before:]]
    for f in findings:
        print(f)
    if findings:
        print(f"check-tests: {len(findings)} finding(s)")
        return 1
    print("check-tests: every CTest test checks its exit status, every TEST asserts, every death test has a "
          "pattern and every death-test suite dies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
