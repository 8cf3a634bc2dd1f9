#!/usr/bin/env python3
"""Print the longest C functions and those with the most parameters.

A report, not a gate (CI prints it from scripts/test.sh): functions over
--max-lines lines or --max-params parameters are marked with '!'. Reads
kernel-style C as our .clang-format writes it: a definition's name starts
a line at column 0 and its body opens with '{' alone at column 0 and
closes with '}' at column 0.

usage: fn-lengths.py [--top N] [--max-lines N] [--max-params N] FILE...
"""
import argparse
import re
import sys

NAME = re.compile(r"([A-Za-z_]\w*)\s*\($")


def params(sig):
    """Number of parameters of the signature text up to its ')'."""
    inner = sig[sig.index("(") + 1:sig.rindex(")")].strip()
    if inner in ("", "void"):
        return 0
    depth, n = 0, 1
    for ch in inner:
        depth += ch in "([{"
        depth -= ch in ")]}"
        n += ch == "," and depth == 0
    return n


def functions(path):
    """Yield (name, first line, lines, parameters) of each definition."""
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i] != "{":
            i += 1
            continue
        # The signature: back to the line at column 0 that starts it.
        j = i - 1
        while j > 0 and (lines[j][:1] in ("\t", " ") or lines[j] == ""):
            j -= 1
        sig = " ".join(l.strip() for l in lines[j:i])
        end = i + 1
        while end < len(lines) and lines[end] != "}":
            end += 1
        head = sig[:sig.find("(") + 1] if "(" in sig else ""
        m = NAME.search(head)
        if m and "=" not in head:
            yield m.group(1), j + 1, end - j + 1, params(sig)
        i = end + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--max-lines", type=int, default=80)
    ap.add_argument("--max-params", type=int, default=6)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    found = [(n, f, l, ln, p) for f in a.files
             for n, l, ln, p in functions(f)]
    over = [x for x in found if x[3] > a.max_lines or x[4] > a.max_params]
    print(f"functions: {len(found)} in {len(a.files)} files; "
          f"{len(over)} over {a.max_lines} lines or {a.max_params} "
          f"parameters")
    shown = sorted(found, key=lambda x: -x[3])[:a.top]
    shown += [x for x in sorted(over, key=lambda x: -x[4]) if x not in shown]
    for n, f, l, ln, p in shown:
        mark = "!" if ln > a.max_lines or p > a.max_params else " "
        print(f"{mark} {ln:4d} lines {p:2d} params  {f}:{l}  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
