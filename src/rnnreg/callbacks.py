"""Hooks into :func:`rnnreg.fit`: structured events after every batch and every epoch.

A callback is an object with any of the methods ``on_batch_end(event)`` and
``on_epoch_end(event)``; ``fit(..., callbacks=[...])`` calls them in order. ``on_epoch_end``
returning False stops training after that epoch (as Keras's ``model.stop_training``, or an
Optuna pruner). The events are typed: :class:`BatchEnd` and :class:`EpochEnd`.

Built on them: :class:`EarlyStopping` (the trainer's Keras-exact monitor as a callback),
:class:`CSVLogger` (one row per epoch, flushed as it goes — ``rnnreg train --csv``),
:class:`ReduceLROnPlateau` (``lr_schedule="plateau"``, ``--lr-schedule plateau``) and
:class:`SampleText` (text from the model every few epochs). ``TrainConfig.patience`` remains the
way to early-stop a run that checkpoints: its monitor's state is saved and resumed with it.
``on_train_end(model)`` is called once training is over, before the test evaluation.
"""

import csv
import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

from . import _validation as v

__all__ = [
    "Callback",
    "BatchEnd",
    "EpochEnd",
    "EarlyStopping",
    "CSVLogger",
    "ReduceLROnPlateau",
    "SampleText",
]


@dataclasses.dataclass(frozen=True)
class BatchEnd:
    """After an optimizer step: the epoch, the batch's index in it, its training loss (with the
    penalties), its gradient norm before clipping, and the learning rate used."""

    epoch: int
    batch: int
    loss: float
    grad_norm: float
    lr: float


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    """After an epoch's evaluation: what the history records for it (``val_loss`` None without
    validation data), the epochs the run is set to, the history so far and the model."""

    epoch: int
    epochs: int
    train_loss: float
    train_ce: float
    val_loss: float | None
    lr: float
    grad_norm: float
    max_abs_c: float | None
    seconds: float
    history: dict[str, Any]
    model: Any
    trainer: Any = dataclasses.field(repr=False, default=None)


class Callback:
    """The base of callbacks (any object with these methods serves as one)."""

    def on_batch_end(self, event: BatchEnd) -> None:
        """Called after every optimizer step."""

    def on_epoch_end(self, event: EpochEnd) -> bool | None:
        """Called after every epoch; return False to stop training."""
        return None

    def on_train_end(self, model) -> None:
        """Called once when training is over (stopped or not), before the test evaluation."""


class EarlyStopping(Callback):
    """Early stopping as a callback: :class:`rnnreg.EarlyStoppingMonitor`'s decisions (Keras 3's
    rule) on the validation loss, and at the end the best weights restored when
    ``restore_best_weights`` — for runs that want it among their callbacks rather than in
    ``TrainConfig.patience``.

    Examples
    --------
    >>> from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset
    >>> from rnnreg.callbacks import EarlyStopping
    >>> stop = EarlyStopping(patience=1)
    >>> history = fit(RegularizedLSTM(12, 8, seed=0), generate_simple_dataset(6, 12, 32, seed=1),
    ...               generate_simple_dataset(6, 12, 16, seed=2), TrainConfig(epochs=30, lr=0.05),
    ...               callbacks=[stop], verbose=0)
    >>> len(history["epoch"]) < 30, stop.monitor.best_epoch is not None
    (True, True)
    """

    def __init__(self, patience=3, min_delta=0.0, restore_best_weights=True):
        from .early_stopping import EarlyStoppingMonitor

        self.monitor = EarlyStoppingMonitor(
            patience, min_delta=min_delta, restore_best_weights=restore_best_weights
        )

    def on_epoch_end(self, event):
        if event.val_loss is None:
            raise ValueError("EarlyStopping needs validation data: pass val to fit")
        return False if not self.monitor.check(event.val_loss, event.epoch, model=event.model) else None

    def on_train_end(self, model):
        if self.monitor.restore_best_weights:
            self.monitor.restore(model)


class CSVLogger(Callback):
    """One row per epoch (epoch, train_loss, train_ce, val_loss, lr, grad_norm, max_abs_c,
    seconds) in a CSV file, flushed as it goes, so that a run can be watched or plotted while it
    trains. ``append`` continues a file (a resumed run).

    Examples
    --------
    >>> import os, tempfile
    >>> from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset
    >>> from rnnreg.callbacks import CSVLogger
    >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
    >>> _ = fit(RegularizedLSTM(12, 8, seed=0), generate_simple_dataset(6, 12, 32, seed=1),
    ...         generate_simple_dataset(6, 12, 16, seed=2), TrainConfig(epochs=2),
    ...         callbacks=[CSVLogger(path)], verbose=0)
    >>> open(path).read().splitlines()[0]
    'epoch,train_loss,train_ce,val_loss,lr,grad_norm,max_abs_c,seconds'
    """

    FIELDS = ("epoch", "train_loss", "train_ce", "val_loss", "lr", "grad_norm", "max_abs_c", "seconds")

    def __init__(self, path, append=False):
        self.path = os.fspath(path)
        self.append = bool(append)
        self._started = False

    def on_epoch_end(self, event):
        fresh = not self._started and not (self.append and os.path.exists(self.path))
        with open(self.path, "w" if fresh else "a", newline="") as f:
            writer = csv.writer(f)
            if fresh:
                writer.writerow(self.FIELDS)
            writer.writerow(["" if getattr(event, k) is None else getattr(event, k) for k in self.FIELDS])
            f.flush()
        self._started = True
        return None


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when the validation loss has not improved (by
    more than ``min_delta``) for ``patience`` epochs, never below ``min_lr`` — Keras's and
    PyTorch's rule: the new rate is ``max(lr · factor, min_lr)``, and a rate already at
    ``min_lr`` stays. It scales whatever the schedule gives from then on. With
    ``lr_schedule="plateau"`` its state is in fit's checkpoints, so a resumed run goes on
    exactly."""

    def __init__(self, factor=0.5, patience=2, min_delta=0.0, min_lr=0.0):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1, got {patience!r}")
        self.factor, self.patience = float(factor), patience
        self.min_delta = v.non_negative_float(min_delta, "min_delta")
        self.min_lr = v.non_negative_float(min_lr, "min_lr")
        self.best, self.wait = math.inf, 0

    def on_epoch_end(self, event):
        if event.val_loss is None or event.trainer is None:
            return None
        if event.val_loss < self.best - self.min_delta:
            self.best, self.wait = event.val_loss, 0
            return None
        self.wait += 1
        if self.wait >= self.patience:
            self.wait = 0
            if event.lr > self.min_lr:
                new_lr = max(event.lr * self.factor, self.min_lr)
                event.trainer.lr_scale *= new_lr / event.lr
        return None

    def state_dict(self):
        """``best`` (None before the first validation loss) and ``wait``: JSON-ready."""
        return {"best": None if math.isinf(self.best) else float(self.best), "wait": self.wait}

    def load_state_dict(self, state):
        """Take a :meth:`state_dict`; checked whole before anything changes (ValueError)."""
        self.check_state_dict(state)
        best = state["best"]
        self.best = math.inf if best is None else float(best)
        self.wait = state["wait"]

    def check_state_dict(self, state):
        """Raise ValueError naming what in ``state`` is not a state of this rule."""
        if not isinstance(state, dict) or set(state) != {"best", "wait"}:
            raise ValueError(f"a ReduceLROnPlateau state is a dict with 'best' and 'wait', got {state!r}")
        best, wait = state["best"], state["wait"]
        if best is not None and (
            isinstance(best, bool) or not isinstance(best, (int, float)) or not math.isfinite(best)
        ):
            raise ValueError(f"ReduceLROnPlateau 'best' must be None or a finite number, got {best!r}")
        if isinstance(wait, bool) or not isinstance(wait, int) or not 0 <= wait < self.patience:
            raise ValueError(f"ReduceLROnPlateau 'wait' must be an int in [0, {self.patience}), got {wait!r}")


class SampleText(Callback):
    """Every ``every`` epochs, ``length`` characters from the model after ``prime`` (seeded),
    passed to ``log`` (print by default): how the model writes as it learns."""

    def __init__(self, prime="The ", length=80, every=1, seed=0, log: Callable[[str], Any] | None = None):
        self.prime, self.length, self.every, self.seed = prime, length, every, seed
        self.log = log or print

    def on_epoch_end(self, event):
        if (event.epoch + 1) % self.every == 0 and event.model.vocabulary is not None:
            text = event.model.generate(self.prime, self.length, rng=self.seed)
            self.log(f"epoch {event.epoch} sample: {self.prime + text!r}")
        return None
