"""What a model predicts from its last layer: each head maps the last layer's (dropped) output
to its predictions, its loss and their gradients.

A head kind has ``parameter_shapes(config)``, ``check_targets(targets, shape, config)``,
``forward(top, params, targets, valid) -> (loss or None, outputs, saved)`` with ``top``
(N*T, H) and ``valid`` (N, T) bool — which steps lie within each sequence's length, or None when
all do — and ``backward(saved, top, params, out=None) -> (grads, dtop)``, which writes the
parameter gradients into ``out``'s arrays (their places in the model's packed gradients) when
given. Steps past a sequence's end
add nothing to the loss and get no gradient. Weight tying (``WeightTying`` in
``rnnreg.regularizers``) makes the next-token head share the embedding.

The heads: :class:`NextToken` (softmax over the vocabulary at every step, a language model),
:class:`PerStep` (a vector per step: forecasting, mean squared error) and :class:`PerSequence`
(one output per sequence, read from its last valid step or the mean of its valid steps: softmax
cross-entropy over classes, or mean squared error).
"""

from collections.abc import Callable

import numpy as np

from . import _ops
from . import _validation as v

__all__ = ["NextToken", "PerStep", "PerSequence", "head_of"]


def _matmul(a, b, trans_a=False, trans_b=False, out=None):
    if out is not None:  # a gradient's place: the model checks every gradient in one pass
        return _ops.kernels().matmul(a, b, trans_a, trans_b, out)
    out = _ops.kernels().matmul(a, b, trans_a, trans_b)
    return v.finite_result(out, "the model's output projection", "the weights or activations")


class NextToken:
    """Next-token softmax: ``logits = h Why + by`` (``h Eᵀ + by`` with tied weights), loss the
    mean cross-entropy over the N*T positions."""

    name = "next-token"

    def __init__(self, tied=False):
        self.tied = bool(tied)

    def parameter_shapes(self, config):
        shapes: dict[str, tuple[int, ...]] = (
            {} if self.tied else {"Why": (config.hidden_size, config.output_size)}
        )
        shapes["by"] = (config.output_size,)
        return shapes

    def projection(self, params):
        """The (H, O) output projection (a view: the embedding's transpose when tied)."""
        return params["embedding"].T if self.tied else params["Why"]

    def check_targets(self, targets, shape, config, name="targets"):
        targets = v.token_array(targets, name, config.output_size, ndim=2)
        v.check_shape(targets, name, shape, "(matching inputs)")
        return targets

    def forward(self, top, params, targets, valid=None, shape=None):
        if valid is not None:
            return self._forward_valid(top, params, targets, valid)
        if self.tied:
            logits = _matmul(top, params["embedding"], trans_b=True) + params["by"]
        else:
            logits = _matmul(top, params["Why"]) + params["by"]
        loss, dlogits = None, None
        if targets is not None:
            loss, dlogits = _ops.kernels().softmax_cross_entropy(
                logits, np.ascontiguousarray(targets.reshape(-1), dtype=np.int64)
            )
        return loss, logits, dlogits

    def _forward_valid(self, top, params, targets, valid):
        """The loss over the steps within each sequence's length only."""
        logits = (
            _matmul(top, params["embedding"], trans_b=True) if self.tied else _matmul(top, params["Why"])
        ) + params["by"]
        if targets is None:
            return None, logits, None
        rows = valid.reshape(-1)
        loss, d_valid = _ops.kernels().softmax_cross_entropy(
            np.ascontiguousarray(logits[rows]),
            np.ascontiguousarray(targets.reshape(-1)[rows], dtype=np.int64),
        )
        dlogits = np.zeros_like(logits)
        dlogits[rows] = d_valid
        return loss, logits, dlogits

    def backward(self, dlogits, top, params, out=None):
        """The head's parameter gradients (with tying, the embedding's share under
        ``"embedding"``) and the gradient of ``top``; written into ``out``'s arrays (the
        gradients' places, by name) when given."""
        grads = {}
        if self.tied:
            grads["embedding"] = _matmul(dlogits, top, trans_a=True)  # (V, H)
            dtop = _matmul(dlogits, params["embedding"])
        else:
            grads = _projection_gradients(top, dlogits, out)
            dtop = _matmul(dlogits, params["Why"], trans_b=True)
        if self.tied:
            grads["by"] = dlogits.sum(axis=0, out=None if out is None else out["by"])
        return grads, dtop


def _projection_gradients(inputs, dout, out=None):
    """The gradients of ``Why`` and ``by`` for outputs ``inputs Why + by`` given ``dout``,
    written into ``out``'s places when given."""
    return {
        "Why": _matmul(inputs, dout, trans_a=True, out=None if out is None else out["Why"]),
        "by": dout.sum(axis=0, out=None if out is None else out["by"]),
    }


def _valid_mask(valid, N, T):
    return np.ones((N, T), bool) if valid is None else valid


#: The losses of a real-valued head: name -> (loss of the differences, its derivative), each
#: averaged over the valid entries. Huber's delta is 1 (PyTorch's HuberLoss and Keras's default).
REGRESSION_LOSSES: dict[
    str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]
] = {
    "mse": (lambda d: np.square(d, dtype=np.float64), lambda d: 2.0 * d),
    "mae": (lambda d: np.abs(d).astype(np.float64), np.sign),
    "huber": (
        lambda d: np.where(np.abs(d) <= 1.0, 0.5 * np.square(d, dtype=np.float64), np.abs(d) - 0.5),
        lambda d: np.clip(d, -1.0, 1.0),
    ),
}


def _regression_loss(out, targets, weight, kind="mse"):
    """The mean ``kind`` loss (``REGRESSION_LOSSES``) of ``out`` against ``targets`` over the
    entries where ``weight`` (a 0/1 array broadcasting against them) is 1, and its gradient."""
    value, derivative = REGRESSION_LOSSES[kind]
    diff = (out - targets) * weight
    count = float(np.broadcast_to(weight, out.shape).sum())
    loss = float(np.sum(value(diff)) / count)
    return loss, (derivative(diff) * weight / count).astype(out.dtype, copy=False)


def _check_real_targets(targets, name, shape, config):
    arr = np.asarray(targets)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = v.float_array(arr.astype(config.float_dtype, copy=False), name)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


class PerStep:
    """A vector per step, ``y_t = h_t Why + by`` (forecasting: the next values of a series, or
    any per-step target), loss the mean squared error over the valid steps and the outputs
    (or the mean absolute error, or Huber's, with ``regression_loss``)."""

    name = "per-step"

    def __init__(self, loss="mse"):
        self.loss = loss

    def parameter_shapes(self, config):
        return {"Why": (config.hidden_size, config.output_size), "by": (config.output_size,)}

    def projection(self, params):
        return params["Why"]

    def check_targets(self, targets, shape, config, name="targets"):
        N, T = shape
        return _check_real_targets(targets, name, (N, T, config.output_size), config)

    def forward(self, top, params, targets, valid=None, shape=None):
        out = _matmul(top, params["Why"]) + params["by"]  # (N*T, O)
        if targets is None:
            return None, out, None
        N, T, outputs = targets.shape
        weight = _valid_mask(valid, N, T).reshape(N * T, 1).astype(out.dtype)
        loss, dout = _regression_loss(out, targets.reshape(N * T, outputs), weight, self.loss)
        return loss, out, dout

    def backward(self, dout, top, params, out=None):
        grads = _projection_gradients(top, dout, out)
        return grads, _matmul(dout, params["Why"], trans_b=True)


class PerSequence:
    """One output per sequence from its last valid step's output (``pooling="last"``, the final
    state's h) or the mean of its valid steps' (``"mean"``): ``y = pool(h) Why + by``. With
    ``classify``, softmax cross-entropy over ``output_size`` classes (mean over the sequences);
    with ``regress``, the mean squared error over the sequences and outputs."""

    def __init__(self, classify, pooling="last", loss="mse"):
        self.classify, self.pooling, self.loss = bool(classify), pooling, loss
        self.name = "classify" if classify else "regress"

    def parameter_shapes(self, config):
        return {"Why": (config.hidden_size, config.output_size), "by": (config.output_size,)}

    def projection(self, params):
        return params["Why"]

    def check_targets(self, targets, shape, config, name="targets"):
        N = shape[0]
        if self.classify:
            labels = np.asarray(targets)
            if labels.dtype.kind not in "iu":
                raise TypeError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
            if labels.shape != (N,):
                raise ValueError(
                    f"{name} must have shape {(N,)} (one class per sequence), got {labels.shape}"
                )
            return v.token_array(labels, name, config.output_size, ndim=1)
        return _check_real_targets(targets, name, (N, config.output_size), config)

    def _pool(self, top, N, T, valid):
        """pooled (N, H), and what the backward pass needs to spread its gradient."""
        H = top.shape[1]
        valid = _valid_mask(valid, N, T)
        if self.pooling == "last":
            last = valid.sum(axis=1) - 1  # each sequence's last valid step
            rows = np.arange(N) * T + last
            return top[rows], rows
        weights = (valid / valid.sum(axis=1, keepdims=True)).astype(top.dtype)  # (N, T)
        pooled = np.einsum("nt,nth->nh", weights, top.reshape(N, T, H))
        return pooled, weights

    def forward(self, top, params, targets, valid=None, shape=None):
        N, T = shape
        pooled, spread = self._pool(top, N, T, valid)
        pooled = np.ascontiguousarray(pooled)
        out = _matmul(pooled, params["Why"]) + params["by"]  # (N, O)
        if targets is None:
            return None, out, None
        if self.classify:
            loss, dout = _ops.kernels().softmax_cross_entropy(
                out, np.ascontiguousarray(targets, dtype=np.int64)
            )
        else:
            loss, dout = _regression_loss(out, targets, np.ones((1, 1), out.dtype), self.loss)
        return loss, out, (dout, pooled, spread, (N, T))

    def backward(self, saved, top, params, out=None):
        dout, pooled, spread, (N, T) = saved
        grads = _projection_gradients(pooled, dout, out)
        dpooled = _matmul(dout, params["Why"], trans_b=True)  # (N, H)
        # From the kernels' result memory: the last batch's block again, where np.zeros_like
        # faulted in fresh pages for all N*T rows at every batch.
        dtop = _ops.kernels().new_buffer(top.size, top.dtype).reshape(top.shape)
        dtop.fill(0)
        if self.pooling == "last":
            dtop[spread] = dpooled
        else:
            dtop.reshape(N, T, -1)[...] = spread[:, :, None] * dpooled[:, None, :]
        return grads, dtop


def head_of(config):
    """The head a config describes."""
    if config.task == "next-token":
        return NextToken(tied=config.tie_weights)
    if config.task == "forecast":
        return PerStep(loss=config.regression_loss)
    return PerSequence(
        classify=config.task == "classify", pooling=config.pooling, loss=config.regression_loss
    )
