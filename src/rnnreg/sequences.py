"""Sequences the way users hold them: real-valued (or token) sequences of different lengths,
padded into one checked set, batched for training, and scored by the task's metrics.

A user's data is an array ``X`` of shape (N, T, D) — every sequence T steps long — or a list of
(T_i, D) arrays of different lengths (``D`` = the model's ``input_size``; token sequences are
(N, T) int arrays or lists of (T_i,) arrays), with targets by task:

* ``classify``: (N,) class ids in [0, output_size);
* ``regress``: (N, output_size) floats, one vector per sequence;
* ``forecast``: (N, T, output_size) floats, or a list of (T_i, output_size) arrays — a target per
  step, of each sequence's length.

:func:`sequence_set` checks all of it (each error names the argument and what is wrong) and pads
it: :class:`SequenceSet` holds the padded inputs, each sequence's length and the targets; the
model runs a padded batch with its ``lengths`` and stops each row at its end inside the compiled
time loop, so padding changes nothing.
"""

from typing import Any, NamedTuple

import numpy as np

from . import _validation as v

__all__ = [
    "Standardizer",
    "SequenceSet",
    "SequenceBatch",
    "sequence_set",
    "sequence_inputs",
    "pad_sequences",
    "task_metrics",
    "finish_metrics",
    "valid_steps",
    "METRICS",
]

#: The metrics :func:`rnnreg.evaluate` reports for each task, beside ``loss`` (the training loss
#: without penalties). Early stopping can monitor any of them as ``val_<name>``.
METRICS = {"classify": ("accuracy",), "regress": ("mse", "mae", "rmse"), "forecast": ("mse", "mae", "rmse")}


class SequenceBatch(NamedTuple):
    """A padded batch: ``inputs`` (n, T, D) or (n, T), ``targets`` by task, ``lengths`` (n,),
    and ``weight``, what the batch's loss is averaged over (sequences, or valid steps)."""

    inputs: np.ndarray
    targets: Any
    lengths: np.ndarray
    weight: int


class SequenceSet(NamedTuple):
    """A checked, padded set of sequences: ``inputs`` (N, T_max, D) floats or (N, T_max) token
    ids, ``lengths`` (N,) int64, ``targets`` by task (None for inputs alone)."""

    inputs: np.ndarray
    lengths: np.ndarray
    targets: Any
    task: str

    def __len__(self):
        return len(self.lengths)

    def batches(self, batch_size, rng=None):
        """Batches of ``batch_size`` sequences (shuffled with ``rng``, in order when None), each
        padded only to its own longest sequence."""
        order = np.arange(len(self)) if rng is None else rng.permutation(len(self))
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])

    def batch(self, rows):
        lengths = self.lengths[rows]
        T = int(lengths.max())
        inputs = np.ascontiguousarray(self.inputs[rows, :T])
        targets = None
        if self.targets is not None:
            targets = self.targets[rows]
            if self.task == "forecast":
                targets = np.ascontiguousarray(targets[:, :T])
        weight = int(lengths.sum()) if self.task == "forecast" else len(rows)
        return SequenceBatch(inputs, targets, lengths, weight)


def pad_sequences(sequences, name, dtype, feature_shape):
    """A list of arrays (T_i,) + feature_shape as one zero-padded array (N, T_max) +
    feature_shape and the lengths (N,) int64; each must be non-empty, finite, of that shape."""
    if len(sequences) == 0:
        raise ValueError(f"{name} holds no sequence")
    arrays = []
    for k, seq in enumerate(sequences):
        arr = np.asarray(seq)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name}[{k}] must hold numbers, got dtype {arr.dtype}")
        if arr.ndim != 1 + len(feature_shape) or arr.shape[1:] != tuple(feature_shape):
            want = "(T,)" if not feature_shape else f"(T, {', '.join(map(str, feature_shape))})"
            raise ValueError(f"{name}[{k}] must have shape {want}, got {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name}[{k}] is empty: every sequence needs at least one step")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{name}[{k}] contains NaN or inf")
        arrays.append(arr)
    lengths = np.array([len(a) for a in arrays], np.int64)
    out = np.zeros((len(arrays), int(lengths.max())) + tuple(feature_shape), dtype)
    for k, arr in enumerate(arrays):
        out[k, : len(arr)] = arr
    return out, lengths


def sequence_inputs(X, name, config):
    """Inputs alone, checked and padded: ``(padded inputs, lengths)``."""
    return _inputs(X, name, config)


def _inputs(X, name, config):
    if config.tokens:
        if isinstance(X, np.ndarray):
            ids = v.token_array(X, name, config.vocab_size, ndim=2)
            return ids.astype(np.int64), np.full(len(ids), ids.shape[1], np.int64)
        padded, lengths = pad_sequences(list(X), name, np.int64, ())
        v.token_array(padded, name, config.vocab_size)
        return padded, lengths
    if isinstance(X, np.ndarray):
        if X.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
        if X.ndim != 3 or X.shape[2] != config.input_size:
            raise ValueError(
                f"{name} must have shape (sequences, steps, {config.input_size}) (input_size features), "
                f"or be a list of (steps, {config.input_size}) arrays; got shape {X.shape}"
            )
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"{name} must hold at least one sequence of one step, got shape {X.shape}")
        x = v.float_array(X.astype(config.float_dtype, copy=False), name, ndim=3)
        return x, np.full(len(x), x.shape[1], np.int64)
    if not isinstance(X, (list, tuple)):
        raise TypeError(
            f"{name} must be an array (N, T, D) or a list of (T_i, D) arrays, got {type(X).__name__}"
        )
    return pad_sequences(X, name, config.float_dtype, (config.input_size,))


def _targets(y, name, config, lengths):
    N = len(lengths)
    if config.task == "classify":
        labels = np.asarray(y)
        if labels.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
        if labels.shape != (N,):
            raise ValueError(f"{name} must have shape ({N},): one class id per sequence, got {labels.shape}")
        return v.token_array(labels, name, config.output_size, ndim=1).astype(np.int64)
    if config.task == "regress":
        arr = np.asarray(y)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        if arr.shape != (N, config.output_size):
            raise ValueError(
                f"{name} must have shape ({N}, {config.output_size}) (output_size per sequence), "
                f"got {arr.shape}"
            )
        return v.float_array(arr.astype(config.float_dtype, copy=False), name)
    # forecast: a target per step, of each sequence's length
    width = config.output_size
    if isinstance(y, np.ndarray):
        if y.ndim != 3 or y.shape[0] != N or y.shape[2] != width or y.shape[1] != int(lengths.max()):
            raise ValueError(
                f"{name} must have shape ({N}, {int(lengths.max())}, {width}) (a target per step), "
                f"got {y.shape}"
            )
        if y.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got dtype {y.dtype}")
        return v.float_array(y.astype(config.float_dtype, copy=False), name)
    if not isinstance(y, (list, tuple)) or len(y) != N:
        raise ValueError(f"{name} must be an array ({N}, T, {width}) or a list of {N} (T_i, {width}) arrays")
    padded, target_lengths = pad_sequences(list(y), name, config.float_dtype, (width,))
    if not np.array_equal(target_lengths, lengths):
        k = int(np.flatnonzero(target_lengths != lengths)[0])
        raise ValueError(f"{name}[{k}] has {target_lengths[k]} steps, its inputs {lengths[k]}")
    return padded


def sequence_set(data, name, config):
    """A :class:`SequenceSet` from ``(X, y)`` (or ``X`` alone), checked against a model's
    settings (:class:`~rnnreg.model_config.ModelConfig`); errors name ``name`` and the part."""
    if isinstance(data, SequenceSet):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        X, y = data
    else:
        X, y = data, None
    inputs, lengths = _inputs(X, f"{name} inputs" if y is not None else name, config)
    targets = None if y is None else _targets(y, f"{name} targets", config, lengths)
    return SequenceSet(inputs, lengths, targets, config.task)


def valid_steps(lengths, T):
    """(N, T) bool: which of T steps lie within each row's length."""
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


class Standardizer(NamedTuple):
    """Per-feature standardization of real-valued inputs, ``(x - mean) / scale``, fitted on
    the training split only (its valid steps) and stored with the model."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, data):
        """From a ``SequenceSet`` of real-valued inputs: each feature's mean and standard
        deviation over the valid steps (a constant feature keeps scale 1)."""
        valid = valid_steps(data.lengths, data.inputs.shape[1])
        steps = data.inputs[valid].astype(np.float64)
        scale = steps.std(axis=0)
        return cls(steps.mean(axis=0), np.where(scale > 0, scale, 1.0))

    @classmethod
    def checked(cls, mean, scale, features):
        """A standardizer from values given or read from a file, checked: ``features`` finite
        means and positive finite scales. Raises ValueError naming what is wrong."""
        mean, scale = np.asarray(mean, np.float64), np.asarray(scale, np.float64)
        if mean.shape != (features,) or scale.shape != (features,):
            raise ValueError(
                f"a standardizer holds {features} means and scales (input_size), "
                f"got {mean.shape}, {scale.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("a standardizer's means must be finite and its scales finite and > 0")
        return cls(mean, scale)

    def apply(self, x):
        """x (..., D) standardized, in x's dtype."""
        return ((x - self.mean) / self.scale).astype(x.dtype, copy=False)

    def to_dict(self):
        return {"mean": [float(m) for m in self.mean], "scale": [float(s) for s in self.scale]}


def task_metrics(task, outputs, targets, lengths):
    """The task's metrics (:data:`METRICS`) of outputs against targets: sums and counts, so
    that batches add up (``finish_metrics`` turns them into means)."""
    if task == "classify":
        return {"accuracy": (float(np.sum(np.argmax(outputs, axis=1) == targets)), len(targets))}
    if task == "regress":
        diff = outputs - targets
        count = diff.size
    else:
        T = outputs.shape[1]
        valid = valid_steps(lengths, T)[..., None]
        diff = (outputs - targets) * valid
        count = int(lengths.sum()) * outputs.shape[2]
    return {
        "mse": (float(np.sum(np.square(diff, dtype=np.float64))), count),
        "mae": (float(np.sum(np.abs(diff), dtype=np.float64)), count),
    }


def finish_metrics(task, sums):
    """Means from the summed metrics of :func:`task_metrics`; rmse from mse."""
    out = {name: total / count for name, (total, count) in sums.items()}
    if "mse" in out:
        out["rmse"] = float(np.sqrt(out["mse"]))
    return {name: out[name] for name in METRICS[task]}
