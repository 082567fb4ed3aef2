"""The tables of numbers in the README and the user guide, copied from the recorded results they
come from.

    python -m benchmarks.readme_tables            # rewrite every marked table from its record
    python -m benchmarks.readme_tables --check    # exit 1 and name each table that differs

A table is marked with the record it comes from and which table of that record it is:

    <!-- table: benchmarks/results/regularizers/learning.md 1 -->
    | ... the table ... |
    <!-- /table -->

- a markdown record (``.md``): the N-th of its markdown tables, counted from 1, as it is;
- a JSON record of ``benchmarks/run.py --json`` (``.json``): its rows drawn as a table, ``epoch``
  for the training-epoch rows, ``kernels`` for the others, ``kernels:TEXT`` for those whose case
  contains TEXT.

So a figure in the README or the docs is never typed by hand, and tests/test_readme.py fails
when one no longer matches its record (rerun the benchmark, then this script).
"""

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table: (\S+) (\S+) -->\n)(.*?)(<!-- /table -->)", re.S)
# The pages whose tables this script keeps: the README and the user guide.
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "guide").glob("*.md"))]


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


def _time(seconds):
    if seconds is None:
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _times(ratio):
    return "" if ratio is None else f"{ratio:.2f}×"


def epoch_table(rows):
    """Training-epoch rows of a run.py record: one line per model, a pair of columns (rnnreg's
    time, PyTorch's over it) per thread count."""
    epochs = [r for r in rows if r["case"] == "training epoch"]
    threads = sorted({r["threads"] for r in epochs})
    models = list(dict.fromkeys(r["size"] for r in epochs))
    by_key = {(r["size"], r["threads"]): r for r in epochs}
    head = "| model |" + "".join(
        f" rnnreg, {n} thread{'s' * (n > 1)} | PyTorch / rnnreg, {n} |" for n in threads
    )
    lines = [head, "|---|" + "---|---|" * len(threads)]
    for model in models:
        cells = []
        for n in threads:
            r = by_key.get((model, n))
            cells += ["", ""] if r is None else [f"{r['public_s']:.3f} s", _times(r.get("vs_torch"))]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kernel_table(rows, contains=""):
    """Kernel rows of a run.py record (public function against textbook NumPy and PyTorch)."""
    lines = [
        "| case | shape | dtype | threads | rnnreg | textbook NumPy / rnnreg | PyTorch / rnnreg |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["case"] != "training epoch" and contains in r["case"]:
            lines.append(
                f"| {r['case']} | {r['shape']} | {r['dtype']} | {r['threads']} | "
                f"{_time(r['public_s'])} | {_times(r.get('speedup'))} | "
                f"{_times(r.get('vs_torch'))} |"
            )
    return "\n".join(lines)


def table(source, which):
    """The table ``which`` of the record ``source`` (see the module's docstring)."""
    if source.endswith(".json"):
        rows = json.loads((ROOT / source).read_text(encoding="utf-8"))["results"]
        kind, _, contains = which.partition(":")
        if kind == "epoch":
            return epoch_table(rows)
        if kind == "kernels":
            return kernel_table(rows, contains)
        raise ValueError(f"{source}: unknown table {which!r} (epoch, kernels or kernels:TEXT)")
    return tables_in(source)[int(which) - 1]


def regenerate(text):
    """``text`` with every marked table replaced by its record's; and the list of blocks that
    changed, as (source, which)."""
    changed = []

    def replace(match):
        head, source, which, body, tail = match.groups()
        new = table(source, which) + "\n"
        if body != new:
            changed.append((source, which))
        return head + new + tail

    return BLOCK.sub(replace, text), changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report tables that differ")
    parser.add_argument(
        "files", nargs="*", default=PAGES, help="pages to update (default: the README and docs/guide/*.md)"
    )
    args = parser.parse_args(argv)
    differs = False
    for name in args.files:
        path = ROOT / name
        text, changed = regenerate(path.read_text(encoding="utf-8"))
        for source, which in changed:
            print(f"{name}: table {which} of {source} differs from its record")
        differs = differs or bool(changed)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    return 1 if args.check and differs else 0


if __name__ == "__main__":
    sys.exit(main())
