#!/usr/bin/env python3
"""Turn one of our Markdown documents into an scdoc man page source.

docs/FORMAT.md is the normative description of the .hpatch format; the
hpatch-format(5) page is generated from it at build time so the two can
never disagree. Only the Markdown the docs use is handled: headings,
paragraphs, pipe tables, "-" and "1." lists, **bold** and `code`; anything
else is an error, so a new construct in the doc fails the build instead of
rendering wrong.

usage: md2scd.py --name NAME --section N --summary TEXT --see-also TEXT IN OUT
"""
import argparse
import re
import sys

INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")


def escape(text):
    return (text.replace("\\", "\\\\").replace("*", "\\*")
            .replace("_", "\\_"))


def inline(text, where):
    out, pos = [], 0
    for m in INLINE.finditer(text):
        out.append(escape(text[pos:m.start()]))
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        if m.group(1) is not None:
            inner = INLINE.sub(lambda c: c.group(2) or c.group(1), inner)
        out.append("*" + escape(inner) + "*")
        pos = m.end()
    rest = text[pos:]
    if "**" in rest or "`" in rest:
        sys.exit(f"md2scd: {where}: unbalanced ** or ` in: {text}")
    out.append(escape(rest))
    return "".join(out)


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table(rows, where):
    head, sep, body = cells(rows[0]), rows[1], [cells(r) for r in rows[2:]]
    if not re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*\|?", sep.strip()):
        sys.exit(f"md2scd: {where}: a table needs a |---| line")
    # The column with the most text expands to fill the page width.
    wide = max(range(len(head)), key=lambda j: sum(len(r[j]) for r in body
                                                   if j < len(r)))
    out = []
    for i, row in enumerate([head] + body):
        if len(row) != len(head):
            sys.exit(f"md2scd: {where}: row has {len(row)} cells, "
                     f"header {len(head)}")
        for j, c in enumerate(row):
            lead = ("[" if i == 0 else "|") if j == 0 else ":"
            align = ("<" if j == wide else "[") if i == 0 else " "
            text = inline(c, where) if c else ""
            if i == 0 and text:
                text = "*" + text + "*" if not text.startswith("*") else text
            out.append(f"{lead}{align} {text}")
    return out


def convert(lines, args):
    out = [f"{args.name}({args.section})", "", "# NAME", "",
           f"{args.name} - {args.summary}", "", "# DESCRIPTION", ""]
    i, para = 0, []

    def flush():
        if para:
            out.append(inline(" ".join(para), f"{args.input}:{i}"))
            out.append("")
            para.clear()

    while i < len(lines):
        line, where = lines[i].rstrip("\n"), f"{args.input}:{i + 1}"
        if i == 0 and line.startswith("# "):
            i += 1
            continue
        m = re.match(r"(#{2,3}) (.*)", line)
        if m:
            flush()
            # scdoc prints headings verbatim: no markup, no escapes.
            title = INLINE.sub(lambda c: c.group(1) or c.group(2), m.group(2))
            if m.group(1) == "##":
                out += [f"# {title.upper()}", ""]
            else:
                out += [f"## {title}", ""]
            i += 1
        elif line.startswith("#"):
            sys.exit(f"md2scd: {where}: unexpected heading level")
        elif line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i].rstrip("\n"))
                i += 1
            out += table(rows, where) + [""]
        elif re.match(r"(- |\d+\. )", line):
            flush()
            while i < len(lines) and lines[i].strip():
                item = lines[i].rstrip("\n")
                m = re.match(r"(- |\d+\. )(.*)", item)
                if not m:
                    sys.exit(f"md2scd: {args.input}:{i + 1}: "
                             "expected a list item")
                text = [m.group(2)]
                i += 1
                while (i < len(lines) and lines[i].startswith(" ")
                       and lines[i].strip()):
                    text.append(lines[i].strip())
                    i += 1
                mark = "-" if m.group(1) == "- " else "."
                out.append(f"{mark} {inline(' '.join(text), where)}")
            out.append("")
        elif line.startswith("```") or line.startswith("    "):
            sys.exit(f"md2scd: {where}: code blocks are not handled")
        elif not line.strip():
            flush()
            i += 1
        else:
            para.append(line.strip())
            i += 1
    flush()
    out += ["# SEE ALSO", "", inline(args.see_also, "--see-also")]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser()
    for opt in ("--name", "--section", "--summary", "--see-also"):
        p.add_argument(opt, required=True)
    p.add_argument("input")
    p.add_argument("output")
    args = p.parse_args()
    with open(args.input, encoding="utf-8") as f:
        text = convert(f.readlines(), args)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
