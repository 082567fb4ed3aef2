"""Training: mini-batches, truncated BPTT, evaluation every epoch, early stopping, checkpoints.

One loop a reader can hold in their head (see :func:`fit`)::

    for epoch:
        set the learning rate from the schedule
        for each batch: forward -> backward -> clip -> optimizer step   (state carried across chunks)
        evaluate on held-out data (no dropout)
        early stopping check (snapshot the best weights) -> checkpoint

Two kinds of data:

* a pair ``(inputs, targets)`` of int arrays (N, T): independent sequences, shuffled into
  mini-batches every epoch, each starting from a zero state;
* a 1-D int array: one long token stream (text). It is cut into ``batch_size`` parallel
  streams and read in chunks of ``bptt`` steps; the LSTM state is carried from one chunk to the
  next but gradients stop at chunk boundaries (truncated backpropagation through time).

Reported losses are mean cross-entropy per token in nats; with coupled weight decay the
training loss also contains the L2 penalty λ/2·Σw² (``train_loss``; ``train_ce`` is without it).
Validation and test losses are plain cross-entropy, so settings compare fairly.
"""

import dataclasses
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _ops
from . import _validation as v
from ._conventions import stream_geometry
from .callbacks import BatchBegin, BatchEnd, CallbackList, EpochBegin, EpochEnd, ReduceLROnPlateau, TrainBegin
from .checkpoint import load_model, save_model  # noqa: F401 (API)
from .early_stopping import EarlyStoppingMonitor
from .optim import NTASGD, SGD, Adam, AdamW, clip_grad_norm, cosine_lr, global_norm, step_lr
from .parameters import squared_norms
from .sequences import METRICS, SequenceSet, finish_metrics, sequence_set, task_metrics, valid_steps
from .training_state import HISTORY_LISTS, restore_training_state, save_training_state

if TYPE_CHECKING:
    from .model import RegularizedLSTM

__all__ = ["TrainConfig", "fit", "evaluate", "iterate_batches", "TrainingError"]


_logger = logging.getLogger("rnnreg")


class TrainingError(RuntimeError):
    """Training could not go on (a non-finite loss or gradient)."""


@dataclasses.dataclass
class TrainConfig:
    """Settings of :func:`fit`.

    The defaults are the command line's too (``rnnreg train --help``). Batch 8, BPTT 35 and Adam
    at 5e-3 learned fastest per epoch and per second among the settings compared by
    ``benchmarks/learning.py`` (the regularizers guide, "Initialization and training defaults").

    Parameters
    ----------
    epochs : int
    batch_size : int
        Sequences (or parallel streams of a 1-D token stream) per step.
    bptt : int
        Truncated-BPTT length: steps per chunk of a stream; the state carries over, gradients stop.
    optimizer : {"sgd", "adam", "adamw", "nt-asgd"}
        "nt-asgd": SGD that switches to averaging its iterates once validation has not improved
        for ``nonmono`` epochs (AWD-LSTM's NT-ASGD, :class:`rnnreg.optim.NTASGD`); evaluation,
        early stopping and the final model then use the averaged weights. Needs validation data.
    lr : float
    momentum : float
        SGD only.
    weight_decay : float
        λ: coupled L2 (λ/2·Σw² added to the loss) for sgd and adam, decoupled for adamw.
    clip_norm : float or None
        Global gradient-norm clipping; None turns it off.
    lr_schedule : None, "cosine", "step", "plateau" or callable
        A function epoch -> learning rate, or a named schedule; "plateau" halves the rate when
        validation has not improved for 2 epochs (:class:`rnnreg.callbacks.ReduceLROnPlateau`).
    patience : int or None
        Early-stopping patience (None: no early stopping; needs validation data).
    min_delta : float
        The smallest decrease of the validation loss that counts as an improvement.
    restore_best_weights : bool
        With early stopping, end with the best epoch's weights.
    eval_as_streams : bool
        Evaluate a single long validation stream as ``batch_size`` parallel streams (an
        approximation, off by default: see :func:`evaluate`'s ``as_streams``).
    seed : int
        Shuffling, stream order and everything else the trainer draws.
    progress : bool
        A progress bar per epoch (only when stderr is a terminal).
    checkpoint_path : str, optional
        Write a checkpoint there after every epoch (``fit(..., resume_from=path)`` continues it).
    best_model_path : str, optional
        Write a model file (:func:`rnnreg.save_model`: weights, settings, vocabulary) there
        whenever the validation loss improves: the best weights seen, as they were evaluated.
    model_path : str, optional
        Write a model file there at the end: the weights the run reports (its test loss is
        theirs) — the best ones when early stopping restores them.
    nonmono : int
        NT-ASGD's non-monotone interval n (epochs).
    standardize : bool
        For real-valued inputs: standardize each feature with the mean and standard deviation of
        the training split (its valid steps, nothing else), stored with the model
        (``model.standardizer``) and applied wherever the model reads inputs.
    monitor : str
        What early stopping watches: ``"val_loss"``, or a validation metric of a sequence task
        (``"val_accuracy"``, ``"val_mae"``, ...; see ``rnnreg.sequences.METRICS``); the
        mode follows the name as in Keras (accuracy: higher is better).
    variable_bptt : bool
        AWD-LSTM's variable-length BPTT on token streams: each chunk's length is drawn from
        N(bptt, 5²) — N(bptt/2, 5²) with probability 0.05 — at least min(5, bptt), and the
        learning rate of its step is scaled by length / bptt, so that every token weighs the
        same and the chunk boundaries fall in different places every epoch.

    Examples
    --------
    >>> from rnnreg import TrainConfig
    >>> config = TrainConfig(epochs=5, weight_decay=1e-4, patience=2)
    >>> config.validate().batch_size, config.clip_norm
    (8, 5.0)
    >>> TrainConfig(lr=-1).validate()
    Traceback (most recent call last):
        ...
    ValueError: lr must be a finite number > 0, got -1.0
    """

    epochs: int = 20
    batch_size: int = 8
    bptt: int = 35
    optimizer: str = "adam"  # "sgd", "adam" or "adamw"
    lr: float = 5e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0  # coupled L2 for sgd/adam, decoupled for adamw
    clip_norm: float | None = 5.0  # global gradient-norm clipping; None turns it off
    lr_schedule: None | str | Callable[[int], float] = None  # a name, or epoch -> lr
    patience: int | None = None
    min_delta: float = 0.0
    restore_best_weights: bool = True
    eval_as_streams: bool = False
    seed: int = 0
    progress: bool = True
    checkpoint_path: str | None = None
    best_model_path: str | None = None
    model_path: str | None = None
    nonmono: int = 5
    variable_bptt: bool = False
    monitor: str = "val_loss"
    standardize: bool = False

    def to_dict(self):
        """The settings as JSON-able values (a function given as lr_schedule is left out)."""
        return {k: val for k, val in dataclasses.asdict(self).items() if not callable(val)}

    def validate(self):
        v.positive_int(self.epochs, "epochs")
        v.positive_int(self.batch_size, "batch_size")
        v.positive_int(self.bptt, "bptt")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got {self.optimizer!r}"
            )
        v.positive_int(self.nonmono, "nonmono")
        v.positive_float(self.lr, "lr")
        v.non_negative_float(self.weight_decay, "weight_decay")
        if self.clip_norm is not None:
            v.positive_float(self.clip_norm, "clip_norm")
        if self.patience is not None:
            v.positive_int(self.patience, "patience", minimum=0)
        if not (
            self.lr_schedule is None
            or callable(self.lr_schedule)
            or self.lr_schedule in ("cosine", "step", "plateau")
        ):
            raise ValueError(
                "lr_schedule must be None, 'cosine', 'step', 'plateau' or a function "
                f"epoch -> lr, got {self.lr_schedule!r}"
            )
        return self


OPTIMIZERS = ("sgd", "adam", "adamw", "nt-asgd")
#: Optimizers whose weight decay is coupled L2 (a term of the loss), not decoupled.
COUPLED_DECAY = ("sgd", "adam", "nt-asgd")


def make_optimizer(model, config):
    params = model.parameters()
    decay = model.decay_parameter_names()
    if config.optimizer == "sgd":
        return SGD(params, config.lr, config.momentum, config.weight_decay, decay)
    if config.optimizer == "nt-asgd":
        return NTASGD(params, config.lr, config.weight_decay, decay, nonmono=config.nonmono)
    if config.optimizer == "adam":
        return Adam(params, config.lr, weight_decay=config.weight_decay, decay=decay)
    return AdamW(params, config.lr, weight_decay=config.weight_decay, decay=decay)


def _schedule(config):
    if config.lr_schedule in (None, "plateau"):  # plateau: a callback scales the constant rate
        return lambda epoch: config.lr
    if config.lr_schedule == "cosine":
        return cosine_lr(config.lr, config.epochs, warmup_epochs=min(2, config.epochs - 1))
    if config.lr_schedule == "step":
        return step_lr(config.lr, max(1, config.epochs // 3))
    return config.lr_schedule


# ----------------------------------------------------------------------------- data
def _check_data(data, name, vocab_size, output_size):
    if isinstance(data, (tuple, list)) and len(data) == 2:
        inputs = v.token_array(data[0], f"{name} inputs", vocab_size, ndim=2)
        targets = v.token_array(data[1], f"{name} targets", output_size, ndim=2)
        v.check_shape(targets, f"{name} targets", inputs.shape, "(matching the inputs)")
        return inputs, targets
    stream = v.token_array(data, name, min(vocab_size, output_size), ndim=1)
    if stream.size < 2:
        raise ValueError(f"{name} must hold at least 2 tokens, got {stream.size}")
    return stream


def variable_bptt_lengths(total, bptt, rng):
    """Chunk lengths covering ``total`` steps, drawn as AWD-LSTM draws them: around ``bptt``
    (95%) or ``bptt / 2`` (5%), normal with standard deviation 5, at least min(5, bptt)."""
    lengths, covered, shortest = [], 0, min(5, bptt)
    while covered < total:
        base = bptt if rng.random() < 0.95 else bptt / 2
        length = min(max(shortest, int(rng.normal(base, 5))), total - covered)
        lengths.append(length)
        covered += length
    return lengths


def iterate_batches(data, batch_size, bptt, rng=None, lengths=None):
    """Yield ``(inputs, targets, new_sequence)`` batches.

    For a pair (N, T) the rows are shuffled with ``rng`` (in order when None) and every batch
    starts a new sequence. For a 1-D stream, ``batch_size`` contiguous streams are read side by
    side in chunks of ``bptt`` steps — or of the given ``lengths`` (see
    :func:`variable_bptt_lengths`); only the first chunk starts new sequences.
    """
    if isinstance(data, tuple):
        inputs, targets = data
        order = np.arange(len(inputs)) if rng is None else rng.permutation(len(inputs))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            yield inputs[rows], targets[rows], True
        return
    batch_size, length = stream_geometry(data.size, batch_size)
    streams = data[: length * batch_size + 1]
    inputs = streams[:-1].reshape(batch_size, length)
    targets = streams[1:].reshape(batch_size, length)
    if lengths is None:
        lengths = [bptt] * math.ceil(length / bptt)
    start = 0
    for size in lengths:
        yield inputs[:, start : start + size], targets[:, start : start + size], start == 0
        start += size


def evaluate(
    model,
    data,
    batch_size=TrainConfig.batch_size,
    bptt=TrainConfig.bptt,
    *,
    starts=None,
    stats=None,
    as_streams=False,
):
    """Mean cross-entropy per token on ``data``, without dropout — or, for a model that
    classifies, regresses or forecasts sequences, the task's loss and metrics.

    A pair (N, T) is read in batches of ``batch_size`` independent sequences. A 1-D stream is read
    document by document — ``starts`` gives where each begins (default: one document) — each from
    a zero state and in chunks of ``bptt`` with the state carried inside it, so that no state runs
    on from one unrelated document into the next and no token is dropped. The documents are read
    side by side in ``batch_size`` rows (longest first, each a row of its own; where one ends,
    the next takes its row at the next chunk), which gives the loss of reading each alone (to
    rounding) in far fewer kernel calls; one long document is read as one row, exactly.

    Parameters
    ----------
    model : RegularizedLSTM
    data : (inputs, targets) pair of int arrays (N, T), or a 1-D int array (a token stream);
        for a sequence task, ``(X, y)`` as :func:`fit` takes it
    batch_size : int
        Sequences per forward pass (pairs only).
    bptt : int
        Chunk length of a stream.
    starts : sequence of int, optional
        Where each document of a stream begins.
    stats : dict, optional
        Receives ``max_abs_c``, the largest absolute cell state seen.
    as_streams : bool
        An approximation, off by default, for one long stream: cut it into ``batch_size``
        parallel streams read side by side, as training reads it and as PyTorch users evaluate
        (each stream after the first starts from a zero state in the middle of the text, so the
        loss is a little higher than the exact one; the first ``bptt`` tokens of each cost more).
        With ``starts`` the documents are read side by side, exactly, either way.

    Returns
    -------
    float or dict
        Nats per token; for a sequence task a dict: ``loss`` (the training loss without
        penalties: cross-entropy per sequence, or mean squared error) and the task's metrics —
        ``accuracy`` for classify; ``mse``, ``mae``, ``rmse`` for regress and forecast (over the
        valid steps).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import RegularizedLSTM, evaluate
    >>> model = RegularizedLSTM(12, 16, seed=0)
    >>> loss = evaluate(model, np.arange(40) % 12)     # a 1-D stream: one document
    >>> bool(abs(loss - np.log(12)) < 0.5)             # an untrained model: about log(V)
    True
    """
    if model.model_config.task != "next-token":
        return _evaluate_sequences(model, sequence_set(data, "data", model.model_config), batch_size, stats)
    data = _check_data(data, "data", model.vocab_size, model.output_size)
    total, count, max_c = 0.0, 0, 0.0

    def run(inputs, targets, state):
        nonlocal total, count, max_c
        loss, _, state = model.forward_batch(inputs, targets, state, training=False)
        total += loss * targets.size
        count += targets.size
        max_c = max(max_c, model.largest_cell_state())
        return state

    if isinstance(data, tuple):
        for inputs, targets, _ in iterate_batches(data, batch_size, bptt):
            run(inputs, targets, None)
    elif as_streams and (starts is None or len(starts) <= 1):
        state = None
        for inputs, targets, new in iterate_batches(data, batch_size, bptt):
            state = run(inputs, targets, None if new else state)
        if data.size - 1 > count:  # the tokens the streams' layout leaves over, read alone
            rest = data[count:]
            run(rest[None, :-1], rest[None, 1:], None)
    else:
        bounds = np.asarray([0] if starts is None else starts, np.int64)
        ends = np.append(bounds[1:], data.size)
        documents = [data[begin:end] for begin, end in zip(bounds, ends) if end - begin >= 2]
        documents.sort(key=len, reverse=True)
        total, count, max_c = _evaluate_side_by_side(model, documents, batch_size, bptt)
    if count == 0:
        raise ValueError("data holds no document of two tokens or more to evaluate on")
    if stats is not None:
        stats["max_abs_c"] = max_c
    return total / count


def _evaluate_sequences(model, data, batch_size, stats=None):
    """The loss and metrics of a sequence set, in batches of ``batch_size`` (no dropout)."""
    if data.targets is None:
        raise ValueError("evaluate needs targets: pass (inputs, targets)")
    task = data.task
    total, weight, max_c = 0.0, 0, 0.0
    sums: dict[str, tuple[float, int]] = {}
    for batch in data.batches(batch_size):
        loss, outputs, _ = model.forward_batch(batch.inputs, batch.targets, lengths=batch.lengths)
        total += loss * batch.weight
        weight += batch.weight
        for name, (value, count) in task_metrics(task, outputs, batch.targets, batch.lengths).items():
            old_value, old_count = sums.get(name, (0.0, 0))
            sums[name] = (old_value + value, old_count + count)
        T = batch.inputs.shape[1]
        max_c = max(max_c, model.largest_cell_state(valid_steps(batch.lengths, T)))
    if stats is not None:
        stats["max_abs_c"] = max_c
    return dict(loss=total / weight, **finish_metrics(task, sums))


def _evaluate_side_by_side(model, documents, batch_size, bptt):
    """Summed cross-entropy, token count and largest |c| of documents (longest first) read side
    by side: up to ``batch_size`` rows, each reading one document from a zero state in chunks of
    ``bptt`` with its state carried, exactly as reading it alone computes (rows never mix). A row
    whose document ends inside a chunk is padded to the chunk's end, its padding left out of
    every sum, and the next document takes its place at the next chunk, from a zero state: the
    batch stays full until the documents run out, instead of running on with a few rows while
    its longest document lasts."""
    queue = iter(documents)
    rows: list[Any] = []  # per row of the batch: [document, tokens already read]
    state = None
    total, count, max_c = 0.0, 0, 0.0
    while True:
        kept = [k for k, (doc, read) in enumerate(rows) if read < doc.size - 1]
        rows = [rows[k] for k in kept]
        while len(rows) < batch_size:
            doc = next(queue, None)
            if doc is None:
                break
            rows.append([doc, 0])
        if not rows:
            return total, count, max_c
        if state is not None:  # the rows that go on keep their state; new ones start at zero
            state = tuple(_state_rows(part, kept, len(rows)) for part in state)
        lengths = np.array([min(bptt, doc.size - 1 - read) for doc, read in rows])
        inputs = np.zeros((len(rows), int(lengths.max())), np.int64)
        targets = np.zeros_like(inputs)
        for row, ((doc, read), length) in enumerate(zip(rows, lengths)):
            inputs[row, :length] = doc[read : read + length]
            targets[row, :length] = doc[read + 1 : read + 1 + length]
            rows[row][1] = read + length
        _, logits, state = model.forward_batch(inputs, None, state)
        valid = np.arange(inputs.shape[1])[None, :] < lengths[:, None]
        # The loss kernel on the real positions only (the padding's logits are left out).
        tokens = int(lengths.sum())
        loss, _ = _ops.kernels().softmax_cross_entropy(np.ascontiguousarray(logits[valid]), targets[valid])
        total += loss * tokens
        count += tokens
        max_c = max(max_c, model.largest_cell_state(valid))


def _state_rows(part, kept, rows):
    """A state part (num_layers, N, H) for a batch of ``rows`` rows: the kept rows' own, in
    order, then zeros."""
    out = np.zeros((part.shape[0], rows, part.shape[2]), part.dtype)
    out[:, : len(kept)] = part[:, kept]
    return out


# ----------------------------------------------------------------------------- progress
def _in_notebook():
    """Whether this runs in a Jupyter kernel (where stderr is no terminal, but tqdm.auto draws a
    widget)."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _interactive():
    return _in_notebook() or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


def _verbosity(verbose):
    """fit's verbose as 0, 1 or 2 ("auto": 1 in a terminal or notebook, else 0)."""
    if isinstance(verbose, str) and verbose == "auto":
        return 1 if _interactive() else 0
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class _Progress:
    """A progress bar over one epoch's batches — only on a terminal (stderr) or in a notebook,
    so that a log piped to a file holds lines, not redrawn frames. tqdm's (``tqdm.auto``: a
    widget in notebooks, with rate and ETA) when tqdm is installed, else a plain one-line bar."""

    def __init__(self, total, label, enabled):
        self.total, self.label = total, label
        self.enabled = enabled and _interactive()
        self.done, self.last, self.bar = 0, 0.0, None
        if self.enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=total, desc=label, leave=False, unit="batch", file=sys.stderr, mininterval=0.1
                )

    def update(self, loss):
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            return
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.1 or self.done == self.total):
            self.last = now
            width = 24
            filled = int(width * self.done / max(1, self.total))
            sys.stderr.write(
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total} loss {loss:.4f}"
            )
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


def _steps_per_epoch(data, batch_size, bptt):
    if isinstance(data, SequenceSet):
        return math.ceil(len(data) / batch_size)
    if isinstance(data, tuple):
        return math.ceil(len(data[0]) / batch_size)
    _, length = stream_geometry(data.size, batch_size)
    return math.ceil(length / bptt)


# ----------------------------------------------------------------------------- the loop
def fit(
    model: "RegularizedLSTM",
    train: Any,
    val: Any = None,
    config: TrainConfig | None = None,
    *,
    test: Any = None,
    resume_from: str | None = None,
    log: Callable[[str], Any] | None = None,
    name: str | None = None,
    verbose: int | str = "auto",
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train ``model`` and return its history.

    Parameters
    ----------
    model : RegularizedLSTM
    train, val, test : (inputs, targets) pairs of (N, T) int arrays, or 1-D token streams; or
        ``train`` a :class:`~rnnreg.CharCorpus`, whose splits serve as val and test (unless given)
        and whose vocabulary the model takes
    config : TrainConfig
    resume_from : path of a checkpoint written by an earlier ``fit`` (same model and config):
        training continues after its last epoch, with the same results as a run that never stopped.
    log : callable taking one line per epoch (``epoch i/N``, the losses, the learning rate, the
        gradient norm, seconds and the ETA of the run); when not given, the lines are printed
        (``verbose`` 1 or 2) or go to the ``rnnreg`` logger at INFO level (``verbose=0``)
    name : str, optional
        A label for the progress bar and log lines (e.g. the setting of a comparison)
    verbose : {"auto", 0, 1, 2}
        As in Keras: 0 silent, 1 a progress bar per epoch (in a terminal, or a widget in a
        Jupyter notebook through ``tqdm.auto``) and a line per epoch, 2 a line per epoch. "auto"
        is 1 in a terminal or a notebook and 0 otherwise (a script whose output is piped, a test).
        ``TrainConfig(progress=False)`` turns the bar off whatever the level.
    callbacks : sequence of :class:`rnnreg.callbacks.Callback`
        Called before and after the run, every epoch and every batch, with typed events
        (:class:`~rnnreg.callbacks.EpochEnd`, ...) or, as Keras does, with ``(epoch, logs)``
        (see ``rnnreg.callbacks``); ``on_epoch_end`` returning False, or
        ``model.stop_training = True``, stops training (the history's ``stop_reason`` names the
        callback).

    Returns
    -------
    history : dict
        Lists per epoch — ``epoch``, ``train_loss``, ``train_ce``, ``val_loss``, ``lr``,
        ``grad_norm`` (mean pre-clipping norm), ``seconds`` — and ``best_epoch``,
        ``best_val_loss``, ``stopped_epoch``, ``stop_reason``, ``restored_best``, ``test_loss``.

    Examples
    --------
    >>> from rnnreg import RegularizedLSTM, generate_simple_dataset
    >>> from rnnreg.training import TrainConfig, fit
    >>> train = generate_simple_dataset(10, 12, 64, seed=1)
    >>> val = generate_simple_dataset(10, 12, 32, seed=2)
    >>> model = RegularizedLSTM(12, 16, dropout_keep_prob=0.9, seed=0)
    >>> history = fit(model, train, val, TrainConfig(epochs=3, patience=2, progress=False),
    ...               log=lambda line: None)
    >>> len(history["val_loss"]), history["best_epoch"] is not None
    (3, True)
    >>> bool(history["val_loss"][-1] < history["val_loss"][0])
    True
    """
    config = (config or TrainConfig()).validate()
    with _OneFitAtATime(model):
        return _fit(model, train, val, test, config, resume_from, log, name, verbose, callbacks)


_models_in_training: set[int] = set()
_models_in_training_guard = threading.Lock()


class _OneFitAtATime:
    """Refuses a second ``fit`` of a model while one runs (another thread's): both would step
    the same arrays, and neither run would be what its history says."""

    def __init__(self, model):
        self.key = id(model)

    def __enter__(self):
        with _models_in_training_guard:
            if self.key in _models_in_training:
                raise RuntimeError(
                    "this model is being trained by another fit (in another thread); train a "
                    "copy (build_model(**model.config()) and load_state_dict) or wait for it"
                )
            _models_in_training.add(self.key)

    def __exit__(self, *exc):
        with _models_in_training_guard:
            _models_in_training.discard(self.key)


def _fit(model, train, val, test, config, resume_from, log, name, verbose, callbacks):
    level = _verbosity(verbose)
    if log is None:
        log = _logger.info if level == 0 else (lambda line: print(line, flush=True))
    data = _Data.prepare(model, train, val, test, config)
    run = _Run(model, data, config, log, name, bar=level == 1, callbacks=callbacks)
    first_epoch = 0
    if resume_from is not None:
        first_epoch = restore_training_state(
            resume_from,
            model,
            run.optimizer,
            run.monitor,
            run.rng,
            run.history,
            config,
            schedule=run.schedule_part,
        )
        if run.history["stopped_epoch"] is not None:  # early stopping ended it: it stays ended
            run.log(
                f"the run in {resume_from} stopped early at epoch "
                f"{run.history['stopped_epoch']}; nothing to resume"
            )
            return run.finish()
    run.begin(first_epoch)
    for epoch in range(first_epoch, config.epochs):
        started = time.perf_counter()
        lr = run.begin_epoch(epoch, run.learning_rate(epoch))
        train_loss, train_ce, grad_norm = run.train_epoch(epoch, lr)
        val_loss, max_abs_c, go_on = run.validate(epoch)
        go_on = run.record(
            epoch, train_loss, train_ce, grad_norm, val_loss, max_abs_c, go_on, time.perf_counter() - started
        )
        run.checkpoint(epoch)
        if not go_on:
            break
    return run.finish()


@dataclasses.dataclass
class _Data:
    """The checked data of a run: the splits, where each document of a stream starts, and the
    rows of the training stream's layout where a document begins (None: one document)."""

    train: Any
    val: Any
    test: Any
    val_starts: Any = None
    test_starts: Any = None
    doc_starts: Any = None

    @classmethod
    def prepare(cls, model, train, val, test, config):
        from .data import CharCorpus

        val_starts = test_starts = train_starts = None
        if isinstance(train, CharCorpus):  # a corpus brings its splits, documents, vocabulary
            corpus = train
            train_starts = corpus.starts["train"]
            if val is None:
                val, val_starts = corpus.val, corpus.starts["val"]
            if test is None:
                test, test_starts = corpus.test, corpus.starts["test"]
            train = corpus.train
            if model.vocabulary is None:
                model.vocabulary = corpus.vocabulary
            elif model.vocabulary != corpus.vocabulary:
                raise ValueError("train is a corpus with another vocabulary than model.vocabulary")
        if model.model_config.task != "next-token":
            return cls._sequences(model, train, val, test, config)
        train = _check_data(train, "train", model.vocab_size, model.output_size)
        if val is not None:
            val = _check_data(val, "val", model.vocab_size, model.output_size)
        if test is not None:
            test = _check_data(test, "test", model.vocab_size, model.output_size)
        if config.optimizer == "nt-asgd" and val is None:
            raise ValueError("optimizer 'nt-asgd' is triggered by the validation loss: pass val")
        if config.patience is not None and val is None:
            raise ValueError("early stopping (patience) needs validation data: pass val")
        if config.variable_bptt and isinstance(train, tuple):
            raise ValueError(
                "variable_bptt cuts a token stream into chunks; train is (inputs, "
                "targets) pairs of whole sequences, which are not cut"
            )
        doc_starts = None
        if train_starts is not None and not isinstance(train, tuple) and len(train_starts) > 1:
            # Laid out as iterate_batches lays the stream: row r holds positions r*length ... .
            rows, length = stream_geometry(train.size, config.batch_size)
            is_start = np.zeros(train.size, bool)
            is_start[np.asarray(train_starts)[1:]] = True
            doc_starts = is_start[: rows * length].reshape(rows, length)
        return cls(train, val, test, val_starts, test_starts, doc_starts)

    @classmethod
    def _sequences(cls, model, train, val, test, config):
        """Sequence data for a classify, regress or forecast model: ``(X, y)`` pairs checked
        and padded; ``val`` a pair, or a fraction of ``train`` (its last sequences, as Keras's
        ``validation_split`` takes them)."""
        settings = model.model_config
        train = sequence_set(train, "train", settings)
        if isinstance(val, float) and not isinstance(val, bool):
            if not 0.0 < val < 1.0:
                raise ValueError(f"val as a fraction of train must be in (0, 1), got {val}")
            held = int(round(len(train) * val))
            if not 0 < held < len(train):
                raise ValueError(f"val={val} of {len(train)} sequences leaves no sequence on one side")
            rows = np.arange(len(train))
            val = _subset(train, rows[-held:])
            train = _subset(train, rows[:-held])
        elif val is not None:
            val = sequence_set(val, "val", settings)
        if test is not None:
            test = sequence_set(test, "test", settings)
        for name, part in (("train", train), ("val", val), ("test", test)):
            if part is not None and part.targets is None:
                raise ValueError(f"{name} needs targets: pass ({name}_inputs, {name}_targets)")
        if config.optimizer == "nt-asgd" and val is None:
            raise ValueError("optimizer 'nt-asgd' is triggered by the validation loss: pass val")
        if config.patience is not None and val is None:
            raise ValueError("early stopping (patience) needs validation data: pass val")
        if config.variable_bptt:
            raise ValueError("variable_bptt cuts a token stream into chunks; sequences are not cut")
        if config.standardize:
            if settings.tokens:
                raise ValueError("standardize is for real-valued inputs; this model reads token ids")
            if model.standardizer is None:  # fitted on the training split only
                from .sequences import Standardizer

                model.standardizer = Standardizer.fit(train)
        return cls(train, val, test)


def _stop_reason(callback):
    """What the history says of a callback that stopped training: its own reason when it
    gives one (EarlyStopping's), else that it stopped."""
    reason = getattr(callback, "stop_reason", None)
    name = type(callback).__name__
    return f"{name}: {reason}" if isinstance(reason, str) and reason else f"{name} stopped training"


def _subset(data, rows):
    targets = None if data.targets is None else data.targets[rows]
    lengths = data.lengths[rows]
    T = int(lengths.max())
    inputs = data.inputs[rows, :T]
    if data.task == "forecast" and targets is not None:
        targets = targets[:, :T]
    return SequenceSet(inputs, lengths, targets, data.task)


class _Run:
    """One run of :func:`fit`: its generator, optimizer, schedule, early-stopping monitor and
    history, and the steps of an epoch."""

    def __init__(self, model, data, config, log, name, bar=True, callbacks=()):
        self.model, self.data, self.config, self.log, self.name = model, data, config, log, name
        self.bar = bar and config.progress
        self.callbacks = list(callbacks)
        self.plateau = None  # the ReduceLROnPlateau of lr_schedule="plateau" (checkpointed)
        if config.lr_schedule == "plateau":
            self.plateau = ReduceLROnPlateau(verbose=1, log=log)
            self.callbacks.append(self.plateau)
        model.stop_training = False  # Keras's flag: a callback sets it to end the run
        self.epoch = 0  # the epoch under way (for messages)
        self.hooks = CallbackList(
            self.callbacks, model, after=lambda callback: self._check_weights_kept(callback, self.epoch)
        )
        self.lr_override = None  # a rate a callback set for this epoch (LearningRateScheduler)
        self.non_finite_ends_run = any(getattr(c, "ends_run_on_non_finite", False) for c in self.callbacks)
        self.lr_scale = 1.0  # what ReduceLROnPlateau has made of the schedule's rates
        self.rng = np.random.default_rng(config.seed)
        self.optimizer = make_optimizer(model, config)
        self.schedule = _schedule(config)
        self.coupled_decay = config.weight_decay if config.optimizer in COUPLED_DECAY else 0.0
        self.monitor = None
        if config.patience is not None:
            self.monitor = EarlyStoppingMonitor(
                config.patience,
                min_delta=config.min_delta,
                restore_best_weights=config.restore_best_weights,
                monitor=config.monitor,
            )
        # The task's validation metrics (sequence tasks), recorded per epoch as val_<name>.
        self.metrics = METRICS.get(model.model_config.task, ())
        allowed = ("val_loss",) + tuple(f"val_{name}" for name in self.metrics)
        if config.monitor not in allowed:
            raise ValueError(
                f"monitor must be one of {', '.join(allowed)} for this model, got {config.monitor!r}"
            )
        self.val_metrics: dict[str, float] = {}
        self.best_weights = None  # the best validation epoch's weights (when there is a test set)
        self.history: dict[str, Any] = {key: [] for key in HISTORY_LISTS}
        self.history.update({f"val_{name}": [] for name in self.metrics})
        self.history.update(
            best_epoch=None,
            best_val_loss=None,
            stopped_epoch=None,
            stop_reason=None,
            restored_best=False,
            test_loss=None,
            best_model_test_loss=None,
            averaging_from=None,
        )
        if self.metrics:
            self.history["test_metrics"] = None
            self.history["best_model_test_metrics"] = None

    @property
    def schedule_part(self):
        """The learning-rate schedule's state beyond its settings, as a stateful part
        (``rnnreg.state``): the scale ReduceLROnPlateau has applied, and the plateau rule's
        own state."""
        return _ScheduleState(self)

    def fail(self, reason):
        self.history["stop_reason"] = reason
        self.finish(failed=True)

    def learning_rate(self, epoch):
        """The schedule's rate for this epoch (a rate that is not a finite number > 0 ends
        the run)."""
        lr = self.schedule(epoch) * self.lr_scale
        if not v.is_positive_finite(lr):
            self.fail(
                f"the learning-rate schedule gave {lr!r} for epoch {epoch}; a learning "
                "rate must be a finite number > 0"
            )
        return float(lr)

    def train_epoch(self, epoch, lr):
        """One pass over the training data: forward, backward, clip, step per batch, the state
        carried across the chunks of a stream. Returns (train loss with its penalties, plain
        cross-entropy, mean pre-clipping gradient norm)."""
        model, config, optimizer, train = self.model, self.config, self.optimizer, self.data.train
        optimizer.lr = lr
        lengths = None
        if config.variable_bptt:
            lengths = variable_bptt_lengths(
                stream_geometry(train.size, config.batch_size)[1], config.bptt, self.rng
            )
        steps = (
            len(lengths) if lengths is not None else _steps_per_epoch(train, config.batch_size, config.bptt)
        )
        progress = _Progress(steps, f"{self.name + ' ' if self.name else ''}epoch {epoch}", self.bar)
        sum_loss = sum_ce = sum_norm = 0.0
        tokens = batches = column = 0
        state = None
        try:
            for inputs, targets, new_sequence, seq_lengths, weight in self._batches(train, lengths):
                if self.callbacks:
                    self.hooks.call("on_batch_begin", BatchBegin(epoch, batches), batches, {})
                if new_sequence or state is None or state[0].shape[1] != len(inputs):
                    state, column = None, 0
                resets = None
                if self.data.doc_starts is not None:  # zero a row's state where a document starts
                    resets = self.data.doc_starts[:, column : column + inputs.shape[1]]
                column += inputs.shape[1]
                ce, grads, norm, state = self._batch(
                    inputs, targets, state, resets, epoch, batches, lengths=seq_lengths
                )
                if grads is None:  # TerminateOnNaN: the run ends here, this step not applied
                    break
                if lengths is not None:  # every token weighs the same, whatever its chunk's length
                    optimizer.lr = lr * inputs.shape[1] / config.bptt
                optimizer.step(grads)
                # λ/2·Σw² (compute_l2_penalty's value, without re-checking the model's own arrays)
                penalty = (
                    0.5 * self.coupled_decay * sum(squared_norms(model.params, model.decay_parameter_names()))
                    if self.coupled_decay
                    else 0.0
                )
                penalty += model.last_penalty
                sum_loss += (ce + penalty) * weight
                sum_ce += ce * weight
                sum_norm += norm
                tokens += weight
                batches += 1
                progress.update(ce + penalty)
                if self.callbacks:
                    event = BatchEnd(epoch, batches - 1, ce + penalty, norm, optimizer.lr)
                    logs = {"loss": ce + penalty, "learning_rate": optimizer.lr}
                    self.hooks.call("on_batch_end", event, batches - 1, logs)
                    if self.model.stop_training:  # Keras stops within the epoch, after this step
                        break
        finally:
            progress.close()
        optimizer.lr = lr
        if batches == 0:  # TerminateOnNaN at the first batch: nothing was trained
            return math.nan, math.nan, math.nan
        return sum_loss / tokens, sum_ce / tokens, sum_norm / batches

    def _batches(self, train, lengths):
        """The epoch's batches as ``(inputs, targets, new_sequence, lengths, weight)``: a token
        stream's chunks or pairs (weight: the targets), or a sequence set's padded batches
        (their lengths; weight: the sequences or the valid steps the loss averages over)."""
        config = self.config
        if isinstance(train, SequenceSet):
            for batch in train.batches(config.batch_size, self.rng):
                yield batch.inputs, batch.targets, True, batch.lengths, batch.weight
            return
        for inputs, targets, new_sequence in iterate_batches(
            train, config.batch_size, config.bptt, self.rng, lengths
        ):
            yield inputs, targets, new_sequence, None, targets.size

    def _batch(self, inputs, targets, state, resets, epoch, batch, lengths=None):
        """Forward and backward of one batch; returns (the loss without penalties, clipped
        gradients, pre-clipping norm, state). A loss or gradient that is not finite ends the
        run."""
        model, config = self.model, self.config
        try:
            extra = {} if lengths is None else {"lengths": lengths}  # (sequence tasks only)
            loss, _, state = model.forward_batch(
                inputs, targets, state, training=True, resets=resets, **extra
            )
            ce = loss - model.last_penalty  # the AR/TAR terms are in loss and gradient
            grads = model.backward()
        except v.NonFiniteResult as exc:  # the weights have grown until a product overflowed
            reason = (
                f"non-finite result ({exc}) at epoch {epoch}, batch {batch} (loss nan, gradient norm nan)"
            )
            return self._diverged(reason, exc.advice, state)
        norm = clip_grad_norm(grads, config.clip_norm) if config.clip_norm is not None else global_norm(grads)
        if not (math.isfinite(ce) and math.isfinite(norm)):
            what = "loss" if not math.isfinite(ce) else "gradient norm"
            reason = f"non-finite {what} at epoch {epoch}, batch {batch} (loss {ce}, gradient norm {norm})"
            return self._diverged(reason, "lower the learning rate or enable clip_norm", state)
        return ce, grads, norm, state

    def _diverged(self, reason, advice, state):
        """A batch whose loss or gradient is not finite: the run fails with ``advice`` — or,
        with TerminateOnNaN among the callbacks, stops after this epoch's evaluation without
        applying the step, the history saying why (``_batch``'s return, with no gradients)."""
        if not self.non_finite_ends_run:
            self.fail(f"{reason}; {advice}")
        self.model.stop_training = True
        self.history["stop_reason"] = f"TerminateOnNaN: {reason}"
        return math.nan, None, math.nan, state

    def validate(self, epoch):
        """The validation loss (NT-ASGD's averaged weights, once it averages), the largest cell
        state seen, and whether training goes on (the early-stopping check, which snapshots the
        evaluated weights when they are the best)."""
        data, config = self.data, self.config
        stats: dict[str, float] = {}
        go_on = True
        with self.optimizer.evaluation_weights():
            result = (
                evaluate(
                    self.model,
                    data.val,
                    config.batch_size,
                    config.bptt,
                    starts=data.val_starts,
                    stats=stats,
                    as_streams=config.eval_as_streams,
                )
                if data.val is not None
                else None
            )
            self.val_metrics = dict(result) if isinstance(result, dict) else {}
            val_loss = self.val_metrics.pop("loss") if isinstance(result, dict) else result
            if self.monitor is not None:
                watched = val_loss if config.monitor == "val_loss" else self.val_metrics[config.monitor[4:]]
                go_on = self.monitor.check(watched, epoch, model=self.model)
            if val_loss is not None and self._is_best(val_loss):  # the best so far, as evaluated
                if config.best_model_path:
                    save_model(self.model, config.best_model_path)
                if data.test is not None:  # for the test loss of the model the run would ship
                    self.best_weights = self.model.state_dict()
        return val_loss, stats.get("max_abs_c"), go_on

    def _is_best(self, val_loss):
        """The one rule for "the best epoch so far", which both the history's best epoch and
        the best-model file follow: the early-stopping monitor's (its metric, ``min_delta``) when
        there is one, else a lower validation loss. Called after the epoch's monitor check."""
        if self.monitor is not None:
            return self.monitor.improved
        best = self.history["best_val_loss"]
        return best is None or val_loss < best

    def record(self, epoch, train_loss, train_ce, grad_norm, val_loss, max_abs_c, go_on, seconds):
        """The epoch into the history, its line into the log; NT-ASGD's trigger."""
        history, monitor, optimizer = self.history, self.monitor, self.optimizer
        for key, value in (
            ("epoch", epoch),
            ("train_loss", train_loss),
            ("train_ce", train_ce),
            ("val_loss", val_loss),
            ("lr", optimizer.lr),
            ("grad_norm", grad_norm),
            ("max_abs_c", max_abs_c),
            ("seconds", seconds),
        ):
            history[key].append(value)
        for name in self.metrics:
            history[f"val_{name}"].append(self.val_metrics.get(name))
        epochs = self.config.epochs
        remaining = (epochs - 1 - epoch) * sum(history["seconds"]) / len(history["seconds"])
        line = (
            f"epoch {epoch:3d}/{epochs}  train {train_loss:.4f}"
            + (f"  val {val_loss:.4f}" if val_loss is not None else "")
            + "".join(f"  {name} {value:.4f}" for name, value in self.val_metrics.items())
            + f"  lr {optimizer.lr:.2e}  |g| {grad_norm:.2f}"
            + (f"  |c|max {max_abs_c:.1f}" if max_abs_c is not None else "")
            + f"  {seconds:.1f}s"
            + (f"  ETA {_duration(remaining)}" if remaining > 0 else "")
        )
        if isinstance(optimizer, NTASGD) and optimizer.record(val_loss):
            line += "  (NT-ASGD: averaging from here on)"
            history["averaging_from"] = epoch
        if monitor is not None:
            history["best_epoch"] = monitor.best_epoch
            history["best_val_loss"] = (
                monitor.best
                if self.config.monitor == "val_loss"  # else the val_loss of the best epoch
                else history["val_loss"][history["epoch"].index(monitor.best_epoch)]
            )
            line += "  *" if monitor.improved else ""
        elif val_loss is not None and self._is_best(val_loss):
            history["best_epoch"], history["best_val_loss"] = epoch, val_loss
        self.log(line)
        if not go_on and monitor is not None:
            history["stopped_epoch"] = epoch
            history["stop_reason"] = monitor.stop_reason
        if self.callbacks:
            logs = {"loss": train_loss, "val_loss": val_loss, "learning_rate": optimizer.lr}
            logs.update({f"val_{name}": value for name, value in self.val_metrics.items()})
            event = EpochEnd(
                epoch,
                self.config.epochs,
                train_loss,
                train_ce,
                val_loss,
                optimizer.lr,
                grad_norm,
                max_abs_c,
                seconds,
                history,
                self.model,
                trainer=self,
                logs=logs,
            )
            for callback in self.hooks.call("on_epoch_end", event, epoch, logs):
                if go_on:
                    go_on = False
                    history["stopped_epoch"] = epoch
                    history["stop_reason"] = _stop_reason(callback)
        if self.model.stop_training and go_on:  # Keras's flag (TerminateOnNaN's too)
            go_on = False
            history["stopped_epoch"] = epoch
            history["stop_reason"] = history["stop_reason"] or "a callback set model.stop_training"
        return go_on

    def begin_epoch(self, epoch, lr):
        """The callbacks' ``on_epoch_begin``; returns the epoch's learning rate (the schedule's,
        or the one a callback set)."""
        self.epoch, self.lr_override = epoch, None
        if self.callbacks:
            event = EpochBegin(epoch, self.config.epochs, lr, self.model, trainer=self)
            self.hooks.call("on_epoch_begin", event, epoch, {})
        return lr if self.lr_override is None else self.lr_override

    def set_learning_rate(self, lr):
        """The learning rate of the epoch about to start (called by a callback's
        ``on_epoch_begin``, e.g. LearningRateScheduler)."""
        if not v.is_positive_finite(lr):
            raise ValueError(f"a learning rate must be a finite number > 0, got {lr!r}")
        self.lr_override = float(lr)

    def begin(self, first_epoch):
        """The callbacks' ``on_train_begin``, before the first epoch this run trains."""
        self.epoch = first_epoch
        event = TrainBegin(first_epoch, self.config.epochs, self.history, self.model, trainer=self)
        self.hooks.call("on_train_begin", event, None, {})

    def _check_weights_kept(self, callback, epoch):
        """End the run when a callback has put other arrays in ``model.params`` (the optimizer
        would go on stepping the old ones, and training would silently stop)."""
        params, stepped = self.model.params, self.optimizer.params
        if params is stepped or (
            isinstance(params, dict)
            and params.keys() == stepped.keys()
            and all(params[name] is stepped[name] for name in stepped)
        ):
            return
        self.fail(
            f"{type(callback).__name__} replaced the model's parameter arrays at epoch {epoch} "
            "(the optimizer steps the arrays the run started with); change weights in place: "
            "model.params[name][...] = new, or model.load_state_dict(state)"
        )

    def checkpoint(self, epoch):
        """The run's state after ``epoch`` into the checkpoint file — unless the weights are no
        longer a state of this model (a callback left NaN or reshaped arrays): then the run
        ends and the last good checkpoint stays."""
        try:
            self.model._check_params()
            self.model.check_state_dict(self.model.params)
        except ValueError as exc:
            kept = (
                f"; {self.config.checkpoint_path} keeps the last good epoch"
                if self.config.checkpoint_path
                else ""
            )
            self.fail(f"after epoch {epoch} the model's weights are not a state to keep: {exc}{kept}")
        if self.config.checkpoint_path:
            save_training_state(
                self.config.checkpoint_path,
                self.model,
                self.optimizer,
                self.monitor,
                self.rng,
                self.history,
                epoch,
                self.config,
                schedule=self.schedule_part,
            )

    def finish(self, failed=False):
        history = self.history
        last = {"loss": "train_loss", "val_loss": "val_loss"}  # Keras's names: the last epoch's
        logs = {name: history[key][-1] for name, key in last.items() if history[key]}
        self.hooks.call("on_train_end", self.model, None, logs)
        history = _finish(
            self.model,
            self.monitor,
            self.history,
            self.data.test,
            self.config,
            self.log,
            failed=failed,
            test_starts=self.data.test_starts,
            optimizer=self.optimizer,
            best_weights=self.best_weights,
        )
        if self.config.model_path:  # the weights whose test loss the history reports
            save_model(self.model, self.config.model_path)
        return history


class _ScheduleState:
    """A run's learning-rate schedule state (``lr_scale`` and the plateau rule's) as a stateful
    part: checked whole before it is taken."""

    def __init__(self, run):
        self.run = run

    def state_dict(self):
        run = self.run
        return {
            "lr_scale": run.lr_scale,
            "plateau": run.plateau.state_dict() if run.plateau is not None else None,
        }

    def check_state_dict(self, state):
        if not isinstance(state, dict) or set(state) != {"lr_scale", "plateau"}:
            raise ValueError(f"the schedule state is a dict with 'lr_scale' and 'plateau', got {state!r}")
        scale = state["lr_scale"]
        if not (v.is_positive_finite(scale) and scale <= 1):
            raise ValueError(f"the schedule's 'lr_scale' must be in (0, 1], got {scale!r}")
        if (state["plateau"] is None) != (self.run.plateau is None):
            raise ValueError(f"the schedule state does not match lr_schedule {self.run.config.lr_schedule!r}")
        if self.run.plateau is not None:
            self.run.plateau.check_state_dict(state["plateau"])

    def load_state_dict(self, state):
        self.check_state_dict(state)
        self.run.lr_scale = float(state["lr_scale"])
        if self.run.plateau is not None:
            self.run.plateau.load_state_dict(state["plateau"])


def _finish(
    model,
    monitor,
    history,
    test,
    config,
    log,
    failed=False,
    test_starts=None,
    optimizer=None,
    best_weights=None,
):
    if isinstance(optimizer, NTASGD):  # the model is the weights that were evaluated
        optimizer.use_average()
        if history["averaging_from"] is None and history["epoch"]:
            log(
                f"NT-ASGD never started averaging: its trigger (a validation loss worse than the best "
                f"of all but the last {optimizer.nonmono} epochs) did not fire in {len(history['epoch'])} "
                "epochs, so this run was plain SGD"
            )
    if monitor is not None and config.restore_best_weights:
        history["restored_best"] = monitor.restore(model)
    if history["stop_reason"]:
        log(f"stopped: {history['stop_reason']}")
    if failed:
        restored = " (the best weights were restored)" if history["restored_best"] else ""
        raise TrainingError(history["stop_reason"] + restored, history)
    if test is not None:
        loss, metrics = _test(model, test, config, test_starts)
        history["test_loss"] = loss
        if metrics is not None:
            history["test_metrics"] = metrics
        # The model the run would ship — its best validation epoch's, as best.npz holds — tested too
        # (the same numbers when the run ended there or restored it).
        if best_weights is not None and history["best_epoch"] is not None:
            final = model.state_dict()
            same = all(np.array_equal(final[name], value) for name, value in best_weights.items())
            if not same:
                model.load_state_dict(best_weights)
                try:
                    loss, metrics = _test(model, test, config, test_starts)
                finally:
                    model.load_state_dict(final)
            history["best_model_test_loss"] = loss
            if metrics is not None:
                history["best_model_test_metrics"] = metrics
    return history


def _test(model, test, config, test_starts):
    """(test loss, a sequence task's test metrics or None) of the model as it is."""
    result = evaluate(model, test, config.batch_size, config.bptt, starts=test_starts)
    if isinstance(result, dict):  # a sequence task: the loss and its metrics
        return result["loss"], {name: value for name, value in result.items() if name != "loss"}
    return result, None
