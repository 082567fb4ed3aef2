"""Public kernel functions: validate in Python, compute in the active backend.

Every function here checks its arguments (shapes, dtypes, values) and raises a ``ValueError``,
``TypeError`` or ``IndexError`` naming the argument, then calls the same-named function of the
backend chosen in :mod:`rnnreg._backend` — the compiled ``rnnreg._kernels`` by default, or its
NumPy twin in ``rnnreg._reference``. Both backends produce the same typed, read-only caches
(:class:`LSTMCache`, :class:`LayerNormCache`), so a cache made by one can be fed to the other's
backward; the compiled kernels check again, on the arrays' real dimensions, everything they read.

Speed: with the compiled backend every function first hands its arguments to the kernel as
they are — the kernel checks sizes, dtypes, layout and alignment itself, with integer compares —
and makes one compiled pass over the results (and, for the LSTM, the inputs) for NaN or inf.
Only when the kernel refuses an argument, or a value is not finite, does the function take the
checked path below it, which converts what can be converted (lists, strided or big-endian
arrays) or raises the error naming the argument. So a call with usable arrays costs the kernel
plus well under a microsecond (``benchmarks/diagnostics/call_overhead.py``).

Conventions
-----------
* LSTM weights: ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)``; gate blocks in :data:`GATE_ORDER`
  = (input ``i``, forget ``f``, output ``o``, candidate ``g``).
* ``keep_prob`` is the probability of *keeping* a unit (inverted dropout: kept units are
  scaled by ``1 / keep_prob``, so nothing changes at evaluation time).
* Arrays may be float32 or float64, but one call uses one dtype throughout.
"""

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _ops
from . import _validation as v
from ._conventions import (
    DEFAULT_EPS,
    GATE_ORDER,
    GRU_GATE_ORDER,
    GRU_LAYER_NORM_PARAMS,
    LSTM_LAYER_NORM_PARAMS,
    TOKEN_DTYPE,
    GRUCache,
    LayerNormCache,
    LSTMCache,
    check_token_input,
    gru_layer_norm_param_size,
    initial_layer_norm,
    layer_norm_param_size,
)

# Every function below first tries the fast path of rnnreg._ops (the compiled kernel on the
# arguments as they are, the result accepted when finite), then the checked path under it.


__all__ = [
    "GATE_ORDER",
    "LSTM_LAYER_NORM_PARAMS",
    "LSTMGradients",
    "LSTMCache",
    "LayerNormCache",
    "lstm_step_forward",
    "lstm_step_backward",
    "lstm_forward",
    "lstm_backward",
    "lstm_layer_norm_params",
    "GRU_GATE_ORDER",
    "GRU_LAYER_NORM_PARAMS",
    "GRUCache",
    "GRUGradients",
    "gru_forward",
    "gru_backward",
    "gru_layer_norm_params",
    "layer_norm_forward",
    "layer_norm_backward",
    "dropout_forward",
    "dropout_backward",
    "dropout_mask",
    "zoneout_mask",
    "matmul",
]


class LSTMGradients(NamedTuple):
    """Gradients returned by :func:`lstm_backward`, each of its forward argument's shape and
    dtype: ``dx (N, T, D)``, ``dh0 (N, H)``, ``dc0 (N, H)``, ``dWx (D, 4H)``, ``dWh (H, 4H)``,
    ``db (4H,)``, and ``layer_norm``: a dict of the LN parameters' gradients, or None.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import lstm_backward, lstm_forward
    >>> rng = np.random.default_rng(0)
    >>> N, T, D, H = 2, 5, 3, 4
    >>> h, cache = lstm_forward(rng.standard_normal((N, T, D)), np.zeros((N, H)),
    ...                         0.1 * rng.standard_normal((D, 4 * H)),
    ...                         0.1 * rng.standard_normal((H, 4 * H)), np.zeros(4 * H))
    >>> grads = lstm_backward(np.ones_like(h), cache)
    >>> grads.dx.shape, grads.dWh.shape, grads.layer_norm is None
    ((2, 5, 3), (4, 16), True)
    """

    dx: np.ndarray  #: (N, T, D)
    dh0: np.ndarray  #: (N, H)
    dc0: np.ndarray  #: (N, H)
    dWx: np.ndarray  #: (D, 4H)
    dWh: np.ndarray  #: (H, 4H)
    db: np.ndarray  #: (4H,)
    layer_norm: dict | None  #: gradient per LSTM_LAYER_NORM_PARAMS name, or None


# ----------------------------------------------------------------------------- LSTM
def lstm_layer_norm_params(
    hidden_size: int, dtype: DTypeLike = np.float64
) -> dict[str, NDArray[np.floating]]:
    """Initial LN-LSTM parameters: gains of one, biases of zero (Ba et al., 2016).

    Parameters
    ----------
    hidden_size : int
        H, the LSTM's hidden size.
    dtype : float32 or float64
        The dtype of the arrays (the LSTM's).

    Returns
    -------
    dict
        One array per name in :data:`LSTM_LAYER_NORM_PARAMS`: ``gamma_x, beta_x, gamma_h,
        beta_h`` of shape (4H,) normalize the input and recurrent projections, ``gamma_c,
        beta_c`` of shape (H,) the cell state. Pass it as ``layer_norm=`` to
        :func:`lstm_forward`.

    Examples
    --------
    >>> from rnnreg import lstm_layer_norm_params
    >>> params = lstm_layer_norm_params(4)
    >>> {name: value.shape for name, value in params.items()}
    {'gamma_x': (16,), 'beta_x': (16,), 'gamma_h': (16,), 'beta_h': (16,), 'gamma_c': (4,), 'beta_c': (4,)}
    """
    H = v.positive_int(hidden_size, "hidden_size")
    return initial_layer_norm(LSTM_LAYER_NORM_PARAMS, layer_norm_param_size, H, dtype)


def _checked_sequence_input(x, Wx, gates):
    """x — token ids (N, T) of any integer type, or floats (N, T, D) — and Wx (D, gates * H),
    checked and converted; returns (x, Wx, dtype, (N, T, D, H))."""
    ids = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if ids.ndim == 2 and ids.dtype.kind in "iu":  # one-hot inputs given as token ids
        Wx = v.float_array(Wx, "Wx", ndim=2)
        dtype = Wx.dtype
        N, T = ids.shape
        D = Wx.shape[0]
        if N * T == 0:
            raise ValueError(f"x must not be empty, got shape {ids.shape}")
        if ids.dtype.kind == "u" and int(ids.max()) >= 2**63:  # would wrap in int64
            raise ValueError(f"x: token ids must lie in [0, {D}) (the rows of Wx), got {int(ids.max())}")
        x = np.ascontiguousarray(ids, dtype=TOKEN_DTYPE)  # any integer type, order, layout
        check_token_input(x, D)
    else:
        x = v.float_array(x, "x", ndim=3)
        dtype = x.dtype
        N, T, D = x.shape
    Wx = v.float_array(Wx, "Wx", ndim=2, dtype=dtype)
    if Wx.shape[0] != D or Wx.shape[1] % gates != 0:
        raise ValueError(
            f"Wx must have shape (D, {gates}*hidden_size) with D = {D} (x's last axis), got {Wx.shape}"
        )
    return x, Wx, dtype, (N, T, D, Wx.shape[1] // gates)


def _checked_layer_norm(layer_norm, sizes, dtype, what):
    """A layer-norm mapping holding one 1-D array of ``sizes[name]`` per name, converted to
    ``dtype`` (a new dict), or TypeError/ValueError naming what does not fit."""
    names = tuple(sizes)
    if not hasattr(layer_norm, "keys"):
        raise TypeError(
            f"layer_norm must be None or a dict of {what} parameters {names}, got {type(layer_norm).__name__}"
        )
    missing = [k for k in names if k not in layer_norm]
    if missing:
        raise ValueError(f"layer_norm is missing {missing}; it needs {names}")
    checked = {}
    for name, size in sizes.items():
        checked[name] = v.float_array(layer_norm[name], f"layer_norm[{name!r}]", ndim=1, dtype=dtype)
        v.check_shape(checked[name], f"layer_norm[{name!r}]", (size,))
    return checked


def _check_lstm_inputs(
    x,
    h0,
    Wx,
    Wh,
    b,
    c0,
    layer_norm,
    recurrent_mask,
    h0_name="h0",
    c0_name="c0",
    zoneout_h=None,
    zoneout_c=None,
):
    x, Wx, dtype, (N, T, D, H) = _checked_sequence_input(x, Wx, 4)
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
        sizes = {name: layer_norm_param_size(name, H) for name in LSTM_LAYER_NORM_PARAMS}
        layer_norm = _checked_layer_norm(layer_norm, sizes, dtype, "LN-LSTM")
    if recurrent_mask is not None:
        recurrent_mask = v.float_array(recurrent_mask, "recurrent_mask", ndim=2, dtype=dtype)
        v.check_shape(recurrent_mask, "recurrent_mask", (N, H), "(batch, hidden_size)")
    zoneout = []
    for name, weights in (("zoneout_h", zoneout_h), ("zoneout_c", zoneout_c)):
        if weights is not None:
            weights = v.float_array(weights, name, ndim=3, dtype=dtype)
            v.check_shape(weights, name, (N, T, H), "(batch, time, hidden_size)")
        zoneout.append(weights)
    return (x, h0, Wx, Wh, b, c0, layer_norm, recurrent_mask) + tuple(zoneout)


def lstm_forward(
    x: ArrayLike,
    h0: ArrayLike,
    Wx: ArrayLike,
    Wh: ArrayLike,
    b: ArrayLike,
    c0: ArrayLike | None = None,
    *,
    layer_norm: Mapping[str, ArrayLike] | None = None,
    recurrent_mask: ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
    zoneout_h: ArrayLike | None = None,
    zoneout_c: ArrayLike | None = None,
) -> tuple[NDArray[np.floating], LSTMCache]:
    """Run an LSTM over a whole sequence; the time loop runs inside the kernel.

    Parameters
    ----------
    x : ndarray of shape (N, T, D), or integer ndarray of shape (N, T)
        Inputs, batch first; float32 or float64 (every array of one call has one dtype). Or
        one-hot inputs given by their token ids in [0, D): the input product is then a gather
        of rows of ``Wx`` (the same numbers as with one-hot vectors, without building them),
        and :func:`lstm_backward` gives ``dx`` None.
    h0 : ndarray of shape (N, H)
        Initial hidden state.
    Wx : ndarray of shape (D, 4H)
        Input weights, gate blocks in :data:`GATE_ORDER` (i, f, o, g).
    Wh : ndarray of shape (H, 4H)
        Recurrent weights, same gate order.
    b : ndarray of shape (4H,)
        Bias (one vector: PyTorch's two biases summed).
    c0 : ndarray of shape (N, H), optional
        Initial cell state (zeros when None).
    layer_norm : dict, optional
        LN-LSTM gains and biases (see :func:`lstm_layer_norm_params`): normalizes the input and
        recurrent projections and the cell state (Ba et al., 2016).
    recurrent_mask : ndarray of shape (N, H), optional
        Multiplies h(t-1) before the recurrent product at every step — the same mask for the
        whole sequence (variational recurrent dropout, Gal & Ghahramani 2016). Make one with
        :func:`dropout_mask`.
    eps : float
        Layer-norm variance floor.
    zoneout_h, zoneout_c : ndarray of shape (N, T, H), optional
        Zoneout (Krueger et al., 2016) of the hidden and the cell state: each step's state is
        ``u * previous + (1 - u) * new`` per unit, for the weights ``u`` given here (the
        candidate ``h~_t = o * tanh(c~_t)`` is computed from the un-zoned cell ``c~_t``). In
        training, ``u`` is 0 or 1 with probability z of 1 (:func:`zoneout_mask`); in evaluation
        ``u = z`` everywhere, the expectation. Inside the compiled time loop, forward and
        backward.

    Returns
    -------
    h : ndarray of shape (N, T, H)
        Read-only: it is saved in the cache for the backward pass (copy it to change it).
    cache : LSTMCache
        Everything :func:`lstm_backward` needs, read-only; ``cache.c`` holds every cell state,
        so ``cache.c_final`` (= ``cache.c[:, -1]``) is the final one.

    Raises
    ------
    ValueError, TypeError
        Naming the argument whose shape, dtype or value does not fit; a ValueError too when
        the result overflows to inf or NaN although every input was finite.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import lstm_forward, lstm_layer_norm_params
    >>> rng = np.random.default_rng(0)
    >>> N, T, D, H = 2, 5, 3, 4
    >>> x = rng.standard_normal((N, T, D))
    >>> Wx, Wh = 0.1 * rng.standard_normal((D, 4 * H)), 0.1 * rng.standard_normal((H, 4 * H))
    >>> h, cache = lstm_forward(x, np.zeros((N, H)), Wx, Wh, np.zeros(4 * H))
    >>> h.shape, cache.c_final.shape
    ((2, 5, 4), (2, 4))
    >>> h_ln, _ = lstm_forward(x, np.zeros((N, H)), Wx, Wh, np.zeros(4 * H),
    ...                        layer_norm=lstm_layer_norm_params(H))
    >>> bool(np.abs(h_ln).max() < 1)
    True
    """
    if type(eps) is float:
        cache = _ops.fast(
            lambda k: k.lstm_forward(
                x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, eps, zoneout_h, zoneout_c
            ),
            _finite_lstm_pass,
        )
        if cache is not None:
            return cache.h, cache
    eps = v.positive_float(eps, "eps")
    x, h0, Wx, Wh, b, c0, layer_norm, recurrent_mask, zoneout_h, zoneout_c = _check_lstm_inputs(
        x, h0, Wx, Wh, b, c0, layer_norm, recurrent_mask, zoneout_h=zoneout_h, zoneout_c=zoneout_c
    )
    cache = _ops.kernels().lstm_forward(
        x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, eps, zoneout_h, zoneout_c
    )
    v.finite_result(cache.h, "lstm_forward", "zoneout_h or zoneout_c")
    v.finite_result(cache.c, "lstm_forward", "x, Wx, Wh or b")
    return cache.h, cache


def _finite_lstm_pass(kernels, cache):
    """Inputs and states of a forward pass all finite (a saturated gate can hide an inf input)."""
    ln = tuple(cache.layer_norm.values()) if cache.layer_norm is not None else ()
    return (
        kernels.first_nonfinite(
            (
                cache.c,
                cache.h,
                None if cache.tokens else cache.x,
                cache.h0,
                cache.c0,
                cache.Wx,
                cache.Wh,
                cache.b,
                cache.recurrent_mask,
            )
            + ln
        )
        < 0
    )


def lstm_backward(dh: ArrayLike, cache: LSTMCache, dc_final: ArrayLike | None = None) -> LSTMGradients:
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

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import lstm_backward, lstm_forward
    >>> rng = np.random.default_rng(0)
    >>> N, T, D, H = 2, 5, 3, 4
    >>> h, cache = lstm_forward(rng.standard_normal((N, T, D)), np.zeros((N, H)),
    ...                         0.1 * rng.standard_normal((D, 4 * H)),
    ...                         0.1 * rng.standard_normal((H, 4 * H)), np.zeros(4 * H))
    >>> dx, dh0, dc0, dWx, dWh, db, _ = lstm_backward(np.ones_like(h), cache)
    >>> dx.shape, dWx.shape, db.shape
    ((2, 5, 3), (3, 16), (16,))
    """
    if type(cache) is LSTMCache:
        # The compiled backward compares every array of the cache with dh on their real
        # dimensions before it reads anything; a NaN or inf in dh shows in dx.
        grads = _ops.fast(
            lambda k: k.lstm_backward(dh, dc_final, cache),
            lambda k, g: k.first_nonfinite((g["dx"], g["dWx"], g["dWh"], g["dh0"])) < 0,
        )
        if grads is not None:
            return _lstm_gradients(grads, cache)
    cache = _check_cache(cache, LSTMCache, "lstm_forward")
    N, T, H, dtype = cache.N, cache.T, cache.H, cache.dtype
    dh = v.float_array(dh, "dh", ndim=3, dtype=dtype)
    v.check_shape(dh, "dh", (N, T, H), "(batch, time, hidden_size)")
    if dc_final is None:
        dc_final = np.zeros((N, H), dtype)
    else:
        dc_final = v.float_array(dc_final, "dc_final", ndim=2, dtype=dtype)
        v.check_shape(dc_final, "dc_final", (N, H), "(batch, hidden_size)")
    grads = _ops.kernels().lstm_backward(dh, dc_final, cache)
    for name in ("dx", "dWx", "dWh", "dh0") if grads["dx"] is not None else ("dWx", "dWh", "dh0"):
        v.finite_result(grads[name], "lstm_backward", "dh, dc_final or the weights")
    return _lstm_gradients(grads, cache)


def _lstm_gradients(grads, cache):
    ln = None
    if cache.layer_norm is not None:
        ln = {name: grads["d" + name] for name in LSTM_LAYER_NORM_PARAMS}
    return LSTMGradients(grads["dx"], grads["dh0"], grads["dc0"], grads["dWx"], grads["dWh"], grads["db"], ln)


def lstm_step_forward(
    x: ArrayLike, prev_h: ArrayLike, prev_c: ArrayLike, Wx: ArrayLike, Wh: ArrayLike, b: ArrayLike
) -> tuple[NDArray[np.floating], NDArray[np.floating], LSTMCache]:
    """One LSTM time step (CS231n's interface).

    Parameters
    ----------
    x : ndarray of shape (N, D)
        Inputs of this step; float32 or float64.
    prev_h, prev_c : ndarray of shape (N, H)
        Hidden and cell state of the previous step.
    Wx : ndarray of shape (D, 4H)
        Input weights, gate blocks in :data:`GATE_ORDER` (i, f, o, g).
    Wh : ndarray of shape (H, 4H)
        Recurrent weights.
    b : ndarray of shape (4H,)
        Bias.

    Returns
    -------
    next_h, next_c : ndarray of shape (N, H)
        The new hidden and cell state.
    cache : LSTMCache
        For :func:`lstm_step_backward` (one time step, read-only).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import lstm_step_forward
    >>> rng = np.random.default_rng(0)
    >>> N, D, H = 2, 3, 4
    >>> x, h, c = rng.standard_normal((N, D)), np.zeros((N, H)), np.zeros((N, H))
    >>> Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), np.zeros(4 * H)
    >>> next_h, next_c, cache = lstm_step_forward(x, h, c, Wx, Wh, b)
    >>> next_h.shape, next_c.shape, cache.T
    ((2, 4), (2, 4), 1)
    """
    x = v.float_array(x, "x", ndim=2)
    if prev_c is None:
        raise TypeError("prev_c must be an array of shape (batch, hidden_size), got None")
    args = _check_lstm_inputs(
        x[:, None, :], prev_h, Wx, Wh, b, prev_c, None, None, h0_name="prev_h", c0_name="prev_c"
    )
    x3, h0, Wx, Wh, b, c0 = args[:6]
    next_h, next_c, cache = _ops.kernels().lstm_step_forward(x3[:, 0], h0, c0, Wx, Wh, b)
    v.finite_result(next_c, "lstm_step_forward", "x, Wx, Wh or b")
    return next_h, next_c, cache


def lstm_step_backward(
    dnext_h: ArrayLike, dnext_c: ArrayLike, cache: LSTMCache
) -> tuple[NDArray[np.floating], ...]:
    """Backward pass of one LSTM time step.

    Parameters
    ----------
    dnext_h, dnext_c : ndarray of shape (N, H)
        Upstream gradients of the step's hidden and cell outputs.
    cache : LSTMCache
        From :func:`lstm_step_forward`.

    Returns
    -------
    tuple of ndarray
        ``(dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,))``.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import lstm_step_backward, lstm_step_forward
    >>> rng = np.random.default_rng(0)
    >>> N, D, H = 2, 3, 4
    >>> h, c, cache = lstm_step_forward(rng.standard_normal((N, D)), np.zeros((N, H)),
    ...                                 np.zeros((N, H)), rng.standard_normal((D, 4 * H)),
    ...                                 rng.standard_normal((H, 4 * H)), np.zeros(4 * H))
    >>> dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(np.ones_like(h), np.zeros_like(c), cache)
    >>> dx.shape, dWh.shape
    ((2, 3), (4, 16))
    """
    cache = _check_cache(cache, LSTMCache, "lstm_step_forward")
    if cache.T != 1:
        raise ValueError(
            f"cache holds {cache.T} time steps: lstm_step_backward takes the cache "
            "of lstm_step_forward (use lstm_backward for a sequence)"
        )
    N, H, dtype = cache.N, cache.H, cache.dtype
    dnext_h = v.float_array(dnext_h, "dnext_h", ndim=2, dtype=dtype)
    v.check_shape(dnext_h, "dnext_h", (N, H), "(batch, hidden_size)")
    dnext_c = v.float_array(dnext_c, "dnext_c", ndim=2, dtype=dtype)
    v.check_shape(dnext_c, "dnext_c", (N, H), "(batch, hidden_size)")
    grads = _ops.kernels().lstm_step_backward(dnext_h, dnext_c, cache)
    for arr in grads:
        v.finite_result(arr, "lstm_step_backward", "dnext_h, dnext_c or the weights")
    return grads


def _check_cache(cache, kind, made_by):
    """The cache, after checking it is the kind ``made_by`` returns and still holds arrays of
    the shapes it was made with (it is read-only, but its arrays can be swapped by force)."""
    if not isinstance(cache, kind):
        raise TypeError(
            f"cache must be the {kind.__name__} returned by {made_by}, got {type(cache).__name__}"
        )
    return cache.check()


# ----------------------------------------------------------------------------- GRU
class GRUGradients(NamedTuple):
    """Gradients returned by :func:`gru_backward`, each of its forward argument's shape and
    dtype: ``dx (N, T, D)`` (None for token ids), ``dh0 (N, H)``, ``dWx (D, 3H)``, ``dWh (H,
    3H)``, ``db (3H,)``, ``dbn (H,)``, and ``layer_norm``: a dict of the LN-GRU parameters'
    gradients, or None.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import gru_backward, gru_forward
    >>> rng = np.random.default_rng(0)
    >>> h, cache = gru_forward(rng.integers(0, 7, (2, 5)), np.zeros((2, 4)),
    ...                        rng.standard_normal((7, 12)), rng.standard_normal((4, 12)),
    ...                        np.zeros(12), np.zeros(4))
    >>> grads = gru_backward(np.ones_like(h), cache)
    >>> grads.dx is None, grads.dWx.shape, grads.dbn.shape    # token ids take no gradient
    (True, (7, 12), (4,))
    """

    dx: np.ndarray | None  #: (N, T, D)
    dh0: np.ndarray  #: (N, H)
    dWx: np.ndarray  #: (D, 3H)
    dWh: np.ndarray  #: (H, 3H)
    db: np.ndarray  #: (3H,)
    dbn: np.ndarray  #: (H,)
    layer_norm: dict | None  #: gradient per GRU_LAYER_NORM_PARAMS name, or None


def gru_layer_norm_params(hidden_size: int, dtype: DTypeLike = np.float64) -> dict[str, NDArray[np.floating]]:
    """Initial LN-GRU parameters: gains of one, biases of zero (Ba et al., 2016).

    Parameters
    ----------
    hidden_size : int
        H, the GRU's hidden size.
    dtype : float32 or float64
        The dtype of the arrays (the GRU's).

    Returns
    -------
    dict
        One (3H,) array per name in :data:`GRU_LAYER_NORM_PARAMS`: ``gamma_x, beta_x`` normalize
        the input projection, ``gamma_h, beta_h`` the recurrent one. Pass it as ``layer_norm=``
        to :func:`gru_forward`.

    Examples
    --------
    >>> from rnnreg import gru_layer_norm_params
    >>> {name: value.shape for name, value in gru_layer_norm_params(4).items()}
    {'gamma_x': (12,), 'beta_x': (12,), 'gamma_h': (12,), 'beta_h': (12,)}
    """
    H = v.positive_int(hidden_size, "hidden_size")
    return {
        name: (np.ones if name.startswith("gamma") else np.zeros)(3 * H, dtype)
        for name in GRU_LAYER_NORM_PARAMS
    }


def gru_forward(
    x: ArrayLike,
    h0: ArrayLike,
    Wx: ArrayLike,
    Wh: ArrayLike,
    b: ArrayLike,
    bn: ArrayLike,
    *,
    layer_norm: Mapping[str, ArrayLike] | None = None,
    recurrent_mask: ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
    zoneout_h: ArrayLike | None = None,
) -> tuple[NDArray[np.floating], GRUCache]:
    """Run a GRU over a whole sequence; the time loop runs inside the kernel.

    PyTorch's and Keras's convention (the reset gate applied after the recurrent product)::

        r = σ(x Wx_r + h' Wh_r + b_r),  z = σ(x Wx_z + h' Wh_z + b_z)
        n = tanh(x Wx_n + b_n + r ⊙ (h' Wh_n + bn)),   h = (1 − z) ⊙ n + z ⊙ h_{t−1}

    with ``h' = h_{t−1} ⊙ recurrent_mask``; gate blocks in :data:`GRU_GATE_ORDER` (r, z, n).

    Parameters
    ----------
    x : ndarray of shape (N, T, D), or integer ndarray of shape (N, T)
        Inputs, or one-hot inputs given by their token ids in [0, D) (as :func:`lstm_forward`).
    h0 : ndarray of shape (N, H)
    Wx : ndarray of shape (D, 3H)
    Wh : ndarray of shape (H, 3H)
    b : ndarray of shape (3H,)
        PyTorch's ``bias_ih`` plus the r and z blocks of its ``bias_hh``.
    bn : ndarray of shape (H,)
        The candidate's recurrent bias (PyTorch's ``bias_hh`` n block), scaled by the reset gate.
    layer_norm : dict, optional
        LN-GRU gains and biases (:func:`gru_layer_norm_params`): the input and the recurrent
        projections each normalized over their 3H units before the gates (Ba et al. 2016).
    recurrent_mask : ndarray of shape (N, H), optional
        Multiplies h(t−1) before the recurrent product, the same mask at every step.
    eps : float
        Layer-norm variance floor.
    zoneout_h : ndarray of shape (N, T, H), optional
        Zoneout weights: each step's state is ``u ⊙ previous + (1 − u) ⊙ new``.

    Returns
    -------
    h : ndarray of shape (N, T, H)
        Read-only (saved in the cache).
    cache : GRUCache

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import gru_backward, gru_forward
    >>> rng = np.random.default_rng(0)
    >>> N, T, D, H = 2, 5, 3, 4
    >>> h, cache = gru_forward(rng.standard_normal((N, T, D)), np.zeros((N, H)),
    ...                        0.1 * rng.standard_normal((D, 3 * H)),
    ...                        0.1 * rng.standard_normal((H, 3 * H)), np.zeros(3 * H), np.zeros(H))
    >>> h.shape, gru_backward(np.ones_like(h), cache).dWh.shape
    ((2, 5, 4), (4, 12))
    """
    eps = v.positive_float(eps, "eps")
    x, Wx, dtype, (N, T, D, H) = _checked_sequence_input(x, Wx, 3)
    Wh = v.float_array(Wh, "Wh", ndim=2, dtype=dtype)
    v.check_shape(Wh, "Wh", (H, 3 * H), "(hidden_size, 3*hidden_size)")
    b = v.float_array(b, "b", ndim=1, dtype=dtype)
    v.check_shape(b, "b", (3 * H,), "(3*hidden_size,)")
    bn = v.float_array(bn, "bn", ndim=1, dtype=dtype)
    v.check_shape(bn, "bn", (H,), "(hidden_size,)")
    h0 = v.float_array(h0, "h0", ndim=2, dtype=dtype)
    v.check_shape(h0, "h0", (N, H), "(batch, hidden_size)")
    if layer_norm is not None:
        sizes = {name: gru_layer_norm_param_size(name, H) for name in GRU_LAYER_NORM_PARAMS}
        layer_norm = _checked_layer_norm(layer_norm, sizes, dtype, "LN-GRU")
    if recurrent_mask is not None:
        recurrent_mask = v.float_array(recurrent_mask, "recurrent_mask", ndim=2, dtype=dtype)
        v.check_shape(recurrent_mask, "recurrent_mask", (N, H), "(batch, hidden_size)")
    if zoneout_h is not None:
        zoneout_h = v.float_array(zoneout_h, "zoneout_h", ndim=3, dtype=dtype)
        v.check_shape(zoneout_h, "zoneout_h", (N, T, H), "(batch, time, hidden_size)")
    cache = _ops.kernels().gru_forward(x, h0, Wx, Wh, b, bn, layer_norm, recurrent_mask, eps, zoneout_h)
    v.finite_result(cache.h, "gru_forward", "x, Wx, Wh, b or bn")
    return cache.h, cache


def gru_backward(dh: ArrayLike, cache: GRUCache) -> GRUGradients:
    """Backpropagation through time for :func:`gru_forward`.

    Parameters
    ----------
    dh : ndarray of shape (N, T, H)
        Upstream gradient of every output h(t).
    cache : GRUCache from :func:`gru_forward`

    Returns
    -------
    GRUGradients
        ``(dx, dh0, dWx, dWh, db, dbn, layer_norm)``.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import gru_backward, gru_forward, gru_layer_norm_params
    >>> rng = np.random.default_rng(0)
    >>> h, cache = gru_forward(rng.standard_normal((2, 5, 3)), np.zeros((2, 4)),
    ...                        rng.standard_normal((3, 12)), rng.standard_normal((4, 12)),
    ...                        np.zeros(12), np.zeros(4), layer_norm=gru_layer_norm_params(4))
    >>> grads = gru_backward(np.ones_like(h), cache)
    >>> grads.dx.shape, sorted(grads.layer_norm)
    ((2, 5, 3), ['beta_h', 'beta_x', 'gamma_h', 'gamma_x'])
    """
    cache = _check_cache(cache, GRUCache, "gru_forward")
    N, T, H, dtype = cache.N, cache.T, cache.H, cache.dtype
    dh = v.float_array(dh, "dh", ndim=3, dtype=dtype)
    v.check_shape(dh, "dh", (N, T, H), "(batch, time, hidden_size)")
    grads = _ops.kernels().gru_backward(dh, cache)
    for name in ("dx", "dWx", "dWh", "dh0"):
        if grads[name] is not None:
            v.finite_result(grads[name], "gru_backward", "dh or the weights")
    ln = None if cache.layer_norm is None else {name: grads["d" + name] for name in GRU_LAYER_NORM_PARAMS}
    return GRUGradients(grads["dx"], grads["dh0"], grads["dWx"], grads["dWh"], grads["db"], grads["dbn"], ln)


# ----------------------------------------------------------------------------- layer norm
def layer_norm_forward(
    x: ArrayLike, gamma: ArrayLike, beta: ArrayLike, eps: float = DEFAULT_EPS
) -> tuple[NDArray[np.floating], LayerNormCache]:
    """Layer normalization over the last axis (any leading shape).

    out = (x - mean) / sqrt(var + eps) * gamma + beta, with the biased variance of each row,
    computed in two passes so that a large mean does not cancel.

    Parameters
    ----------
    x : ndarray of shape (..., F)
        float32 or float64; each row (the last axis) is normalized on its own.
    gamma, beta : ndarray of shape (F,)
        Gain and bias, of x's dtype.
    eps : float
        Added to the variance (> 0).

    Returns
    -------
    out : ndarray of shape (..., F)
    cache : LayerNormCache
        For :func:`layer_norm_backward` (read-only).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import layer_norm_forward
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 10.0, 10.0, 50.0]])
    >>> out, cache = layer_norm_forward(x, np.ones(4), np.zeros(4))
    >>> np.round(out, 3)
    array([[-1.342, -0.447,  0.447,  1.342],
           [-0.577, -0.577, -0.577,  1.732]])
    """
    if type(eps) is float:
        # a NaN or inf in x, gamma or beta makes its rows of out non-finite
        done = _ops.fast(
            lambda k: k.layer_norm_forward(
                x if x.ndim == 2 else x.reshape(-1, x.shape[-1]),  # type: ignore[union-attr]
                gamma,
                beta,
                eps,
                True,
            ),
            lambda k, result: result[3],
        )
        if done is not None:
            out, xhat, rstd, _ = done
            cache = LayerNormCache(xhat, rstd, gamma, x.shape)  # type: ignore[union-attr,arg-type]
            return out.reshape(x.shape), cache  # type: ignore[union-attr]
    x = v.float_array(x, "x", ndim=(1, None))
    F = x.shape[-1]
    gamma = v.float_array(gamma, "gamma", ndim=1, dtype=x.dtype)
    v.check_shape(gamma, "gamma", (F,), "(features,) matching x's last axis")
    beta = v.float_array(beta, "beta", ndim=1, dtype=x.dtype)
    v.check_shape(beta, "beta", (F,), "(features,) matching x's last axis")
    eps = v.positive_float(eps, "eps")
    out, xhat, rstd = _ops.kernels().layer_norm_forward(x.reshape(-1, F), gamma, beta, eps)
    v.finite_result(out, "layer_norm_forward", "x, gamma or beta")
    return out.reshape(x.shape), LayerNormCache(xhat, rstd, gamma, x.shape)


def layer_norm_backward(
    dout: ArrayLike, cache: LayerNormCache
) -> tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]:
    """Backward pass of :func:`layer_norm_forward`.

    Parameters
    ----------
    dout : ndarray
        Upstream gradient, of the forward input's shape and dtype.
    cache : LayerNormCache
        From :func:`layer_norm_forward`.

    Returns
    -------
    dx : ndarray
        Of the forward input's shape.
    dgamma, dbeta : ndarray of shape (F,)

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import layer_norm_backward, layer_norm_forward
    >>> x = np.random.default_rng(0).standard_normal((3, 4))
    >>> out, cache = layer_norm_forward(x, np.ones(4), np.zeros(4))
    >>> dx, dgamma, dbeta = layer_norm_backward(np.ones_like(out), cache)
    >>> dbeta
    array([3., 3., 3., 3.])
    >>> bool(np.allclose(dx.sum(axis=1), 0))   # a shift of a row changes nothing
    True
    """
    if type(cache) is LayerNormCache and getattr(dout, "shape", None) == cache.shape:
        done = _ops.fast(
            lambda k: k.layer_norm_backward(
                dout.reshape(-1, cache.shape[-1]),  # type: ignore[union-attr]
                cache.xhat,
                cache.rstd,
                cache.gamma,
                True,
            ),
            lambda k, result: result[3],
        )
        if done is not None:
            dx, dgamma, dbeta, _ = done
            return dx.reshape(cache.shape), dgamma, dbeta
    cache = _check_cache(cache, LayerNormCache, "layer_norm_forward")
    dout = v.float_array(dout, "dout", dtype=cache.xhat.dtype)
    v.check_shape(dout, "dout", cache.shape, "(the shape of the forward input)")
    dx, dgamma, dbeta = _ops.kernels().layer_norm_backward(
        dout.reshape(-1, cache.shape[-1]), cache.xhat, cache.rstd, cache.gamma
    )
    for arr in (dx, dgamma, dbeta):
        v.finite_result(arr, "layer_norm_backward", "dout or gamma")
    return dx.reshape(cache.shape), dgamma, dbeta


# ----------------------------------------------------------------------------- dropout
def dropout_forward(
    x: ArrayLike,
    keep_prob: float = 0.8,
    training: bool = True,
    rng: None | int | np.random.Generator = None,
    *,
    out: NDArray[np.floating] | None = None,
    mask_out: NDArray[np.floating] | None = None,
) -> tuple[NDArray[np.floating], NDArray[np.floating] | None]:
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
    out, mask_out : ndarray of x's shape and dtype, C-contiguous, optional
        Buffers to write the result and the mask into (``out`` may be ``x`` itself; the mask
        overlaps neither). Reusing them across calls saves a large mask the cost of fresh
        memory pages (``benchmarks/run.py``, dropout rows).

    Returns
    -------
    out : ndarray, x's shape
        ``out`` itself when given.
    mask : ndarray, x's shape, or None when not training
        ``mask_out`` itself when given.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import dropout_forward
    >>> out, mask = dropout_forward(np.ones((2, 5)), keep_prob=0.5, rng=0)
    >>> sorted(set(mask.ravel().tolist()))   # dropped, or kept and scaled by 1 / keep_prob
    [0.0, 2.0]
    >>> dropout_forward(np.ones(3), keep_prob=0.5, training=False)[1] is None
    True
    """
    out_flat, mask_flat = _flat_buffer(out, x), _flat_buffer(mask_out, x)
    if (
        training is True
        and type(keep_prob) is float
        and keep_prob < 1.0
        and type(rng) is np.random.Generator
        and out_flat is not False
        and mask_flat is not False
    ):
        # a dropped NaN or inf still shows: the kernel multiplies it by 0
        done = _ops.fast(
            lambda k: k.dropout_forward(
                x if x.ndim == 1 else x.reshape(-1),  # type: ignore[union-attr]
                keep_prob,
                rng,
                True,
                out_flat,
                mask_flat,
            ),
            lambda k, result: result[2],
        )
        if done is not None:
            return _shaped(done[0], out, x), _shaped(done[1], mask_out, x)
    keep_prob = v.probability(keep_prob, "keep_prob")
    x = v.float_array(x, "x")
    for name, buffer in (("out", out), ("mask_out", mask_out)):
        if buffer is not None and not (
            isinstance(buffer, np.ndarray)
            and buffer.shape == x.shape
            and buffer.dtype == x.dtype
            and buffer.flags.c_contiguous
            and buffer.flags.writeable
        ):
            raise ValueError(
                f"{name} must be a writeable C-contiguous {x.dtype} array of x's shape {x.shape}"
            )
    if not training:
        return x, None
    rng = v.as_generator(rng)
    if keep_prob == 1.0:
        result, mask = x.copy(), np.ones_like(x)
    else:
        result, mask = _ops.kernels().dropout_forward(x.reshape(-1), keep_prob, rng)
        v.finite_result(result, "dropout_forward", "x (scaled by 1/keep_prob)")
    if mask_out is not None:
        if np.shares_memory(mask_out, x) or (out is not None and np.shares_memory(mask_out, out)):
            raise ValueError("mask_out overlaps x or out")
        np.copyto(mask_out, mask.reshape(x.shape))
        mask = mask_out
    if out is not None:
        np.copyto(out, result.reshape(x.shape))
        result = out
    return result.reshape(x.shape), mask.reshape(x.shape)


def _flat_buffer(buffer, x):
    """A caller's output buffer as the kernel's 1-D view of it: None when there is none, False
    when it cannot be one (the checked path then explains) — never a copy, so that what the
    kernel writes lands in the caller's array."""
    if buffer is None:
        return None
    if (
        type(buffer) is not np.ndarray
        or not buffer.flags.c_contiguous
        or buffer.shape != getattr(x, "shape", None)
    ):
        return False
    return buffer.reshape(-1)


def _shaped(result, buffer, x):
    """The kernel's 1-D result as the caller sees it: their buffer, or x's shape."""
    if buffer is not None:
        return buffer
    return result if result.ndim == x.ndim else result.reshape(x.shape)


def dropout_backward(dout: ArrayLike, mask: ArrayLike | None) -> NDArray[np.floating]:
    """Backward pass of :func:`dropout_forward`: ``dx = dout * mask``.

    Parameters
    ----------
    dout : ndarray
        Upstream gradient.
    mask : ndarray of dout's shape and dtype, or None
        The mask :func:`dropout_forward` returned; None (evaluation mode) passes dout through.

    Returns
    -------
    dx : ndarray of dout's shape

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import dropout_backward, dropout_forward
    >>> out, mask = dropout_forward(np.ones(6), keep_prob=0.5, rng=1)
    >>> bool((dropout_backward(np.ones(6), mask) == mask).all())
    True
    """
    if mask is not None and getattr(dout, "shape", None) == getattr(mask, "shape", ()):
        dx = _ops.fast(
            lambda k: k.dropout_backward(
                dout.reshape(-1),  # type: ignore[union-attr]
                mask.reshape(-1),  # type: ignore[union-attr]
            ),
            lambda k, result: k.all_finite(result),
        )
        if dx is not None:
            return dx.reshape(dout.shape)  # type: ignore[union-attr]
    dout = v.float_array(dout, "dout")
    if mask is None:
        return dout
    mask = v.float_array(mask, "mask", dtype=dout.dtype)
    v.check_shape(mask, "mask", dout.shape, "(the shape of dout)")
    dx = _ops.kernels().dropout_backward(dout.reshape(-1), mask.reshape(-1))
    return v.finite_result(dx, "dropout_backward", "dout or mask").reshape(dout.shape)


def dropout_mask(
    shape: int | Sequence[int],
    keep_prob: float,
    rng: None | int | np.random.Generator = None,
    dtype: DTypeLike = np.float64,
) -> NDArray[np.floating]:
    """A dropout mask: entries 0 or 1/keep_prob, drawn like :func:`dropout_forward`.

    Use it for a recurrent mask that stays the same at every time step
    (``lstm_forward(..., recurrent_mask=dropout_mask((N, H), 0.75, rng))``).

    Parameters
    ----------
    shape : int or tuple of int
    keep_prob : float in (0, 1]
        Probability of keeping a unit.
    rng : numpy.random.Generator, int seed or None
    dtype : float32 or float64

    Returns
    -------
    ndarray of ``shape`` and ``dtype``

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import dropout_mask
    >>> mask = dropout_mask((2, 4), keep_prob=0.75, rng=0, dtype="float32")
    >>> mask.shape, np.unique(mask)
    ((2, 4), array([0.       , 1.3333334], dtype=float32))
    """
    return _mask(_ops.dropout_mask, shape, keep_prob, "keep_prob", rng, dtype)


def _mask(draw, shape, probability, name, rng, dtype):
    """``draw(shape, probability, rng, dtype)`` on checked arguments; all ones, drawing nothing,
    when the probability (of keeping a unit, or of zoning it out) is 1."""
    probability = v.probability(probability, name)
    if np.dtype(dtype) not in v.FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    shape = tuple(v.positive_int(s, "shape") for s in np.atleast_1d(shape).tolist())
    rng = v.as_generator(rng)
    if probability == 1.0:
        return np.ones(shape, dtype)
    return draw(shape, probability, rng, np.dtype(dtype))


def zoneout_mask(
    shape: int | Sequence[int],
    zoneout: float,
    rng: None | int | np.random.Generator = None,
    dtype: DTypeLike = np.float64,
) -> NDArray[np.floating]:
    """Zoneout's training weights for :func:`lstm_forward`: 1 (keep the previous state) with
    probability ``zoneout``, else 0 — one per unit and time step (Krueger et al., 2016).

    Drawn by the dropout rule (:func:`dropout_mask` with ``keep_prob = zoneout``, resolved to
    1/65536), so both backends give the same weights from the same seed.

    Parameters
    ----------
    shape : int or tuple of int
        (N, T, H) for :func:`lstm_forward`.
    zoneout : float in (0, 1]
        Probability that a unit keeps its previous value at a step.
    rng : numpy.random.Generator, int seed or None
    dtype : float32 or float64

    Returns
    -------
    ndarray of ``shape`` and ``dtype``, entries 0 or 1

    Examples
    --------
    >>> from rnnreg import zoneout_mask
    >>> u = zoneout_mask((2, 3, 4), 0.25, rng=0)
    >>> u.shape, sorted(set(u.ravel().tolist())) == [0.0, 1.0]
    ((2, 3, 4), True)
    """
    return _mask(_ops.zoneout_mask, shape, zoneout, "zoneout", rng, dtype)


# ----------------------------------------------------------------------------- matrix product
def matmul(a: ArrayLike, b: ArrayLike, trans_a: bool = False, trans_b: bool = False) -> NDArray[np.floating]:
    """``op(a) @ op(b)`` (op transposes when asked) on the kernels' BLAS.

    The model's output projection and its gradients use it (the LSTM's products run inside the
    sequence kernels), so one training step keeps to one BLAS and one thread setting.

    Parameters
    ----------
    a, b : ndarray, 2-D, one float dtype
    trans_a, trans_b : bool
        Use the transpose of ``a`` (of ``b``).

    Returns
    -------
    ndarray
        C-contiguous, of a's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import matmul
    >>> a = np.arange(6.0).reshape(2, 3)
    >>> matmul(a, a, trans_b=True)
    array([[ 5., 14.],
           [14., 50.]])
    """
    # a product of finite inputs can still overflow: one pass over the result
    out = _ops.fast(
        lambda k: k.matmul(a, b, bool(trans_a), bool(trans_b)),
        lambda k, result: k.first_nonfinite((result, a, b)) < 0,
    )
    if out is not None:
        return out
    a = v.float_array(a, "a", ndim=2)
    b = v.float_array(b, "b", ndim=2, dtype=a.dtype)
    inner_a = a.shape[0] if trans_a else a.shape[1]
    inner_b = b.shape[1] if trans_b else b.shape[0]
    if inner_a != inner_b:
        raise ValueError(
            f"a and b do not chain: op(a) has {inner_a} columns, op(b) has "
            f"{inner_b} rows (shapes {a.shape} and {b.shape}, trans_a={trans_a}, "
            f"trans_b={trans_b})"
        )
    out = _ops.kernels().matmul(a, b, bool(trans_a), bool(trans_b))
    return v.finite_result(out, "matmul", "a or b")
