"""The README's tables of numbers, copied from the recorded results they come from.

    python benchmarks/readme_tables.py            # rewrite every marked table from its record
    python benchmarks/readme_tables.py --check    # exit 1 and name each table that differs

A table in README.md is marked with the record it comes from and which of that file's markdown
tables it is (counted from 1):

    <!-- table: benchmarks/results/regularizers/learning.md 1 -->
    | ... the table ... |
    <!-- /table -->

so a figure in the README is never typed by hand, and tests/test_readme.py fails when one no
longer matches its record (rerun the benchmark, then this script).
"""
import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table: (\S+) (\d+) -->\n)(.*?)(<!-- /table -->)", re.S)


def tables_in(path):
    """The markdown tables of a file: runs of lines that start with '|'."""
    tables, current = [], []
    for line in (ROOT / path).read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current))
            current = []
    if current:
        tables.append("\n".join(current))
    return tables


def regenerate(text):
    """``text`` with every marked table replaced by its record's; and the list of blocks that
    changed, as (source, index)."""
    changed = []

    def replace(match):
        head, source, index, body, tail = match.groups()
        table = tables_in(source)[int(index) - 1] + "\n"
        if body != table:
            changed.append((source, int(index)))
        return head + table + tail
    return BLOCK.sub(replace, text), changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report tables that differ")
    parser.add_argument("--file", default="README.md")
    args = parser.parse_args(argv)
    path = ROOT / args.file
    text, changed = regenerate(path.read_text(encoding="utf-8"))
    for source, index in changed:
        print(f"{args.file}: table {index} of {source} differs from its record")
    if args.check:
        return 1 if changed else 0
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
