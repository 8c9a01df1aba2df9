#!/usr/bin/env python3
# scripts/check-layers.py — the layer picture, enforced (issue 18): a file of src/LAYER may
# include a header of src/OTHER only when LAYER's CMake target links OTHER's target, directly
# or through what it links. Each src/*/CMakeLists.txt is read for its add_library targets and
# their target_link_libraries; a target named kmm_X (or kmm_X_anything, or kmm-X...) belongs to
# the folder that defines it. Includes are the quoted ones, "OTHER/file.h".
#
# Why: a layer that includes another without linking it builds only because some binary
# happens to link both; the dependency is real but undrawn (kernel/machine_frames.h included
# vm/ headers while kmm_kernel did not link kmm_vm), and the next split of the tree breaks it.
#
# Usage: check-layers.py [ROOT]. Exit 0 when clean, 1 with one line per finding (file, the
# layer it includes, what its folder's targets link). Run by CTest as lint.layers.
# Depends on: Python 3 only. Invariant: lexical — CMake is not run; a target's links are the
# kmm targets named in its target_link_libraries calls (PUBLIC, PRIVATE and INTERFACE alike).
import os
import re
import sys

ADD_LIBRARY = re.compile(r"add_library\(\s*([\w-]+)")
LINK = re.compile(r"target_link_libraries\(\s*([\w-]+)([^)]*)\)", re.S)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([\w-]+)/[^"]+"', re.M)


def strip_comments(text):
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def main(root):
    src = os.path.join(root, "src")
    layers = sorted(d for d in os.listdir(src) if os.path.isfile(os.path.join(src, d, "CMakeLists.txt")))
    target_layer = {}  # target -> folder
    links = {}  # target -> set of targets
    for layer in layers:
        text = strip_comments(open(os.path.join(src, layer, "CMakeLists.txt")).read())
        for m in ADD_LIBRARY.finditer(text):
            target_layer[m.group(1)] = layer
        for m in LINK.finditer(text):
            links.setdefault(m.group(1), set()).update(m.group(2).split())
    # A folder's reach: the folders of every target its own targets link, transitively.
    reach = {layer: {layer} for layer in layers}
    for layer in layers:
        todo = [t for t, l in target_layer.items() if l == layer]
        seen = set(todo)
        while todo:
            t = todo.pop()
            for dep in links.get(t, ()):
                if dep in target_layer and dep not in seen:
                    seen.add(dep)
                    reach[layer].add(target_layer[dep])
                    todo.append(dep)
    findings = []
    for layer in layers:
        for dirpath, _, files in os.walk(os.path.join(src, layer)):
            for name in sorted(files):
                if not name.endswith((".h", ".cpp", ".c")):
                    continue
                path = os.path.join(dirpath, name)
                text = open(path, encoding="utf-8", errors="replace").read()
                for m in INCLUDE.finditer(text):
                    other = m.group(1)
                    if other in reach and other not in reach[layer]:
                        rel = os.path.relpath(path, root)
                        findings.append(f"{rel}: includes {other}/ but the targets of src/{layer} link only "
                                        f"{', '.join(sorted(reach[layer]))}")
    for f in findings:
        print(f)
    if not findings:
        print(f"layers: {len(layers)} folders, every include within what its target links")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
