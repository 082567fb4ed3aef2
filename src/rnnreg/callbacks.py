"""Hooks into :func:`rnnreg.fit`: structured events after every batch and every epoch.

A callback is an object with any of the methods ``on_train_begin(event)``, ``on_batch_end(event)``
and ``on_epoch_end(event)``; ``fit(..., callbacks=[...])`` calls them in order. ``on_epoch_end``
returning False stops training after that epoch (as Keras's ``model.stop_training``, or an
Optuna pruner). The events are typed: :class:`TrainBegin`, :class:`BatchEnd` and :class:`EpochEnd`.

Built on them: :class:`EarlyStopping` (the trainer's Keras-exact monitor as a callback),
:class:`CSVLogger` (one row per epoch, flushed as it goes — ``rnnreg train --csv``),
:class:`ReduceLROnPlateau` (``lr_schedule="plateau"``, ``--lr-schedule plateau``) and
:class:`SampleText` (text from the model every few epochs). ``TrainConfig.patience`` remains the
way to early-stop a run that checkpoints: its monitor's state is saved and resumed with it.
``on_train_end(model)`` is called once training is over, before the test evaluation.

A callback changes the model's weights in place (``model.params[name][...] = new`` or
``model.load_state_dict``): a callback that puts other arrays in their place, or leaves a weight
that is not finite, stops the run with an error before the checkpoint is written, so the last
good checkpoint is never overwritten.
"""

import csv
import dataclasses
import io
import math
import os
import stat
from collections.abc import Callable
from typing import Any

from . import _validation as v

__all__ = [
    "Callback",
    "TrainBegin",
    "BatchEnd",
    "EpochEnd",
    "EarlyStopping",
    "CSVLogger",
    "ReduceLROnPlateau",
    "SampleText",
]


@dataclasses.dataclass(frozen=True)
class TrainBegin:
    """Before the first epoch of a run: the epoch it starts at (after its checkpoint's last one
    when resumed; 0 otherwise), the epochs it is set to, the history so far and the model."""

    first_epoch: int
    epochs: int
    history: dict[str, Any]
    model: Any


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

    def on_train_begin(self, event: TrainBegin) -> None:
        """Called once before the first epoch (a resumed run's first one included)."""

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
    trains. The file is opened (its header written) before the first epoch, so a path that
    cannot be written stops the run before any epoch is lost. ``append`` continues the file of a
    resumed run: rows of epochs past the checkpoint's (written before a crash that lost their
    checkpoint) are dropped, so the log matches the run that goes on.

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

    def on_train_begin(self, event):
        kept = self._rows_before(event.first_epoch) if self.append else None
        if kept is None:  # a new log (or a device such as /dev/null, written as it is)
            mode = "a" if self.append and self._is_device() else "w"
            self._write(mode, [] if mode == "a" else [self.FIELDS])
        else:  # the earlier rows, rewritten whole before the old file is replaced
            self._write("w", [self.FIELDS, *kept], self.path + ".tmp")
            os.replace(self.path + ".tmp", self.path)
        self._started = True

    def on_epoch_end(self, event):
        if not self._started:  # called without on_train_begin (by hand)
            self.on_train_begin(TrainBegin(event.epoch, event.epochs, event.history, event.model))
        row = ["" if getattr(event, k) is None else getattr(event, k) for k in self.FIELDS]
        self._write("a", [row])
        return None

    def _write(self, mode, rows, path=None):
        with open(path or self.path, mode, newline="") as f:
            csv.writer(f).writerows(rows)
            f.flush()

    def _is_device(self):
        try:
            return not stat.S_ISREG(os.stat(self.path).st_mode)
        except FileNotFoundError:
            return False

    def _rows_before(self, first_epoch):
        """The rows of an existing log for epochs before ``first_epoch`` (None: no log to
        continue). A file that is not such a log is refused, not overwritten."""
        if not os.path.exists(self.path) or self._is_device():
            return None
        with open(self.path, newline="") as f:
            text = f.read(1 << 26)  # 64 MiB: far beyond a log's size; more is not a log
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return None
        if tuple(rows[0]) != self.FIELDS:
            raise ValueError(
                f"{self.path} is not a CSV log of rnnreg (its first line is not "
                f"{','.join(self.FIELDS)}): give another --csv path, it is left as it is"
            )
        kept = []
        for row in rows[1:]:
            try:
                epoch = int(row[0])
            except (IndexError, ValueError):
                raise ValueError(f"{self.path} has a row that is not an epoch's: {row!r}") from None
            if epoch < first_epoch:
                kept.append(row)
        return kept


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
