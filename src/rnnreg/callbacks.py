"""Hooks into :func:`rnnreg.fit`: typed events before and after every batch and every epoch,
or Keras's ``(epoch, logs)`` calls.

A callback is an object with any of the methods ``on_train_begin``, ``on_epoch_begin``,
``on_batch_begin``, ``on_batch_end``, ``on_epoch_end`` and ``on_train_end``; ``fit(...,
callbacks=[...])`` calls them in order, in one of two forms, chosen by each method's signature:

* typed: ``on_epoch_end(self, event)`` gets an :class:`EpochEnd` (and so on: :class:`TrainBegin`,
  :class:`EpochBegin`, :class:`BatchBegin`, :class:`BatchEnd`; ``on_train_end(self, model)`` gets
  the model);
* Keras's: ``on_epoch_end(self, epoch, logs=None)`` gets the epoch and a dict of what it
  measured (``loss``, ``val_loss``, ``learning_rate``, the sequence metrics as ``val_<name>``);
  ``on_train_begin(self, logs=None)`` and ``on_train_end(self, logs=None)`` get a dict.

A method of any other shape is refused before training, with the two forms it may take. A
callback stops training by returning False from ``on_epoch_end`` or, as in Keras, by setting
``self.model.stop_training = True`` (``fit`` sets ``callback.model`` on every :class:`Callback`,
and calls ``set_model(model)`` where a callback has one); the history's ``stop_reason`` names it.

Built on them, with Keras's names and keywords: :class:`EarlyStopping`, :class:`ModelCheckpoint`,
:class:`ReduceLROnPlateau` (``lr_schedule="plateau"``), :class:`LearningRateScheduler`,
:class:`LambdaCallback`, :class:`TerminateOnNaN`, :class:`CSVLogger` (``rnnreg train --csv``), and
:class:`SampleText` (text from the model every few epochs). ``TrainConfig.patience`` remains the
way to early-stop a run that checkpoints: its monitor's state is saved and resumed with it.
``on_train_end`` is called once training is over, before the test evaluation.

A callback changes the model's weights in place (``model.params[name][...] = new`` or
``model.load_state_dict``): a callback that puts other arrays in their place, or leaves a weight
that is not finite, stops the run with an error before the checkpoint is written, so the last
good checkpoint is never overwritten.
"""

import csv
import dataclasses
import inspect
import io
import math
import os
import stat
import warnings
from collections.abc import Callable
from typing import Any

from . import _validation as v
from .early_stopping import EarlyStoppingMonitor, resolve_mode

__all__ = [
    "Callback",
    "CallbackList",
    "TrainBegin",
    "EpochBegin",
    "BatchBegin",
    "BatchEnd",
    "EpochEnd",
    "EarlyStopping",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "LearningRateScheduler",
    "LambdaCallback",
    "TerminateOnNaN",
    "CSVLogger",
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
    trainer: Any = dataclasses.field(repr=False, default=None)


@dataclasses.dataclass(frozen=True)
class EpochBegin:
    """Before an epoch: its index, the epochs the run is set to and the learning rate the
    schedule gives it (``trainer.set_learning_rate(lr)`` replaces that rate for the epoch)."""

    epoch: int
    epochs: int
    lr: float
    model: Any
    trainer: Any = dataclasses.field(repr=False, default=None)


@dataclasses.dataclass(frozen=True)
class BatchBegin:
    """Before a batch's forward pass: the epoch and the batch's index in it."""

    epoch: int
    batch: int


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
    validation data), the epochs the run is set to, the history so far and the model; ``logs``
    is the same as Keras names it (``loss``, ``val_loss``, ``learning_rate``, ``val_<metric>``)."""

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
    logs: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.logs:  # an event made without them (by hand): Keras's names for its fields
            logs = {"loss": self.train_loss, "val_loss": self.val_loss, "learning_rate": self.lr}
            object.__setattr__(self, "logs", logs)


class Callback:
    """The base of callbacks (any object with these methods serves as one). ``model`` is the
    model being trained (set by ``fit``), as in Keras."""

    model: Any = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, event: TrainBegin) -> None:
        """Called once before the first epoch (a resumed run's first one included)."""

    def on_epoch_begin(self, event: EpochBegin) -> None:
        """Called before every epoch."""

    def on_batch_begin(self, event: BatchBegin) -> None:
        """Called before every batch."""

    def on_batch_end(self, event: BatchEnd) -> None:
        """Called after every optimizer step."""

    def on_epoch_end(self, event: EpochEnd) -> bool | None:
        """Called after every epoch; return False to stop training."""
        return None

    def on_train_end(self, model) -> None:
        """Called once when training is over (stopped or not), before the test evaluation."""


# ----------------------------------------------------------------------------- calling them
#: Each hook: the event it is given in the typed form, and what Keras passes instead.
HOOKS = {
    "on_train_begin": ("TrainBegin", "logs"),
    "on_epoch_begin": ("EpochBegin", "epoch, logs"),
    "on_batch_begin": ("BatchBegin", "batch, logs"),
    "on_batch_end": ("BatchEnd", "batch, logs"),
    "on_epoch_end": ("EpochEnd", "epoch, logs"),
    "on_train_end": ("the model", "logs"),
}


def _form(callback, hook):
    """How ``callback.hook`` is called: None (it has none), "typed" (with the event), "keras"
    (``(index, logs)``, or ``(logs)`` for the train hooks) or "bare" (no argument); a method of
    another shape is a TypeError that says the forms it may take."""
    method = getattr(callback, hook, None)
    if method is None:
        return None
    if not callable(method):
        raise TypeError(f"{type(callback).__name__}.{hook} is not a method")
    try:
        parameters = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: the typed form
        return "typed"
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return "keras"
    index_hook = HOOKS[hook][1].startswith(("epoch", "batch"))
    if index_hook and len(positional) >= 2 and len(required) <= 2:
        return "keras"
    if len(positional) >= 1 and len(required) <= 1:
        return "keras" if not index_hook and positional[0].name == "logs" else "typed"
    if not required:
        return "bare"
    typed, keras = HOOKS[hook]
    raise TypeError(
        f"{type(callback).__name__}.{hook}{inspect.signature(method)} cannot be called: rnnreg "
        f"calls {hook}(event) with a {typed}, or, as Keras does, {hook}({keras}=None)"
    )


class CallbackList:
    """The callbacks of a run, each hook bound once to its form (:func:`rnnreg.fit` makes it):
    ``call(hook, event, index, logs)`` calls every callback's ``hook`` in order, and ``after``
    (given to the constructor) after each, with the callback — except after ``on_train_end``,
    when the run is over. Returns the callbacks whose ``on_epoch_end`` returned False."""

    def __init__(self, callbacks, model, after=None):
        self.callbacks = list(callbacks)
        self.after = after
        self.forms = {hook: [(c, _form(c, hook)) for c in self.callbacks] for hook in HOOKS}
        for callback in self.callbacks:
            if hasattr(callback, "set_model"):
                callback.set_model(model)

    def call(self, hook, event, index=None, logs=None):
        stopped = []
        for callback, form in self.forms[hook]:
            if form is None:
                continue
            method = getattr(callback, hook)
            if form == "typed":
                result = method(event)
            elif form == "bare":
                result = method()
            elif index is None:
                result = method(dict(logs or {}))
            else:
                result = method(index, dict(logs or {}))
            if self.after is not None and hook != "on_train_end":
                self.after(callback)
            if result is False:
                stopped.append(callback)
        return stopped


def _monitored(logs, monitor, who):
    """The value of ``monitor`` in an epoch's logs, or None (with a warning, once per callback)
    when the run does not measure it."""
    value = logs.get(monitor)
    if value is None and not getattr(who, "_warned_missing", False):
        who._warned_missing = True
        warnings.warn(
            f"{type(who).__name__} watches {monitor!r}, which this run does not measure "
            f"(it has {', '.join(sorted(k for k in logs if logs[k] is not None))}): it does nothing "
            + ("without validation data (pass val to fit)" if monitor.startswith("val_") else ""),
            stacklevel=2,
        )
    return value


class EarlyStopping(Callback):
    """Early stopping as a callback: :class:`rnnreg.EarlyStoppingMonitor`'s decisions (Keras 3's
    rule, and its keywords: ``monitor``, ``min_delta``, ``patience``, ``verbose``, ``mode``,
    ``baseline``, ``restore_best_weights``, ``start_from_epoch``) on a value of the epoch's logs
    (``val_loss`` by default; ``loss`` or a sequence metric ``val_<name>`` too). At the end the
    best weights are restored when ``restore_best_weights``, and the history says so
    (``restored_best``) — for runs that want it among their callbacks rather than in
    ``TrainConfig.patience``. (Its defaults are rnnreg's: ``patience=3``,
    ``restore_best_weights=True``.)

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

    def __init__(
        self,
        patience=3,
        min_delta=0.0,
        restore_best_weights=True,
        *,
        monitor="val_loss",
        mode="auto",
        baseline=None,
        start_from_epoch=0,
        verbose=0,
    ):
        self.monitor = EarlyStoppingMonitor(
            patience,
            bool(verbose),
            min_delta=min_delta,
            mode=mode,
            baseline=baseline,
            start_from_epoch=start_from_epoch,
            restore_best_weights=restore_best_weights,
            monitor=monitor,
        )
        self.history = None
        self.stop_reason = None

    def on_train_begin(self, event):
        self.history = event.history

    def on_epoch_end(self, event):
        logs = event.logs
        if self.monitor.monitor == "val_loss" and event.val_loss is None:
            raise ValueError("EarlyStopping needs validation data: pass val to fit")
        value = _monitored(logs, self.monitor.monitor, self)
        if value is None:
            return None
        if not self.monitor.check(value, event.epoch, model=event.model):
            self.stop_reason = self.monitor.stop_reason
            return False
        return None

    def on_train_end(self, model):
        if self.monitor.restore_best_weights and self.monitor.restore(model) and self.history is not None:
            self.history["restored_best"] = True


class ModelCheckpoint(Callback):
    """Keras's ``ModelCheckpoint``: the model file (:func:`rnnreg.save_model`: weights,
    settings, vocabulary) written after every epoch to ``filepath`` — formatted with the epoch
    (from 1, as Keras counts) and the epoch's logs, ``"model-{epoch:02d}-{val_loss:.3f}.npz"`` —
    or, with ``save_best_only``, only when ``monitor`` improves on the best so far (``mode``:
    "min", "max" or "auto"; ``initial_value_threshold``: a value to beat first).

    Examples
    --------
    >>> import os, tempfile
    >>> from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset, load_model
    >>> from rnnreg.callbacks import ModelCheckpoint
    >>> folder = tempfile.mkdtemp()
    >>> _ = fit(RegularizedLSTM(12, 8, seed=0), generate_simple_dataset(6, 12, 32, seed=1),
    ...         generate_simple_dataset(6, 12, 16, seed=2), TrainConfig(epochs=2),
    ...         callbacks=[ModelCheckpoint(os.path.join(folder, "m{epoch}.npz"))], verbose=0)
    >>> sorted(os.listdir(folder))
    ['m1.npz', 'm2.npz']
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint saves once per epoch (save_freq='epoch'), got {save_freq!r}")
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), str(monitor), verbose
        self.save_best_only = bool(save_best_only)
        self.mode = resolve_mode(mode, self.monitor)
        self.best = None if initial_value_threshold is None else float(initial_value_threshold)

    def on_epoch_end(self, event):
        from .checkpoint import save_model

        logs = event.logs
        if self.save_best_only:
            value = _monitored(logs, self.monitor, self)
            if value is None or not math.isfinite(value):
                return None
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            if not better:
                return None
            self.best = value
        try:
            path = self.filepath.format(
                epoch=event.epoch + 1, **{k: x for k, x in logs.items() if x is not None}
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"ModelCheckpoint filepath {self.filepath!r} names {exc} that the logs lack "
                f"(they hold epoch, {', '.join(k for k in logs if logs[k] is not None)})"
            ) from None
        save_model(event.model, path)
        if self.verbose:
            print(f"epoch {event.epoch + 1}: saved the model to {path}")
        return None


class LearningRateScheduler(Callback):
    """Keras's ``LearningRateScheduler``: before every epoch, the learning rate becomes
    ``schedule(epoch, lr)`` — epoch from 0, ``lr`` the rate of the epoch before (the configured
    rate before the first) — replacing ``TrainConfig``'s schedule. ``verbose`` prints each rate.

    Examples
    --------
    >>> from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset
    >>> from rnnreg.callbacks import LearningRateScheduler
    >>> halve = LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr / 2)
    >>> history = fit(RegularizedLSTM(12, 8, seed=0), generate_simple_dataset(6, 12, 32, seed=1),
    ...               None, TrainConfig(epochs=3, lr=0.01), callbacks=[halve], verbose=0)
    >>> history["lr"]
    [0.01, 0.005, 0.0025]
    """

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"schedule must be a function (epoch, lr) -> lr, got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose
        self.last_lr = None

    def on_train_begin(self, event):
        history_lr = event.history.get("lr") or []
        self.last_lr = history_lr[-1] if history_lr else None  # a resumed run goes on from there

    def on_epoch_begin(self, event):
        previous = self.last_lr if self.last_lr is not None else event.trainer.config.lr
        lr = self.schedule(event.epoch, previous)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(
                f"the learning-rate schedule gave {lr!r} for epoch {event.epoch}: it must be > 0"
            )
        event.trainer.set_learning_rate(float(lr))
        self.last_lr = float(lr)
        if self.verbose:
            print(f"epoch {event.epoch + 1}: LearningRateScheduler set the learning rate to {lr:.4g}")


class LambdaCallback(Callback):
    """Keras's ``LambdaCallback``: a callback from functions, each in Keras's form —
    ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``, ``on_batch_begin(batch,
    logs)``, ``on_batch_end(batch, logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``.

    Examples
    --------
    >>> from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset
    >>> from rnnreg.callbacks import LambdaCallback
    >>> seen = []
    >>> _ = fit(RegularizedLSTM(12, 8, seed=0), generate_simple_dataset(6, 12, 32, seed=1), None,
    ...         TrainConfig(epochs=2), verbose=0,
    ...         callbacks=[LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))])
    >>> seen
    [0, 1]
    """

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_batch_begin=None,
        on_batch_end=None,
        on_train_begin=None,
        on_train_end=None,
    ):
        given = dict(
            on_epoch_begin=on_epoch_begin,
            on_epoch_end=on_epoch_end,
            on_batch_begin=on_batch_begin,
            on_batch_end=on_batch_end,
            on_train_begin=on_train_begin,
            on_train_end=on_train_end,
        )
        for hook, function in given.items():
            if function is not None and not callable(function):
                raise TypeError(f"{hook} must be a function, got {function!r}")
            if function is None:
                function = (
                    (lambda logs=None: None) if hook.startswith("on_train") else (lambda i, logs=None: None)
                )
            setattr(self, hook, _keras_form(function, hook))


def _keras_form(function, hook):
    """``function`` as a method in Keras's form (so CallbackList calls it with (index, logs))."""
    if hook.startswith("on_train"):

        def train_hook(logs=None):
            return function(logs)

        return train_hook

    def step_hook(index, logs=None):
        return function(index, logs)

    return step_hook


class TerminateOnNaN(Callback):
    """Keras's ``TerminateOnNaN``: a batch whose loss or gradient is not finite ends training
    there — without the error a run that diverges otherwise ends with — keeping the weights of
    the step before (that step is never applied), so that the test evaluation, the best-model
    file and the history are still written. The history's ``stop_reason`` says where."""

    ends_run_on_non_finite = True


class CSVLogger(Callback):
    """One row per epoch (epoch, train_loss, train_ce, val_loss, lr, grad_norm, max_abs_c,
    seconds) in a CSV file, flushed as it goes, so that a run can be watched or plotted while it
    trains — Keras's ``CSVLogger(filename, separator=",", append=False)``. The file is opened
    (its header written) before the first epoch, so a path that
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

    def __init__(self, filename, separator=",", append=False):
        self.path = os.fspath(filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be one character, got {separator!r}")
        self.separator = separator
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
            csv.writer(f, delimiter=self.separator).writerows(rows)
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
        rows = list(csv.reader(io.StringIO(text), delimiter=self.separator))
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
    """Multiply the learning rate by ``factor`` when ``monitor`` (the validation loss by
    default) has not improved (by more than ``min_delta``) for ``patience`` epochs, never below
    ``min_lr`` — Keras's and PyTorch's rule: the new rate is ``max(lr · factor, min_lr)``, and a
    rate already at ``min_lr`` stays; after a cut, ``cooldown`` epochs pass before counting
    again. It scales whatever the schedule gives from then on. Each cut is said (``verbose``,
    through ``log``: print by default; the trainer's own plateau schedule says it in the run's
    log). Without the monitored value (no validation data) it warns once and does nothing. With
    ``lr_schedule="plateau"`` its state is in fit's checkpoints, so a resumed run goes on
    exactly. (Its defaults are rnnreg's: ``factor=0.5``, ``patience=2``, ``min_delta=0``.)"""

    def __init__(
        self,
        factor=0.5,
        patience=2,
        min_delta=0.0,
        min_lr=0.0,
        *,
        monitor="val_loss",
        mode="auto",
        cooldown=0,
        verbose=0,
        log: Callable[[str], Any] | None = None,
    ):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1, got {patience!r}")
        if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
            raise ValueError(f"cooldown must be an int >= 0, got {cooldown!r}")
        self.factor, self.patience, self.cooldown = float(factor), patience, cooldown
        self.min_delta = v.non_negative_float(min_delta, "min_delta")
        self.min_lr = v.non_negative_float(min_lr, "min_lr")
        self.monitor = str(monitor)
        self.mode = resolve_mode(mode, self.monitor)
        self.verbose, self.log = verbose, log or print
        self.best, self.wait, self.cooldown_left = (math.inf if self.mode == "min" else -math.inf), 0, 0

    def _improves(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, event):
        if event.trainer is None:
            return None
        logs = event.logs
        value = _monitored(logs, self.monitor, self)
        if value is None:
            return None
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self._improves(value):
            self.best, self.wait = value, 0
            return None
        if self.cooldown_left > 0:
            return None
        self.wait += 1
        if self.wait >= self.patience:
            self.wait = 0
            if event.lr > self.min_lr:
                new_lr = max(event.lr * self.factor, self.min_lr)
                event.trainer.lr_scale *= new_lr / event.lr
                self.cooldown_left = self.cooldown
                if self.verbose:
                    self.log(
                        f"epoch {event.epoch}: ReduceLROnPlateau cut the learning rate to {new_lr:.4g} "
                        f"({self.monitor} has not improved on {self.best:.4f} for {self.patience} epochs)"
                    )
        return None

    def state_dict(self):
        """``best`` (None before the first value), ``wait`` and ``cooldown`` (the epochs of
        cooldown left): JSON-ready."""
        return {
            "best": None if math.isinf(self.best) else float(self.best),
            "wait": self.wait,
            "cooldown": self.cooldown_left,
        }

    def load_state_dict(self, state):
        """Take a :meth:`state_dict`; checked whole before anything changes (ValueError). A
        state written before cooldown existed has none left."""
        self.check_state_dict(state)
        best = state["best"]
        self.best = (math.inf if self.mode == "min" else -math.inf) if best is None else float(best)
        self.wait = state["wait"]
        self.cooldown_left = state.get("cooldown", 0)

    def check_state_dict(self, state):
        """Raise ValueError naming what in ``state`` is not a state of this rule."""
        if not isinstance(state, dict) or not {"best", "wait"} <= set(state) <= {"best", "wait", "cooldown"}:
            raise ValueError(
                f"a ReduceLROnPlateau state is a dict with 'best', 'wait' (and 'cooldown'), got {state!r}"
            )
        best, wait = state["best"], state["wait"]
        if best is not None and (
            isinstance(best, bool) or not isinstance(best, (int, float)) or not math.isfinite(best)
        ):
            raise ValueError(f"ReduceLROnPlateau 'best' must be None or a finite number, got {best!r}")
        if isinstance(wait, bool) or not isinstance(wait, int) or not 0 <= wait < self.patience:
            raise ValueError(f"ReduceLROnPlateau 'wait' must be an int in [0, {self.patience}), got {wait!r}")
        left = state.get("cooldown", 0)
        if isinstance(left, bool) or not isinstance(left, int) or not 0 <= left <= self.cooldown:
            raise ValueError(
                f"ReduceLROnPlateau 'cooldown' must be an int in [0, {self.cooldown}], got {left!r}"
            )


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
