"""Regularizers on sequences that are not text: classifying JapaneseVowels and forecasting the
airline series, each regularizer against none, beside the baselines the field quotes.

    python -m benchmarks.sequences [--seeds 3] [--out benchmarks/results/sequences]

Classification: the UEA JapaneseVowels set (270 training and 370 test utterances, 12 features,
7 to 29 steps, 9 speakers), the archive's split; 54 training utterances (a seeded draw) held
out for early stopping; inputs standardized on the rest. The baselines are the archive papers'
1-nearest-neighbour classifiers on the same split: Euclidean distance on sequences zero-padded to
the longest, and dependent multivariate DTW (full window).

Forecasting: the airline series (monthly passengers 1949-1960), log scale; the next 12 months
from the last 24, windows split in time (train, then 20% validation, then 20% test: no test
target inside a training window, ``rnnreg.datasets.windows``); the model reads the window and
predicts the change from its last value. The baselines: the naive forecast (the last value) and
the seasonal naive (the value 12 months before). The error is the mean absolute error of the log.

Needs the data extra (``pip install "rnnreg[data]"``). Writes ``classification.md``,
``forecasting.md``, ``sequences.json`` and ``sequences.png`` to ``--out``.
"""

import argparse
import json
import os
import time

import numpy as np

from benchmarks.common import machine_info

CLASSIFY_SETTINGS = {
    "none": {},
    "dropout": {"dropout_keep_prob": 0.8},
    "variational + recurrent": {"dropout_keep_prob": 0.8, "recurrent_keep_prob": 0.8, "variational": True},
    "zoneout": {"zoneout_hidden": 0.1, "zoneout_cell": 0.3},
    "layer_norm": {"use_layer_norm": True},
    "weight-drop": {"weight_keep_prob": 0.8},
}
FORECAST_SETTINGS = {
    "none": {},
    "dropout": {"dropout_keep_prob": 0.9},
    "weight-drop": {"weight_keep_prob": 0.8},
    "zoneout": {"zoneout_cell": 0.2},
}


# ----------------------------------------------------------------------------- baselines
def _padded(X, length):
    out = np.zeros((len(X), length, X[0].shape[1]))
    for k, x in enumerate(X):
        out[k, : len(x)] = x
    return out


def nearest_neighbour_euclidean(X, y, X_test):
    """1-NN with the Euclidean distance between sequences zero-padded to the longest."""
    length = max(len(x) for x in X + X_test)
    A = _padded(X_test, length).reshape(len(X_test), -1)
    B = _padded(X, length).reshape(len(X), -1)
    d = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2 * A @ B.T
    return y[np.argmin(d, axis=1)]


def nearest_neighbour_dtw(X, y, X_test):
    """1-NN with dependent multivariate DTW (squared Euclidean cost per step pair, full
    window): every test-train pair at once, one row of the cost grid at a time; each pair's
    distance read at its own two lengths (padding beyond them never reaches those cells)."""
    length = max(len(x) for x in X + X_test)
    A, B = _padded(X_test, length), _padded(X, length)
    la = np.array([len(x) for x in X_test])
    lb = np.array([len(x) for x in X])
    dist = np.full((len(X_test), len(X)), np.inf)
    previous = None
    for t in range(length):
        cost = ((A[:, None, t, None, :] - B[None, :, :, :]) ** 2).sum(-1)  # (test, train, s)
        row = np.empty_like(cost)
        for s in range(length):
            best = []
            if previous is not None:
                best.append(previous[:, :, s])
                if s > 0:
                    best.append(previous[:, :, s - 1])
            if s > 0:
                best.append(row[:, :, s - 1])
            row[:, :, s] = cost[:, :, s] + (np.minimum.reduce(best) if best else 0.0)
        done = la == t + 1  # the test sequences ending at this step: read their distances
        if done.any():
            dist[done] = np.take_along_axis(row[done], (lb - 1)[None, :, None], axis=2)[:, :, 0]
        previous = row
    return y[np.argmin(dist, axis=1)]


# ----------------------------------------------------------------------------- the runs
def classify(seeds, epochs):
    from rnnreg import RegularizedLSTM
    from rnnreg.datasets import japanese_vowels
    from rnnreg.training import TrainConfig, evaluate, fit

    (X, y), (X_test, y_test), _ = japanese_vowels()
    order = np.random.default_rng(0).permutation(len(X))
    held, kept = order[:54], order[54:]
    train = ([X[k] for k in kept], y[kept])
    val = ([X[k] for k in held], y[held])
    rows = {}
    for name, settings in CLASSIFY_SETTINGS.items():
        runs = []
        for seed in range(seeds):
            started = time.perf_counter()
            model = RegularizedLSTM(
                input_size=12,
                hidden_size=64,
                output_size=9,
                task="classify",
                seed=seed,
                dtype="float32",
                **settings,
            )
            config = TrainConfig(
                epochs=epochs, batch_size=16, patience=10, standardize=True, progress=False, seed=seed
            )
            history = fit(model, train, val, config, log=lambda line: None)
            test = evaluate(model, (X_test, y_test))
            runs.append(
                {
                    "accuracy": test["accuracy"],
                    "loss": test["loss"],
                    "best_epoch": history["best_epoch"],
                    "seconds": time.perf_counter() - started,
                }
            )
        rows[name] = {"settings": settings, "runs": runs}
    baselines = {
        "1-NN Euclidean (zero-padded)": float(np.mean(nearest_neighbour_euclidean(X, y, X_test) == y_test)),
        "1-NN DTW (dependent)": float(np.mean(nearest_neighbour_dtw(X, y, X_test) == y_test)),
    }
    return rows, baselines


def forecast(seeds, epochs):
    from rnnreg import RegularizedLSTM
    from rnnreg.datasets import airline, windows
    from rnnreg.training import TrainConfig, fit

    series = np.log(airline())
    lookback, horizon = 24, 12
    parts = windows(series, lookback, horizon, val=0.2, test=0.2)

    def relative(X, y):  # the window and its targets as changes from the window's last value
        last = X[:, -1:, :]
        return X - last, y - last[:, :, 0]

    train, val = relative(*parts["train"]), relative(*parts["val"])
    X_test, y_test = parts["test"]
    inputs_test, _ = relative(X_test, y_test)
    mae = lambda predicted: float(np.mean(np.abs(predicted - y_test)))  # noqa: E731
    rows = {}
    for name, settings in FORECAST_SETTINGS.items():
        runs = []
        for seed in range(seeds):
            started = time.perf_counter()
            model = RegularizedLSTM(
                input_size=1, hidden_size=32, output_size=horizon, task="regress", seed=seed, **settings
            )
            config = TrainConfig(
                epochs=epochs, batch_size=8, lr=3e-3, patience=40, standardize=True, progress=False, seed=seed
            )
            history = fit(model, train, val, config, log=lambda line: None)
            predicted = model.predict(inputs_test) + X_test[:, -1:, 0]
            runs.append(
                {
                    "mae": mae(predicted),
                    "best_epoch": history["best_epoch"],
                    "seconds": time.perf_counter() - started,
                }
            )
        rows[name] = {"settings": settings, "runs": runs}
    baselines = {
        "naive (last value)": mae(np.repeat(X_test[:, -1:, 0], horizon, axis=1)),
        "seasonal naive (12 months before)": mae(X_test[:, -12:, 0]),
    }
    return rows, baselines, {"train": len(train[0]), "val": len(val[0]), "test": len(X_test)}


# ----------------------------------------------------------------------------- the record
def _mean_range(values, digits=3):
    return f"{np.mean(values):.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def tables(record):
    c, f = record["classification"], record["forecasting"]
    lines = [
        "| setting | test accuracy, mean [range] | test loss | best epoch | seconds |",
        "|---|---|---|---|---|",
    ]
    for name, row in c["rows"].items():
        runs = row["runs"]
        lines.append(
            f"| {name} | {_mean_range([r['accuracy'] for r in runs])} | "
            f"{np.mean([r['loss'] for r in runs]):.3f} | {np.mean([r['best_epoch'] for r in runs]):.0f} | "
            f"{np.mean([r['seconds'] for r in runs]):.1f} |"
        )
    for name, accuracy in c["baselines"].items():
        lines.append(f"| {name} | {accuracy:.3f} | — | — | — |")
    classification = "\n".join(lines)
    lines = [
        "| setting | test MAE of log passengers, mean [range] | best epoch | seconds |",
        "|---|---|---|---|",
    ]
    for name, row in f["rows"].items():
        runs = row["runs"]
        lines.append(
            f"| {name} | {_mean_range([r['mae'] for r in runs], 4)} | "
            f"{np.mean([r['best_epoch'] for r in runs]):.0f} | {np.mean([r['seconds'] for r in runs]):.1f} |"
        )
    for name, error in f["baselines"].items():
        lines.append(f"| {name} | {error:.4f} | — | — |")
    return classification, "\n".join(lines)


def figure(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, metric, label in (
        (axes[0], "classification", "accuracy", "JapaneseVowels: test accuracy"),
        (axes[1], "forecasting", "mae", "Airline: test MAE of log passengers"),
    ):
        part = record[key]
        names = list(part["rows"]) + list(part["baselines"])
        values = [np.mean([r[metric] for r in part["rows"][n]["runs"]]) for n in part["rows"]]
        values += list(part["baselines"].values())
        colors = ["tab:blue"] * len(part["rows"]) + ["tab:gray"] * len(part["baselines"])
        ax.barh(range(len(names)), values, color=colors)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_title(label)
        if metric == "accuracy":
            ax.set_xlim(min(values) - 0.05, 1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60, help="classification epochs (forecasting: 5x)")
    parser.add_argument("--out", default="benchmarks/results/sequences")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows, baselines = classify(args.seeds, args.epochs)
    f_rows, f_baselines, sizes = forecast(args.seeds, 5 * args.epochs)
    record = {
        "command": "python -m benchmarks.sequences " + " ".join(argv or []),
        "machine": machine_info(),
        "classification": {"rows": rows, "baselines": baselines},
        "forecasting": {"rows": f_rows, "baselines": f_baselines, "windows": sizes},
    }
    with open(os.path.join(args.out, "sequences.json"), "w") as out:
        json.dump(record, out, indent=1)
    classification, forecasting = tables(record)
    for name, table in (("classification", classification), ("forecasting", forecasting)):
        with open(os.path.join(args.out, f"{name}.md"), "w") as out:
            out.write(table + "\n")
        print(table, end="\n\n")
    figure(record, os.path.join(args.out, "sequences.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
