"""Figures: learning curves, a side-by-side comparison of regularizers, weight histograms.

Each function draws on a new matplotlib Figure (or on the axes you pass), labels its axes and
returns the Figure, so it works the same in a notebook, a script and headless (Agg) runs.
"""

import csv
import json
import os

import numpy as np

__all__ = [
    "line_style",
    "plot_learning_curves",
    "plot_regularization_comparison",
    "plot_weight_distributions",
    "plot_sweep",
]


def _pyplot():
    import matplotlib.pyplot as plt  # imported lazily: only plotting needs matplotlib

    return plt


def _history_of(source):
    """A history dict from what ``fit`` and ``rnnreg train`` leave: the dict itself, a
    ``history.json`` (or a run folder holding one), or a CSV log of ``CSVLogger``/``--csv``."""
    if isinstance(source, dict):
        return source
    path = os.fspath(source)
    if os.path.isdir(path):
        path = os.path.join(path, "history.json")
    if path.endswith(".csv"):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "train_loss" not in rows[0]:
            raise ValueError(f"{path} is not a CSV log of rnnreg (no train_loss column)")
        number = lambda text: float(text) if text not in ("", None) else None  # noqa: E731
        return {key: [number(row.get(key)) for row in rows] for key in ("train_loss", "val_loss")}
    with open(path) as f:
        history = json.load(f)
    if not isinstance(history, dict) or "train_loss" not in history:
        raise ValueError(f"{path} is not a history of rnnreg (no train_loss)")
    return history


def _curve(values, name):
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    return arr


def plot_learning_curves(
    train_losses, val_losses=None, title="Learning curves", best_epoch=None, ax=None, unit="nats per token"
):
    """Training (and validation) loss per epoch; marks the best validation epoch.

    Parameters
    ----------
    train_losses : sequence of float, or a history
        One per epoch — or what ``fit`` returns (its ``train_loss``, ``val_loss`` and
        ``best_epoch`` are read), the path of a ``history.json`` or of a run folder holding one,
        or the path of a CSV log (``CSVLogger``, ``rnnreg train --csv``).
    val_losses : sequence of float, optional
    title : str
    best_epoch : int, optional
        The epoch to mark (default: the lowest validation loss).
    ax : matplotlib Axes, optional
        Draw there instead of on a new Figure.
    unit : str
        Labels the loss axis (cross-entropy is in nats per token; "nats/char" for characters).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from rnnreg import plot_learning_curves
    >>> fig = plot_learning_curves([2.0, 1.5, 1.2], [2.1, 1.7, 1.8])
    >>> fig.axes[0].get_ylabel()
    'Loss (nats per token)'
    >>> fig = plot_learning_curves({"train_loss": [2.0, 1.5], "val_loss": [2.1, 1.7], "best_epoch": 1})
    """
    if not isinstance(train_losses, (list, tuple, np.ndarray)):  # a history, or its file
        history = _history_of(train_losses)
        train_losses = history["train_loss"]
        if val_losses is None and any(x is not None for x in history.get("val_loss") or []):
            val_losses = [np.nan if x is None else x for x in history["val_loss"]]
        if best_epoch is None and history.get("best_epoch") is not None:
            best_epoch = (
                history["epoch"].index(history["best_epoch"]) if "epoch" in history else history["best_epoch"]
            )
    plt = _pyplot()
    train = _curve(train_losses, "train_losses")
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 5))
    else:
        fig = ax.figure
    epochs = np.arange(len(train))
    ax.plot(epochs, train, "b-o", label="Training loss", linewidth=2, markersize=4)
    if val_losses is not None:
        val = _curve(val_losses, "val_losses")
        ax.plot(np.arange(len(val)), val, "r-s", label="Validation loss", linewidth=2, markersize=4)
        if best_epoch is None:
            best_epoch = int(np.nanargmin(val))
        ax.scatter(
            [best_epoch],
            [val[best_epoch]],
            s=200,
            marker="*",
            color="green",
            zorder=5,
            label=f"Best (epoch {best_epoch})",
        )
    ax.set_xlabel("Epoch")
    ax.set_ylabel(f"Loss ({unit})")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_regularization_comparison(
    results, title="Regularization comparison", metric="val_loss", unit="nats per token"
):
    """Compare runs: held-out loss per setting as bars, and every setting's curve.

    Parameters
    ----------
    results : dict name -> history
        A history is a dict with lists ``"train_loss"`` and ``"val_loss"`` (one value per epoch),
        optionally ``"test_loss"`` (the last epoch's weights), ``"best_model_test_loss"`` (the
        best validation epoch's: the bars show it, the last epoch's beside it when they differ)
        and ``"best_epoch"`` (starred on its curve), or just a list of validation losses.
    title : str
    metric : str
        The history key drawn as curves.
    unit : str
        Labels the loss axes.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from rnnreg import plot_regularization_comparison
    >>> fig = plot_regularization_comparison({"none": [2.0, 1.8, 1.9], "dropout": [2.0, 1.7, 1.6]})
    >>> len(fig.axes)
    2
    """
    plt = _pyplot()
    if not isinstance(results, dict) or not results:
        raise ValueError("results must be a non-empty dict: setting name -> history")
    fig, (ax_bar, ax_curve) = plt.subplots(1, 2, figsize=(14, 5))
    names, shipped, last = [], [], []
    for k, (name, history) in enumerate(results.items()):
        if not isinstance(history, dict):
            history = {metric: list(history)}
        curve = _curve(history[metric], f"results[{name!r}][{metric!r}]")
        color, marker = line_style(k)
        ax_curve.plot(np.arange(len(curve)), curve, "-", marker=marker, color=color, label=name, markersize=3)
        best = history.get("best_epoch")
        best = int(np.nanargmin(curve)) if best is None or metric != "val_loss" else best
        if 0 <= best < len(curve):  # the epoch whose weights the setting ships
            ax_curve.scatter(
                [best], [curve[best]], s=140, marker="*", color=color, edgecolors="black", zorder=5
            )
        names.append(name)
        held_out = history.get("test_loss", np.nanmin(curve))
        best_model = history.get("best_model_test_loss")
        shipped.append(held_out if best_model is None else best_model)
        last.append(held_out)
    positions = np.arange(len(names))
    two = any(a != b for a, b in zip(shipped, last))
    width = 0.4 if two else 0.8
    colors = [line_style(k)[0] for k in range(len(names))]
    bars = ax_bar.bar(positions - (width / 2 if two else 0), shipped, width, color=colors, label="best model")
    if two:
        ax_bar.bar(
            positions + width / 2, last, width, color=colors, alpha=0.35, hatch="//", label="last epoch"
        )
        ax_bar.legend(loc="upper right")
    for bar, value in zip(bars, shipped):
        ax_bar.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"{value:.3f}",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax_bar.set_xticks(positions, names)
    ax_bar.set_xlabel("Setting")
    ax_bar.set_ylabel(f"Test loss ({unit})")
    ax_bar.set_title("Test loss of each setting's best model (lower is better)")
    ax_bar.tick_params(axis="x", rotation=30)
    ax_bar.grid(True, axis="y", alpha=0.3)
    ax_curve.set_xlabel("Epoch")
    ax_curve.set_ylabel(f"{metric.replace('_', ' ').capitalize()} ({unit})")
    ax_curve.set_title(f"{metric.replace('_', ' ').capitalize()} per epoch (★ the best epoch)")
    ax_curve.grid(True, alpha=0.3)
    ax_curve.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def line_style(k):
    """Colour and marker of the k-th line of a figure: tab10's ten colours, then the same
    colours with the next marker — so that lines beyond ten stay apart (every figure of rnnreg
    and its benchmarks draws its lines with it)."""
    plt = _pyplot()
    return plt.cm.tab10(k % 10), _MARKERS[(k // 10) % len(_MARKERS)]


def plot_weight_distributions(weights, title="Weight distributions", bins=50):
    """One histogram per setting of all its weights, on one shared x-axis.

    Parameters
    ----------
    weights : dict name -> array or list of arrays (e.g. ``model.weights()``), or one array/list
    title : str
    bins : int

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from rnnreg import plot_weight_distributions
    >>> rng = np.random.default_rng(0)
    >>> fig = plot_weight_distributions({"none": rng.normal(0, 1, 100), "decay": rng.normal(0, 0.3, 100)})
    >>> sum(ax.get_visible() for ax in fig.axes)
    2
    """
    plt = _pyplot()
    if not isinstance(weights, dict):
        weights = {"weights": weights}
    if not weights:
        raise ValueError("weights must not be empty")
    flats = {}
    for name, value in weights.items():
        arrays = value if isinstance(value, (list, tuple)) else [value]
        flat = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
        if flat.size == 0:
            raise ValueError(f"weights[{name!r}] is empty")
        flats[name] = flat
    # A grid with one x-axis and one set of bins for all settings, so they compare at a glance.
    cols = min(3, len(flats))
    rows = -(-len(flats) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False, sharex=True)
    low = min(f.min() for f in flats.values())
    high = max(f.max() for f in flats.values())
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    for ax, (name, flat) in zip(axes.ravel(), flats.items()):
        ax.hist(flat, bins=edges, alpha=0.75, edgecolor="black")
        ax.axvline(0, color="red", linestyle="--", linewidth=1.5)
        ax.set_title(f"{name}: std={flat.std():.3f}, max|w|={np.abs(flat).max():.3f}", fontsize=10)
        ax.set_ylabel("Count")
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(flats) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("Weight value")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_sweep(records, names=None, log_scale=(), metric="best_val_loss", unit="nats per token"):
    """Held-out loss against each swept setting: one panel per setting (the trials as points,
    and, where a value repeats (a grid), the mean over the other settings as a line), or a heat
    map when exactly two settings were swept on a grid. Failed and pruned trials are left out.

    Parameters
    ----------
    records : list of dict
        Trial records of :func:`rnnreg.sweep` (``params`` and ``metric`` are read).
    names : list of str, optional
        The swept settings, in order (default: every name in the records' params).
    log_scale : collection of str
        Settings drawn on a log axis.
    metric : str
        The record field drawn (``"best_val_loss"`` or ``"test_loss"``).
    unit : str
        Labels the loss axis.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from rnnreg import plot_sweep
    >>> records = [{"params": {"dropout": d, "hidden": h}, "best_val_loss": 2 - d + 1 / h}
    ...            for d in (0.0, 0.3) for h in (64, 128)]
    >>> fig = plot_sweep(records)                      # two settings on a grid: a heat map
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
    ('hidden', 'dropout')
    """
    plt = _pyplot()
    import matplotlib.ticker  # noqa: F401 (matplotlib.ticker below)

    done = [r for r in records if r.get("status", "done") == "done" and r.get(metric) is not None]
    if not done:
        raise ValueError("no finished trial to plot")
    names = list(names or dict.fromkeys(n for r in records for n in r["params"]))
    loss = np.array([r[metric] for r in done], dtype=float)
    columns = {n: [r["params"].get(n) for r in done] for n in names}
    levels = {n: list(dict.fromkeys(columns[n])) for n in names}
    cells = len(levels[names[0]]) * len(levels[names[-1]])
    if len(names) == 2 and len(set(zip(*columns.values()))) == cells <= 144:
        # A grid over two settings: a heat map of the mean loss per cell.
        rows, cols = (sorted(levels[n], key=_order_key) for n in names)
        grid = np.full((len(rows), len(cols)), np.nan)
        for i, a in enumerate(rows):
            for j, b in enumerate(cols):
                cell = [
                    lo for lo, x, y in zip(loss, columns[names[0]], columns[names[1]]) if x == a and y == b
                ]
                grid[i, j] = np.mean(cell) if cell else np.nan
        fig, ax = plt.subplots(figsize=(1.4 * len(cols) + 3, 1.0 * len(rows) + 2.5))
        image = ax.imshow(grid, cmap="viridis_r", aspect="auto")
        for i in range(len(rows)):
            for j in range(len(cols)):
                if np.isfinite(grid[i, j]):  # dark text on the light (low-loss) cells
                    light = image.norm(grid[i, j]) < 0.5
                    ax.text(
                        j,
                        i,
                        f"{grid[i, j]:.3f}",
                        ha="center",
                        va="center",
                        fontsize=9,
                        color="black" if light else "white",
                    )
        ax.set_xticks(range(len(cols)), [str(c) for c in cols])
        ax.set_yticks(range(len(rows)), [str(r) for r in rows])
        ax.set_xlabel(names[1])
        ax.set_ylabel(names[0])
        fig.colorbar(image, ax=ax, label=f"{metric} ({unit})")
        ax.set_title(f"{metric} over {names[0]} × {names[1]} (lower is better)")
        fig.tight_layout()
        return fig
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.8), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        values = columns[name]
        numeric = all(_is_number(x) for x in values)
        positions = (
            np.array(values, dtype=float)
            if numeric
            else np.array([sorted(levels[name], key=_order_key).index(x) for x in values], float)
        )
        ax.scatter(positions, loss, alpha=0.7, label="trials")
        ordered = sorted(set(positions))
        if len(ordered) < len(positions):  # repeated values (a grid): the mean over the others
            # joined by a line along a numeric axis; categories (and switches) get a mark each,
            # since nothing lies between them
            ax.plot(
                ordered,
                [loss[positions == p].mean() for p in ordered],
                "r-" if numeric else "r_",
                linewidth=1.5,
                markersize=18,
                markeredgewidth=2,
                label="mean over the other settings",
            )
        if not numeric:
            ax.set_xticks(range(len(levels[name])), [str(x) for x in sorted(levels[name], key=_order_key)])
            ax.set_xlim(-0.5, len(levels[name]) - 0.5)
        if name in log_scale:
            ax.set_xscale("log")  # decades labelled, the ticks between them left bare
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(numticks=5))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        elif numeric:  # a few readable ticks, not one per drawn value
            ax.xaxis.set_major_locator(_pyplot().MaxNLocator(5))
        ax.tick_params(axis="x", labelrotation=30)
        ax.set_xlabel(name)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} ({unit})")
    axes[0][0].legend()
    fig.suptitle(f"{metric} against each swept setting ({len(done)} trials; lower is better)")
    fig.tight_layout()
    return fig


def _order_key(value):
    """Sort mixed setting values: None first, then numbers and booleans, then text."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (bool, int, float)):
        return (1, float(value), "")
    return (2, 0.0, str(value))
