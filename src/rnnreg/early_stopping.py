"""Early stopping: stop training when a monitored value has stopped improving, and keep the
best weights (Keras 3's decisions)."""

import copy
import math
import numbers

import numpy as np

from . import _validation as v

__all__ = ["EarlyStoppingMonitor", "resolve_mode"]

MODES = ("min", "max", "auto")


def resolve_mode(mode, monitor):
    """Whether lower (``"min"``) or higher (``"max"``) values of ``monitor`` are better: ``mode``
    itself, or for ``"auto"`` Keras's rule — "max" for an accuracy (or an F-measure), else "min".
    Every callback that watches a value takes its mode from here."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in str(monitor) or str(monitor).startswith("fmeasure") else "min"
    return mode


class EarlyStoppingMonitor:
    """Stop training when a monitored value has stopped improving.

    The decisions follow Keras 3's ``EarlyStopping`` for the same values and settings:

    * a value *improves* on the best one when ``value < best - min_delta`` (mode ``"min"``) or
      ``value > best + min_delta`` (mode ``"max"``); the first value checked always improves.
    * every check adds one to ``wait``; an improvement sets the new best (and snapshots the
      weights with ``restore_best_weights``) and resets ``wait`` to 0 — unless a ``baseline`` is
      set and the value does not also improve on it.
    * without improvement, training stops once ``wait >= patience`` (and epoch > 0).
    * checks before ``start_from_epoch`` are ignored.

    Additions to Keras: a non-finite value stops at once (it never counts as an improvement);
    :meth:`restore` puts the best weights back also when training ended without the monitor
    firing; :meth:`state_dict` lets a resumed run keep counting.

    Parameters
    ----------
    patience : int >= 0
        Checks without improvement to wait before stopping.
    verbose : bool
        Print a line when stopping and restoring.
    min_delta : float >= 0
        Smallest change that counts as an improvement.
    mode : "min", "max" or "auto"
        "auto" is "max" when ``monitor`` names an accuracy, else "min".
    baseline : float, optional
        Value to beat; until it is beaten, improvements do not reset ``wait``.
    start_from_epoch : int >= 0
        Epochs to ignore (warm-up).
    restore_best_weights : bool
        Snapshot the model on every improvement (``check(..., model=model)``) for :meth:`restore`.
    monitor : str
        The name of what is monitored, for messages and "auto" mode.

    Examples
    --------
    >>> from rnnreg import EarlyStoppingMonitor
    >>> monitor = EarlyStoppingMonitor(patience=2)
    >>> [monitor.check(loss, epoch) for epoch, loss in enumerate([3.0, 2.5, 2.6, 2.7])]
    [True, True, True, False]
    >>> monitor.best_epoch, monitor.best
    (1, 2.5)
    """

    def __init__(
        self,
        patience=5,
        verbose=False,
        *,
        min_delta=0.0,
        mode="auto",
        baseline=None,
        start_from_epoch=0,
        restore_best_weights=False,
        monitor="val_loss",
    ):
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral):
            raise TypeError(f"patience must be an integer >= 0, got {patience!r}")
        if patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        if baseline is not None and not (isinstance(baseline, numbers.Real) and math.isfinite(baseline)):
            raise ValueError(f"baseline must be None or a finite number, got {baseline!r}")
        if (
            isinstance(start_from_epoch, bool)
            or not isinstance(start_from_epoch, numbers.Integral)
            or start_from_epoch < 0
        ):
            raise ValueError(f"start_from_epoch must be an integer >= 0, got {start_from_epoch!r}")
        self.patience = int(patience)
        self.verbose = bool(verbose)
        self.min_delta = abs(v.non_negative_float(min_delta, "min_delta"))
        self.mode = resolve_mode(mode, monitor)
        self.baseline = None if baseline is None else float(baseline)
        self.start_from_epoch = int(start_from_epoch)
        self.restore_best_weights = bool(restore_best_weights)
        self.monitor = str(monitor)
        self.reset()

    def reset(self):
        """Forget every check (Keras's on_train_begin)."""
        self.wait = 0
        self.best = None
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.improved = False
        self.stop_reason = None
        self.best_weights = None

    # The notebook reads best_loss; it is the best monitored value (inf before any check).
    @property
    def best_loss(self):
        if self.best is None:
            return math.inf if self.mode == "min" else -math.inf
        return self.best

    @property
    def should_stop(self):
        return self.stop_reason is not None

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def check(self, val_loss, epoch, model=None):
        """Record the monitored value of ``epoch``; return True to continue, False to stop.

        ``model`` (anything with ``state_dict()``) is snapshotted on improvement when
        ``restore_best_weights`` is on.
        """
        if isinstance(val_loss, bool) or not isinstance(val_loss, (numbers.Real, np.floating)):
            raise TypeError(f"val_loss must be a real number, got {val_loss!r}")
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        value = float(val_loss)
        self.improved = False
        if epoch < self.start_from_epoch:
            return True
        if not math.isfinite(value):
            self.stopped_epoch = int(epoch)
            self.stop_reason = f"{self.monitor} is {value} at epoch {epoch}"
            if self.verbose:
                print(f"Early stopping: {self.stop_reason}")
            return False
        if self.restore_best_weights and self.best_weights is None and model is not None:
            self.best_weights = copy.deepcopy(model.state_dict())
        self.wait += 1
        if self._is_improvement(value, self.best):
            self.best = value
            self.best_epoch = int(epoch)
            self.improved = True
            if self.restore_best_weights and model is not None:
                self.best_weights = copy.deepcopy(model.state_dict())
            if self.baseline is None or self._is_improvement(value, self.baseline):
                self.wait = 0
            return True
        if self.wait >= self.patience and int(epoch) > 0:
            self.stopped_epoch = int(epoch)
            self.stop_reason = (
                f"{self.monitor} did not improve for {self.wait} checks (patience {self.patience})"
            )
            if self.verbose:
                print(
                    f"Early stopping at epoch {epoch}: {self.stop_reason}; best "
                    f"{self.monitor} = {self.best:.6g} at epoch {self.best_epoch}"
                )
            return False
        return True

    def restore(self, model):
        """Load the best snapshot into ``model``; returns whether there was one to load."""
        if self.best_weights is None:
            return False
        model.load_state_dict(self.best_weights)
        if self.verbose:
            print(f"Restored the weights of epoch {self.best_epoch} ({self.monitor} = {self.best:.6g})")
        return True

    _STATE_KEYS = (
        "wait",
        "best",
        "best_epoch",
        "stopped_epoch",
        "improved",
        "stop_reason",
        "best_weights",
        "patience",
        "min_delta",
        "mode",
        "baseline",
        "start_from_epoch",
        "restore_best_weights",
        "monitor",
    )

    def state_dict(self):
        """Everything needed to resume counting (settings, counters, best snapshot)."""
        return copy.deepcopy({k: getattr(self, k) for k in self._STATE_KEYS})

    def load_state_dict(self, state, model=None):
        """Restore a :meth:`state_dict` after checking every field (:meth:`check_state_dict`);
        nothing is changed when it does not fit."""
        self.check_state_dict(state, model)
        for k in self._STATE_KEYS:
            setattr(self, k, copy.deepcopy(state[k]))

    def check_state_dict(self, state, model=None):
        """Check a :meth:`state_dict` without taking it (a state read from a file is hostile
        input); with ``model``, the best-weights snapshot must hold exactly its parameters'
        names, shapes and dtypes. Raises ValueError naming the field."""
        if not isinstance(state, dict):
            raise ValueError(f"monitor state must be a dict, got {type(state).__name__}")
        missing = [k for k in self._STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")

        def number(key, optional=False, integral=False, low=None):
            val = state[key]
            if val is None and optional:
                return
            kind = numbers.Integral if integral else numbers.Real
            if (
                isinstance(val, bool)
                or not isinstance(val, kind)
                or (not integral and not math.isfinite(val))
                or (low is not None and float(val) < low)
            ):
                raise ValueError(
                    f"monitor state {key!r} must be a finite "
                    f"{'integer' if integral else 'number'}"
                    f"{f' >= {low}' if low is not None else ''}, got {val!r}"
                )

        for key in ("wait", "best_epoch", "stopped_epoch", "patience", "start_from_epoch"):
            number(key, integral=True, low=0)
        number("min_delta", low=0)
        number("best", optional=True)
        number("baseline", optional=True)
        if state["mode"] not in ("min", "max"):
            raise ValueError(f"monitor state 'mode' must be 'min' or 'max', got {state['mode']!r}")
        for key in ("improved", "restore_best_weights"):
            if not isinstance(state[key], bool):
                raise ValueError(f"monitor state {key!r} must be a bool, got {state[key]!r}")
        for key, optional in (("stop_reason", True), ("monitor", False)):
            if not (isinstance(state[key], str) or (optional and state[key] is None)):
                raise ValueError(f"monitor state {key!r} must be a string, got {state[key]!r}")
        best_weights = state["best_weights"]
        if best_weights is not None:
            if not isinstance(best_weights, dict):
                raise ValueError("monitor state 'best_weights' must be None or a dict of arrays")
            reference = model.state_dict() if model is not None else None
            if reference is not None and set(best_weights) != set(reference):
                raise ValueError(
                    "monitor state 'best_weights' holds "
                    f"{sorted(best_weights)}, the model has {sorted(reference)}"
                )
            for name, arr in best_weights.items():
                ok = isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and arr.dtype.isnative
                if ok and reference is not None:
                    ok = arr.shape == reference[name].shape and arr.dtype == reference[name].dtype
                if not ok or not np.isfinite(arr).all():
                    raise ValueError(
                        f"monitor state 'best_weights'[{name!r}] does not fit the "
                        "model (shape, dtype or non-finite values)"
                    )
