"""Read the code cells of a notebook exported as markdown (``In [None]:`` blocks) and run them.

    python examples/notebook_cells.py examples/rnn_regularization_notebook.md

runs every cell top to bottom in one namespace, headless (matplotlib's Agg backend).
"""

import sys


def code_cells(text):
    """The code cells of the markdown export: each starts after an ``In [...]:`` line and runs
    until the next cell or the next markdown heading."""
    cells, current = [], None
    for line in text.splitlines():
        if line.startswith("In [") and line.rstrip().endswith("]:"):
            if current is not None:
                cells.append("\n".join(current))
            current = []
        elif current is not None and (line.startswith("## ") or line.startswith("### ")):
            cells.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:
        cells.append("\n".join(current))
    return [cell.strip() + "\n" for cell in cells if cell.strip()]


def run_notebook(path):
    """Execute every code cell of ``path``; returns the namespace the cells shared."""
    import matplotlib

    matplotlib.use("Agg")
    with open(path, encoding="utf-8") as f:
        cells = code_cells(f.read())
    namespace = {"__name__": "__notebook__"}
    for number, cell in enumerate(cells, 1):
        exec(compile(cell, f"{path}[cell {number}]", "exec"), namespace)
    return namespace


if __name__ == "__main__":
    run_notebook(sys.argv[1] if len(sys.argv) > 1 else "examples/rnn_regularization_notebook.md")
