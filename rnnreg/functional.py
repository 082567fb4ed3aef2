"""Public kernel functions: validate in Python, compute in the active backend.

Every function here checks its arguments (shapes, dtypes, values) and raises a ``ValueError``,
``TypeError`` or ``IndexError`` naming the argument, then calls the same-named function of the
backend chosen in :mod:`rnnreg._backend` — the compiled ``rnnreg._kernels`` by default, or its
NumPy twin in ``rnnreg._reference``. Both backends produce the same typed, read-only caches
(:class:`LSTMCache`, :class:`LayerNormCache`), so a cache made by one can be fed to the other's
backward; the compiled kernels check again, on the arrays' real dimensions, everything they read.

Conventions
-----------
* LSTM weights: ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)``; gate blocks in :data:`GATE_ORDER`
  = (input ``i``, forget ``f``, output ``o``, candidate ``g``).
* ``keep_prob`` is the probability of *keeping* a unit (inverted dropout: kept units are
  scaled by ``1 / keep_prob``, so nothing changes at evaluation time).
* Arrays may be float32 or float64, but one call uses one dtype throughout.
"""
from typing import NamedTuple, Optional

import numpy as np

from . import _backend
from . import _validation as v
from ._conventions import (DEFAULT_EPS, GATE_ORDER, LSTM_LAYER_NORM_PARAMS, LayerNormCache,
                           LSTMCache, layer_norm_param_size)

__all__ = [
    "GATE_ORDER", "LSTM_LAYER_NORM_PARAMS", "LSTMGradients", "LSTMCache", "LayerNormCache",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "lstm_layer_norm_params", "layer_norm_forward", "layer_norm_backward",
    "dropout_forward", "dropout_backward", "dropout_mask", "matmul",
]


class LSTMGradients(NamedTuple):
    """Gradients returned by :func:`lstm_backward`."""
    dx: np.ndarray            #: (N, T, D)
    dh0: np.ndarray           #: (N, H)
    dc0: np.ndarray           #: (N, H)
    dWx: np.ndarray           #: (D, 4H)
    dWh: np.ndarray           #: (H, 4H)
    db: np.ndarray            #: (4H,)
    layer_norm: Optional[dict]  #: gradient per LSTM_LAYER_NORM_PARAMS name, or None


# ----------------------------------------------------------------------------- LSTM
def lstm_layer_norm_params(hidden_size, dtype=np.float64):
    """Initial LN-LSTM parameters: gains of one, biases of zero (Ba et al., 2016).
    ``gamma_x, beta_x, gamma_h, beta_h`` have shape (4H,), ``gamma_c, beta_c`` shape (H,)."""
    H = v.positive_int(hidden_size, "hidden_size")
    params = {}
    for name in LSTM_LAYER_NORM_PARAMS:
        size = layer_norm_param_size(name, H)
        params[name] = (np.ones if name.startswith("gamma") else np.zeros)(size, dtype)
    return params


def _check_lstm_inputs(x, h0, Wx, Wh, b, c0, layer_norm, recurrent_mask, h0_name="h0",
                       c0_name="c0"):
    x = v.float_array(x, "x", ndim=3)
    dtype = x.dtype
    N, T, D = x.shape
    Wx = v.float_array(Wx, "Wx", ndim=2, dtype=dtype)
    if Wx.shape[0] != D or Wx.shape[1] % 4 != 0:
        raise ValueError(f"Wx must have shape (D, 4*hidden_size) with D = {D} (x's last axis), "
                         f"got {Wx.shape}")
    H = Wx.shape[1] // 4
    Wh = v.float_array(Wh, "Wh", ndim=2, dtype=dtype)
    v.check_shape(Wh, "Wh", (H, 4 * H), "(hidden_size, 4*hidden_size)")
    b = v.float_array(b, "b", ndim=1, dtype=dtype)
    v.check_shape(b, "b", (4 * H,), "(4*hidden_size,)")
    h0 = v.float_array(h0, h0_name, ndim=2, dtype=dtype)
    v.check_shape(h0, h0_name, (N, H), "(batch, hidden_size)")
    if c0 is None:
        c0 = np.zeros((N, H), dtype)
    else:
        c0 = v.float_array(c0, c0_name, ndim=2, dtype=dtype)
        v.check_shape(c0, c0_name, (N, H), "(batch, hidden_size)")
    if layer_norm is not None:
        if not hasattr(layer_norm, "keys"):
            raise TypeError("layer_norm must be None or a dict of LN-LSTM parameters "
                            f"{LSTM_LAYER_NORM_PARAMS}, got {type(layer_norm).__name__}")
        missing = [k for k in LSTM_LAYER_NORM_PARAMS if k not in layer_norm]
        if missing:
            raise ValueError(f"layer_norm is missing {missing}; it needs {LSTM_LAYER_NORM_PARAMS}")
        checked = {}
        for name in LSTM_LAYER_NORM_PARAMS:
            size = layer_norm_param_size(name, H)
            checked[name] = v.float_array(layer_norm[name], f"layer_norm[{name!r}]", ndim=1,
                                          dtype=dtype)
            v.check_shape(checked[name], f"layer_norm[{name!r}]", (size,))
        layer_norm = checked
    if recurrent_mask is not None:
        recurrent_mask = v.float_array(recurrent_mask, "recurrent_mask", ndim=2, dtype=dtype)
        v.check_shape(recurrent_mask, "recurrent_mask", (N, H), "(batch, hidden_size)")
    return x, h0, Wx, Wh, b, c0, layer_norm, recurrent_mask


def lstm_forward(x, h0, Wx, Wh, b, c0=None, *, layer_norm=None, recurrent_mask=None,
                 eps=DEFAULT_EPS):
    """Run an LSTM over a whole sequence; the time loop runs inside the kernel.

    Parameters
    ----------
    x : ndarray of shape (N, T, D)
    h0 : ndarray of shape (N, H)
    Wx : ndarray of shape (D, 4H)
    Wh : ndarray of shape (H, 4H)
    b : ndarray of shape (4H,)
    c0 : ndarray of shape (N, H), optional (zeros)
    layer_norm : dict, optional
        LN-LSTM gains and biases (see :func:`lstm_layer_norm_params`): normalizes the input and
        recurrent projections and the cell state (Ba et al., 2016).
    recurrent_mask : ndarray of shape (N, H), optional
        Multiplies h(t-1) before the recurrent product at every step — the same mask for the
        whole sequence (variational recurrent dropout, Gal & Ghahramani 2016). Make one with
        :func:`dropout_mask`.
    eps : float
        Layer-norm variance floor.

    Returns
    -------
    h : ndarray of shape (N, T, H)
        Read-only: it is saved in the cache for the backward pass (copy it to change it).
    cache : LSTMCache
        Everything :func:`lstm_backward` needs, read-only; ``cache.c`` holds every cell state,
        so ``cache.c_final`` (= ``cache.c[:, -1]``) is the final one.
    """
    eps = v.positive_float(eps, "eps")
    x, h0, Wx, Wh, b, c0, layer_norm, recurrent_mask = _check_lstm_inputs(
        x, h0, Wx, Wh, b, c0, layer_norm, recurrent_mask)
    cache = _backend.kernels().lstm_forward(x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, eps)
    v.finite_result(cache.c, "lstm_forward", "x, Wx, Wh or b")
    return cache.h, cache


def lstm_backward(dh, cache, dc_final=None):
    """Backpropagation through time for :func:`lstm_forward`.

    Parameters
    ----------
    dh : ndarray of shape (N, T, H)
        Upstream gradient of every output h(t).
    cache : LSTMCache from :func:`lstm_forward`
    dc_final : ndarray of shape (N, H), optional
        Upstream gradient of the final cell state (for truncated BPTT across chunks).

    Returns
    -------
    LSTMGradients
        ``(dx, dh0, dc0, dWx, dWh, db, layer_norm)``; ``layer_norm`` maps each LN parameter
        name to its gradient, or is None without layer norm.
    """
    cache = _check_cache(cache, LSTMCache, "lstm_forward")
    N, T, H, dtype = cache.N, cache.T, cache.H, cache.dtype
    dh = v.float_array(dh, "dh", ndim=3, dtype=dtype)
    v.check_shape(dh, "dh", (N, T, H), "(batch, time, hidden_size)")
    if dc_final is None:
        dc_final = np.zeros((N, H), dtype)
    else:
        dc_final = v.float_array(dc_final, "dc_final", ndim=2, dtype=dtype)
        v.check_shape(dc_final, "dc_final", (N, H), "(batch, hidden_size)")
    grads = _backend.kernels().lstm_backward(dh, dc_final, cache)
    for name in ("dx", "dWx", "dWh", "dh0"):
        v.finite_result(grads[name], "lstm_backward", "dh, dc_final or the weights")
    ln = None
    if cache.layer_norm is not None:
        ln = {name: grads["d" + name] for name in LSTM_LAYER_NORM_PARAMS}
    return LSTMGradients(grads["dx"], grads["dh0"], grads["dc0"], grads["dWx"], grads["dWh"],
                         grads["db"], ln)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM time step (CS231n's interface).

    x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    -> (next_h (N, H), next_c (N, H), cache)
    """
    x = v.float_array(x, "x", ndim=2)
    if prev_c is None:
        raise TypeError("prev_c must be an array of shape (batch, hidden_size), got None")
    args = _check_lstm_inputs(x[:, None, :], prev_h, Wx, Wh, b, prev_c, None, None,
                              h0_name="prev_h", c0_name="prev_c")
    x3, h0, Wx, Wh, b, c0 = args[:6]
    next_h, next_c, cache = _backend.kernels().lstm_step_forward(x3[:, 0], h0, c0, Wx, Wh, b)
    v.finite_result(next_c, "lstm_step_forward", "x, Wx, Wh or b")
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """-> (dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx, dWh, db) for one step."""
    cache = _check_cache(cache, LSTMCache, "lstm_step_forward")
    if cache.T != 1:
        raise ValueError(f"cache holds {cache.T} time steps: lstm_step_backward takes the cache "
                         "of lstm_step_forward (use lstm_backward for a sequence)")
    N, H, dtype = cache.N, cache.H, cache.dtype
    dnext_h = v.float_array(dnext_h, "dnext_h", ndim=2, dtype=dtype)
    v.check_shape(dnext_h, "dnext_h", (N, H), "(batch, hidden_size)")
    dnext_c = v.float_array(dnext_c, "dnext_c", ndim=2, dtype=dtype)
    v.check_shape(dnext_c, "dnext_c", (N, H), "(batch, hidden_size)")
    grads = _backend.kernels().lstm_step_backward(dnext_h, dnext_c, cache)
    for arr in grads:
        v.finite_result(arr, "lstm_step_backward", "dnext_h, dnext_c or the weights")
    return grads


def _check_cache(cache, kind, made_by):
    """The cache, after checking it is the kind ``made_by`` returns and still holds arrays of
    the shapes it was made with (it is read-only, but its arrays can be swapped by force)."""
    if not isinstance(cache, kind):
        raise TypeError(f"cache must be the {kind.__name__} returned by {made_by}, got "
                        f"{type(cache).__name__}")
    return cache.check()


# ----------------------------------------------------------------------------- layer norm
def layer_norm_forward(x, gamma, beta, eps=DEFAULT_EPS):
    """Layer normalization over the last axis (any leading shape).

    out = (x - mean) / sqrt(var + eps) * gamma + beta, with the biased variance of each row,
    computed in two passes so that a large mean does not cancel.

    Parameters
    ----------
    x : ndarray of shape (..., F)
    gamma, beta : ndarray of shape (F,)

    Returns
    -------
    out : ndarray of shape (..., F)
    cache : LayerNormCache for :func:`layer_norm_backward` (read-only)
    """
    x = v.float_array(x, "x", ndim=(1, None))
    F = x.shape[-1]
    gamma = v.float_array(gamma, "gamma", ndim=1, dtype=x.dtype)
    v.check_shape(gamma, "gamma", (F,), "(features,) matching x's last axis")
    beta = v.float_array(beta, "beta", ndim=1, dtype=x.dtype)
    v.check_shape(beta, "beta", (F,), "(features,) matching x's last axis")
    eps = v.positive_float(eps, "eps")
    out, xhat, rstd = _backend.kernels().layer_norm_forward(x.reshape(-1, F), gamma, beta, eps)
    v.finite_result(out, "layer_norm_forward", "x, gamma or beta")
    return out.reshape(x.shape), LayerNormCache(xhat, rstd, gamma, x.shape)


def layer_norm_backward(dout, cache):
    """-> (dx of x's shape, dgamma (F,), dbeta (F,))."""
    cache = _check_cache(cache, LayerNormCache, "layer_norm_forward")
    dout = v.float_array(dout, "dout", dtype=cache.xhat.dtype)
    v.check_shape(dout, "dout", cache.shape, "(the shape of the forward input)")
    dx, dgamma, dbeta = _backend.kernels().layer_norm_backward(
        dout.reshape(-1, cache.shape[-1]), cache.xhat, cache.rstd, cache.gamma)
    for arr in (dx, dgamma, dbeta):
        v.finite_result(arr, "layer_norm_backward", "dout or gamma")
    return dx.reshape(cache.shape), dgamma, dbeta


# ----------------------------------------------------------------------------- dropout
def dropout_forward(x, keep_prob=0.8, training=True, rng=None):
    """Inverted dropout.

    Each element is kept with probability ``keep_prob`` and scaled by ``1 / keep_prob``, so the
    expected output equals the input; mask entries are exactly 0 or ``1 / keep_prob``.

    Parameters
    ----------
    x : ndarray of any shape
    keep_prob : float in (0, 1]
        Probability of keeping a unit. 1 is the identity.
    training : bool
        False returns the input unchanged and no mask: ``(x, None)``.
    rng : numpy.random.Generator, int seed or None
        Source of the mask. Each 64-bit draw of the generator gives four 16-bit uniforms; the
        element at C-order position k is kept when uniform k is below keep_prob, which is thus
        resolved to the nearest 1/65536. Both backends draw the same mask for one seed.

    Returns
    -------
    out : ndarray, x's shape
    mask : ndarray, x's shape, or None when not training
    """
    keep_prob = v.probability(keep_prob, "keep_prob")
    x = v.float_array(x, "x")
    if not training:
        return x, None
    rng = v.as_generator(rng)
    if keep_prob == 1.0:
        return x.copy(), np.ones_like(x)
    out, mask = _backend.kernels().dropout_forward(x.reshape(-1), keep_prob, rng)
    v.finite_result(out, "dropout_forward", "x (scaled by 1/keep_prob)")
    return out.reshape(x.shape), mask.reshape(x.shape)


def dropout_backward(dout, mask):
    """dx = dout * mask; ``mask=None`` (from evaluation mode) passes dout through."""
    dout = v.float_array(dout, "dout")
    if mask is None:
        return dout
    mask = v.float_array(mask, "mask", dtype=dout.dtype)
    v.check_shape(mask, "mask", dout.shape, "(the shape of dout)")
    dx = _backend.kernels().dropout_backward(dout.reshape(-1), mask.reshape(-1))
    return v.finite_result(dx, "dropout_backward", "dout or mask").reshape(dout.shape)


def dropout_mask(shape, keep_prob, rng=None, dtype=np.float64):
    """A dropout mask of ``shape``: entries 0 or 1/keep_prob, drawn like :func:`dropout_forward`.
    Use it for a recurrent mask that stays the same at every time step."""
    keep_prob = v.probability(keep_prob, "keep_prob")
    if np.dtype(dtype) not in v.FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    shape = tuple(v.positive_int(s, "shape") for s in np.atleast_1d(shape).tolist())
    _, mask = dropout_forward(np.ones(shape, dtype), keep_prob, True, rng)
    return mask


# ----------------------------------------------------------------------------- matrix product
def matmul(a, b, trans_a=False, trans_b=False):
    """``op(a) @ op(b)`` (op transposes when asked) on the kernels' BLAS.

    The model uses it for every matrix product outside the LSTM kernels, so one training step
    keeps to one BLAS thread pool.
    """
    a = v.float_array(a, "a", ndim=2)
    b = v.float_array(b, "b", ndim=2, dtype=a.dtype)
    inner_a = a.shape[0] if trans_a else a.shape[1]
    inner_b = b.shape[1] if trans_b else b.shape[0]
    if inner_a != inner_b:
        raise ValueError(f"a and b do not chain: op(a) has {inner_a} columns, op(b) has "
                         f"{inner_b} rows (shapes {a.shape} and {b.shape}, trans_a={trans_a}, "
                         f"trans_b={trans_b})")
    out = _backend.kernels().matmul(a, b, bool(trans_a), bool(trans_b))
    return v.finite_result(out, "matmul", "a or b")
