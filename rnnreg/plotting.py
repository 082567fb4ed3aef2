"""Figures: learning curves, a side-by-side comparison of regularizers, weight histograms.

Each function draws on a new matplotlib Figure (or on the axes you pass), labels its axes and
returns the Figure, so it works the same in a notebook, a script and headless (Agg) runs.
"""
import numpy as np

__all__ = ["plot_learning_curves", "plot_regularization_comparison", "plot_weight_distributions"]


def _pyplot():
    import matplotlib.pyplot as plt  # imported lazily: only plotting needs matplotlib
    return plt


def _curve(values, name):
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    return arr


def plot_learning_curves(train_losses, val_losses=None, title="Learning curves", best_epoch=None,
                         ax=None, unit="nats per token"):
    """Training (and validation) loss per epoch; marks the best validation epoch. ``unit`` labels
    the loss axis (cross-entropy is in nats per token; "nats/char" for character models).

    Returns the matplotlib Figure.
    """
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
        ax.scatter([best_epoch], [val[best_epoch]], s=200, marker="*", color="green", zorder=5,
                   label=f"Best (epoch {best_epoch})")
    ax.set_xlabel("Epoch")
    ax.set_ylabel(f"Loss ({unit})")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_regularization_comparison(results, title="Regularization comparison", metric="val_loss",
                                   unit="nats per token"):
    """Compare runs: held-out loss per setting as bars, and every setting's curve.

    Parameters
    ----------
    results : dict name -> history
        A history is a dict with lists ``"train_loss"`` and ``"val_loss"`` (one value per epoch),
        optionally ``"test_loss"`` (a number), or just a list of validation losses.

    Returns the matplotlib Figure (two panels).
    """
    plt = _pyplot()
    if not isinstance(results, dict) or not results:
        raise ValueError("results must be a non-empty dict: setting name -> history")
    fig, (ax_bar, ax_curve) = plt.subplots(1, 2, figsize=(14, 5))
    names, held_out = [], []
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for k, (name, history) in enumerate(results.items()):
        if not isinstance(history, dict):
            history = {metric: list(history)}
        curve = _curve(history[metric], f"results[{name!r}][{metric!r}]")
        color = colors[k % 10]
        ax_curve.plot(np.arange(len(curve)), curve, "-o", color=color, label=name, markersize=3)
        names.append(name)
        held_out.append(history.get("test_loss", np.nanmin(curve)))
    bars = ax_bar.bar(names, held_out, color=[colors[k % 10] for k in range(len(names))])
    for bar, value in zip(bars, held_out):
        ax_bar.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{value:.3f}",
                    ha="center", va="bottom", fontsize=9)
    ax_bar.set_xlabel("Setting")
    ax_bar.set_ylabel(f"Held-out loss ({unit})")
    ax_bar.set_title("Held-out loss per setting (lower is better)")
    ax_bar.tick_params(axis="x", rotation=30)
    ax_bar.grid(True, axis="y", alpha=0.3)
    ax_curve.set_xlabel("Epoch")
    ax_curve.set_ylabel(f"{metric.replace('_', ' ').capitalize()} ({unit})")
    ax_curve.set_title(f"{metric.replace('_', ' ').capitalize()} per epoch")
    ax_curve.grid(True, alpha=0.3)
    ax_curve.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_weight_distributions(weights, title="Weight distributions", bins=50):
    """One histogram per setting of all its weights.

    Parameters
    ----------
    weights : dict name -> array or list of arrays (e.g. ``model.weights()``), or one array/list

    Returns the matplotlib Figure.
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
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False,
                             sharex=True)
    low = min(f.min() for f in flats.values())
    high = max(f.max() for f in flats.values())
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    for ax, (name, flat) in zip(axes.ravel(), flats.items()):
        ax.hist(flat, bins=edges, alpha=0.75, edgecolor="black")
        ax.axvline(0, color="red", linestyle="--", linewidth=1.5)
        ax.set_title(f"{name}: std={flat.std():.3f}, max|w|={np.abs(flat).max():.3f}", fontsize=10)
        ax.set_ylabel("Count")
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(flats):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("Weight value")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
