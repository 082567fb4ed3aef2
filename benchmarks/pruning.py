"""What pruning saves on a 12-trial sweep, and what it costs in the best validation loss.

    python -m benchmarks.pruning [--out benchmarks/results/pruning]

The same grid three times — no pruning, the median rule, ASHA — on the built-in text (learning
rate 3e-3 / 1e-2 / 3e-2 × dropout 0 / 0.2 / 0.4 / 0.6, 8 epochs, hidden 128, 2 local workers),
each in a fresh folder. With parallel workers a trial is judged against the curves the others
have reported by then, so which trials are pruned can change from run to run.
"""

import argparse
import json
import os
import shutil
import sys
import time

from rnnreg import sweep

GRID = {"lr": [3e-3, 1e-2, 3e-2], "dropout": [0.0, 0.2, 0.4, 0.6]}
SETTINGS = {"epochs": 8, "hidden": 128}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/pruning")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for rule in (None, "median", "asha"):
        folder = os.path.join(args.out, rule or "none")
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        records = sweep(GRID, settings=SETTINGS, jobs=args.jobs, out=folder, progress=False, prune=rule)
        seconds = time.perf_counter() - started
        pruned = [r for r in records if r["status"] == "pruned"]
        epochs = sum(r["epochs"] for r in records)
        best = min(records, key=lambda r: r["best_val_loss"])
        rows.append(
            {
                "prune": rule or "none",
                "trials": len(records),
                "pruned": len(pruned),
                "epochs": epochs,
                "best_val_loss": best["best_val_loss"],
                "best": best["params"],
                "seconds": seconds,
            }
        )
    full = rows[0]["epochs"]
    lines = [
        "| prune | trials | pruned | epochs run | epochs saved | best val loss | best trial | wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['prune']} | {r['trials']} | {r['pruned']} | {r['epochs']} | "
            f"{full - r['epochs']} ({(full - r['epochs']) / full:.0%}) | "
            f"{r['best_val_loss']:.4f} | lr={r['best']['lr']:g} "
            f"dropout={r['best']['dropout']:g} | {r['seconds']:.1f} s |"
        )
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.out, "pruning.md"), "w") as f:
        f.write(f"{__doc__.splitlines()[0]}\n\n{table}\n")
    with open(os.path.join(args.out, "pruning.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
