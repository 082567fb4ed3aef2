"""The "which regularizer first" figure and table of the regularizers guide, from the recorded
comparisons on the built-in text (the same data, seed and budget: compare's defaults):
``benchmarks/results/compare-2026-12-05`` (the notebook's four) and
``benchmarks/results/compare-zoneout-awd-2026-12-05`` (zoneout, AWD-LSTM's set).

    python -m benchmarks.which_first [--out benchmarks/results/which-first]

Each setting's best validation loss and its best model's test loss, with the difference to no
regularization; sorted by validation loss (what one chooses on). Writes ``which_first.md`` and
``which_first.png``. Nothing is trained: it reads the records.
"""

import argparse
import json
import os
import sys

RECORDS = (
    "benchmarks/results/compare-2026-12-05/results.json",
    "benchmarks/results/compare-zoneout-awd-2026-12-05/results.json",
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/which-first")
    args = parser.parse_args(argv)
    results = {}
    for path in RECORDS:
        with open(path) as f:
            results.update(json.load(f))
    none = results["none"]
    ranked = sorted(results, key=lambda name: results[name]["best_val_loss"])
    lines = [
        f"Made by: python -m benchmarks.which_first (from {', '.join(RECORDS)})",
        "",
        "| setting | best val loss | vs none | test loss, best model | vs none | best epoch |",
        "|---|---|---|---|---|---|",
    ]
    for name in ranked:
        h = results[name]
        val, test = h["best_val_loss"], h["best_model_test_loss"]
        lines.append(
            f"| {name} | {val:.4f} | {val - none['best_val_loss']:+.4f} | "
            f"{test:.4f} | {test - none['best_model_test_loss']:+.4f} | {h['best_epoch']} |"
        )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "which_first.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from rnnreg.plotting import line_style

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(ranked) + 1.5))
    y = np.arange(len(ranked))[::-1]
    val = [results[n]["best_val_loss"] - none["best_val_loss"] for n in ranked]
    test = [results[n]["best_model_test_loss"] - none["best_model_test_loss"] for n in ranked]
    ax.barh(y + 0.2, val, 0.4, color=line_style(0)[0], label="best validation loss")
    ax.barh(y - 0.2, test, 0.4, color=line_style(1)[0], label="test loss of the best model")
    ax.set_yticks(y, ranked)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("difference to no regularization (nats/char; lower is better)")
    ax.set_title("Which regularizer first: the built-in text, 14 epochs, hidden 256")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "which_first.png"), dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
