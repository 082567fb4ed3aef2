"""Pure-NumPy twins of every compiled kernel in ``rnnreg._kernels``.

This module is the test oracle. Each function has the same name, arguments and return values as
its compiled twin and follows the same contracts, defined once in :mod:`rnnreg._conventions`
(read its docstring for the LSTM equations and the gate order). The public wrappers in
:mod:`rnnreg.functional` validate first, then call one of the two backends. Arrays are
C-contiguous, of one floating dtype (float32 or float64). NumPy cannot read out of bounds, but a
tampered cache would give a broadcasting error deep inside a function, so the backward passes
check their cache first (:meth:`LSTMCache.check`), as the compiled ones do.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

# The contracts the compiled module exposes under the same names (the twin mirrors its names).
from ._conventions import (  # noqa: F401
    GATE_ORDER,
    GRU_GATE_ORDER,
    GRU_LAYER_NORM_PARAMS,
    GRU_LN_SAVED,
    LN_SAVED,
    LSTM_LAYER_NORM_PARAMS,
    GRUCache,
    LSTMCache,
    check_token_input,
    dropout_threshold,
    freeze,
    gru_cache,
    is_token_input,
    lstm_cache,
    step_functions,
)


# ----------------------------------------------------------------------------- helpers
def sigmoid(x):
    """Logistic function that never overflows: exp only ever sees -|x|."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z)).astype(x.dtype, copy=False)


def _ln_rows_forward(x, gamma, beta, eps):
    """Layer norm over the last axis. Two-pass variance, so a large mean does not cancel."""
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + x.dtype.type(eps))
    xhat = centred * rstd
    return xhat * gamma + beta, xhat, rstd[..., 0]


def _ln_rows_backward(dout, xhat, rstd, gamma):
    """Closed-form input gradient of layer norm: rstd * (g - mean(g) - xhat * mean(g * xhat))."""
    g = dout * gamma
    return rstd[..., None] * (
        g - g.mean(axis=-1, keepdims=True) - xhat * np.mean(g * xhat, axis=-1, keepdims=True)
    )


# ----------------------------------------------------------------------------- layer norm
def layer_norm_forward(x, gamma, beta, eps, report_finite=False):
    """x (M, F), gamma (F,), beta (F,) -> (out (M, F), xhat (M, F), rstd (M,)); xhat and rstd,
    saved for the backward pass, are read-only. report_finite adds whether out is finite."""
    out, xhat, rstd = _ln_rows_forward(x, gamma, beta, eps)
    freeze(xhat, rstd)
    return (out, xhat, rstd, all_finite(out)) if report_finite else (out, xhat, rstd)


def layer_norm_backward(dout, xhat, rstd, gamma, report_finite=False):
    """dout (M, F) -> (dx (M, F), dgamma (F,), dbeta (F,)); report_finite adds whether all
    three are finite."""
    dx = _ln_rows_backward(dout, xhat, rstd, gamma)
    grads = dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)
    return grads + (first_nonfinite(grads) < 0,) if report_finite else grads


# ----------------------------------------------------------------------------- dropout
def draw_mask(n, keep_prob, rng, dtype=np.float64, scaled=True):
    """n mask values by the rule of :func:`rnnreg._conventions.dropout_threshold` (each 64-bit
    draw of ``rng`` serves four elements): 1/keep_prob where an element is kept (1 when not
    ``scaled``), else 0."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not (0 < keep_prob <= 1):
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob!r}")
    draws = rng.integers(0, 1 << 64, size=(n + 3) // 4, dtype=np.uint64)  # = next_uint64 each
    shifts = np.array([0, 16, 32, 48], dtype=np.uint64)
    uniforms = ((draws[:, None] >> shifts) & np.uint64(0xFFFF)).reshape(-1)[:n]
    kept = dtype.type(1.0 / keep_prob) if scaled else dtype.type(1)
    return np.where(uniforms < dropout_threshold(keep_prob), kept, dtype.type(0)).astype(dtype)


def dropout_forward(x, keep_prob, rng, report_finite=False, out=None, mask=None):
    """x (M,) -> (out, mask), the mask of :func:`draw_mask`; written into ``out`` / ``mask``
    when given (out may be x)."""
    mask_out = mask
    mask = draw_mask(x.shape[0], keep_prob, rng, x.dtype)
    result = x * mask
    if out is not None:
        if out.shape != x.shape or out.dtype != x.dtype:
            raise ValueError(f"out has shape {out.shape}, expected {x.shape} (the shape of x)")
        if (
            np.shares_memory(out, x)
            and out.__array_interface__["data"][0] != x.__array_interface__["data"][0]
        ):
            raise ValueError("out overlaps x")
        out[...] = result
        result = out
    if mask_out is not None:
        if mask_out.shape != x.shape or mask_out.dtype != x.dtype:
            raise ValueError(f"mask has shape {mask_out.shape}, expected {x.shape}")
        if np.shares_memory(mask_out, x) or np.shares_memory(mask_out, result):
            raise ValueError("mask overlaps x or out")
        mask_out[...] = mask
        mask = mask_out
    return (result, mask, all_finite(result)) if report_finite else (result, mask)


def dropout_backward(dout, mask):
    return dout * mask


# ----------------------------------------------------------------------------- LSTM
def lstm_forward(x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, eps, zoneout_h=None, zoneout_c=None):
    """Run an LSTM over x (N, T, D) from (h0, c0) (N, H). Returns the :class:`LSTMCache` that
    :func:`lstm_backward` needs; its ``h`` (N, T, H) is the output and ``c[:, -1]`` the final
    cell state. ``layer_norm`` is None or a mapping of the :data:`LSTM_LAYER_NORM_PARAMS`;
    ``recurrent_mask`` is None or (N, H); ``zoneout_h``, ``zoneout_c`` None or the zoneout
    weights (N, T, H) of h and c (see :mod:`rnnreg._conventions`)."""
    for name, arr in (("zoneout_h", zoneout_h), ("zoneout_c", zoneout_c)):
        if arr is not None and arr.shape != h0.shape[:1] + x.shape[1:2] + h0.shape[1:]:
            raise ValueError(f"{name} has shape {arr.shape}, expected (N, T, H)")
    H = h0.shape[1]
    dtype = h0.dtype
    if is_token_input(x):  # one-hot inputs as ids: the product is a gather of rows of Wx
        check_token_input(x, Wx.shape[0])
        N, T = x.shape
        xw = Wx[x]
    else:
        N, T, D = x.shape
        xw = (x.reshape(N * T, D) @ Wx).reshape(N, T, 4 * H)
    if c0 is None:
        c0 = np.zeros((N, H), dtype)
    saved = None
    if layer_norm is not None:
        saved = {}
        xw, saved["xhat_x"], saved["rstd_x"] = _ln_rows_forward(
            xw, layer_norm["gamma_x"], layer_norm["beta_x"], eps
        )
        saved["xhat_h"] = np.empty((N, T, 4 * H), dtype)
        saved["rstd_h"] = np.empty((N, T), dtype)
        saved["xhat_c"] = np.empty((N, T, H), dtype)
        saved["rstd_c"] = np.empty((N, T), dtype)
    hprev = np.empty((N, T, H), dtype)
    gates = np.empty((N, T, 4 * H), dtype)
    c = np.empty((N, T, H), dtype)
    tc = np.empty((N, T, H), dtype)
    h = np.empty((N, T, H), dtype)
    h_prev, c_prev = h0, c0
    for t in range(T):
        hprev[:, t] = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        hw = hprev[:, t] @ Wh
        if layer_norm is not None:
            hw, saved["xhat_h"][:, t], saved["rstd_h"][:, t] = _ln_rows_forward(
                hw, layer_norm["gamma_h"], layer_norm["beta_h"], eps
            )
        a = xw[:, t] + hw + b
        gates[:, t, : 3 * H] = sigmoid(a[:, : 3 * H])
        gates[:, t, 3 * H :] = np.tanh(a[:, 3 * H :])
        i, f, o, g = (gates[:, t, k * H : (k + 1) * H] for k in range(4))
        c[:, t] = f * c_prev + i * g
        if layer_norm is not None:
            c_norm, saved["xhat_c"][:, t], saved["rstd_c"][:, t] = _ln_rows_forward(
                c[:, t], layer_norm["gamma_c"], layer_norm["beta_c"], eps
            )
            tc[:, t] = np.tanh(c_norm)
        else:
            tc[:, t] = np.tanh(c[:, t])
        h[:, t] = o * tc[:, t]
        if zoneout_c is not None:  # c[:, t] held the candidate c~_t until here
            u = zoneout_c[:, t]
            c[:, t] = u * c_prev + (1 - u) * c[:, t]
        if zoneout_h is not None:
            u = zoneout_h[:, t]
            h[:, t] = u * h_prev + (1 - u) * h[:, t]
        h_prev, c_prev = h[:, t], c[:, t]
    return lstm_cache(
        x,
        h0,
        c0,
        Wx,
        Wh,
        b,
        layer_norm,
        recurrent_mask,
        eps,
        hprev,
        gates,
        c,
        tc,
        h,
        saved,
        zoneout_h,
        zoneout_c,
    )


def _weight_gradient_into(dW, grads, D, reads):
    """With ``dW`` given (the kernels' output argument): [dWx; dWh] written into it, the two
    views of it in ``grads`` — after the checks the compiled kernels make."""
    if dW is None:
        return grads
    dWx, dWh = grads["dWx"], grads["dWh"]
    shape = (D + dWh.shape[0], dWh.shape[1])
    if not isinstance(dW, np.ndarray) or dW.dtype != dWh.dtype or not dW.flags.c_contiguous:
        raise TypeError(f"dW must be a C-contiguous {dWh.dtype} array")
    if not dW.flags.writeable:
        raise TypeError("dW must be writeable")
    if dW.shape != shape:
        raise ValueError(f"dW has shape {dW.shape}, expected {shape}")
    if any(isinstance(a, np.ndarray) and np.shares_memory(dW, a) for a in reads):
        raise ValueError("dW overlaps an array the kernel reads")
    dW[:D], dW[D:] = dWx, dWh
    grads["dWx"], grads["dWh"] = dW[:D], dW[D:]
    return grads


def _cache_arrays(cache):
    arrays: list[Any] = []
    for value in cache:
        arrays.extend(value.values() if isinstance(value, Mapping) else [value])
    return arrays


def lstm_backward(dh, dc_final, cache, need_dx=True, dW=None):
    """dh (N, T, H): upstream gradient of every output; dc_final (N, H): of the final cell
    state; dW: None, or the (D + H, 4H) array to write [dWx; dWh] into. Returns a dict with dx,
    dh0, dc0, dWx, dWh, db and, with layer norm, one gradient per
    :data:`LSTM_LAYER_NORM_PARAMS` name (``d`` + name)."""
    if not isinstance(cache, LSTMCache):
        raise TypeError(f"cache must be the LSTMCache lstm_forward returned, got {type(cache).__name__}")
    cache.check()
    x, Wx, Wh = cache.x, cache.Wx, cache.Wh
    gates, c, tc, hprev = cache.gates, cache.c, cache.tc, cache.hprev
    layer_norm, mask = cache.layer_norm, cache.recurrent_mask
    saved: Any = cache.ln_saved  # set exactly when layer_norm is (LSTMCache.check)
    N, T, D, H = cache.N, cache.T, cache.D, cache.H
    if dc_final is None:
        dc_final = np.zeros((N, H), cache.dtype)
    for name, arr, shape in (("dh", dh, (N, T, H)), ("dc_final", dc_final, (N, H))):
        if arr.shape != shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
    dtype = cache.dtype
    da_all = np.empty((N, T, 4 * H), dtype)
    dhw_all = np.empty((N, T, 4 * H), dtype) if layer_norm is not None else da_all
    grads: dict[str, Any] = {}
    if layer_norm is not None:
        for name in ("gamma_h", "beta_h", "gamma_c", "beta_c"):
            grads["d" + name] = np.zeros_like(layer_norm[name])
    zone_h, zone_c = cache.zoneout_h, cache.zoneout_c
    dh_next = np.zeros((N, H), dtype)
    dc_next = dc_final
    for t in reversed(range(T)):
        i, f, o, g = (gates[:, t, k * H : (k + 1) * H] for k in range(4))
        dht = dh[:, t] + dh_next
        carry_h = carry_c = None
        if zone_h is not None:  # h_t = u h_{t-1} + (1 - u) h~_t
            carry_h = zone_h[:, t] * dht
            dht = (1 - zone_h[:, t]) * dht
        if zone_c is not None:  # c_t = u c_{t-1} + (1 - u) c~_t
            carry_c = zone_c[:, t] * dc_next
            dc_next = (1 - zone_c[:, t]) * dc_next
        do = dht * tc[:, t]
        dcn = dht * o * (1 - tc[:, t] * tc[:, t])
        if layer_norm is not None:
            grads["dgamma_c"] += np.sum(dcn * saved["xhat_c"][:, t], axis=0)
            grads["dbeta_c"] += np.sum(dcn, axis=0)
            dcn = _ln_rows_backward(dcn, saved["xhat_c"][:, t], saved["rstd_c"][:, t], layer_norm["gamma_c"])
        dct = dcn + dc_next
        c_prev = c[:, t - 1] if t > 0 else cache.c0
        da = da_all[:, t]
        da[:, 0 * H : 1 * H] = dct * g * i * (1 - i)
        da[:, 1 * H : 2 * H] = dct * c_prev * f * (1 - f)
        da[:, 2 * H : 3 * H] = do * o * (1 - o)
        da[:, 3 * H : 4 * H] = dct * i * (1 - g * g)
        dc_next = dct * f
        if carry_c is not None:
            dc_next = dc_next + carry_c
        if layer_norm is not None:
            grads["dgamma_h"] += np.sum(da * saved["xhat_h"][:, t], axis=0)
            grads["dbeta_h"] += np.sum(da, axis=0)
            dhw_all[:, t] = _ln_rows_backward(
                da, saved["xhat_h"][:, t], saved["rstd_h"][:, t], layer_norm["gamma_h"]
            )
        dh_next = dhw_all[:, t] @ Wh.T
        if mask is not None:
            dh_next = dh_next * mask
        if carry_h is not None:
            dh_next = dh_next + carry_h
    dxw = da_all
    if layer_norm is not None:
        grads["dgamma_x"] = np.sum(da_all * saved["xhat_x"], axis=(0, 1))
        grads["dbeta_x"] = np.sum(da_all, axis=(0, 1))
        dxw = _ln_rows_backward(da_all, saved["xhat_x"], saved["rstd_x"], layer_norm["gamma_x"])
    dxw2 = dxw.reshape(N * T, 4 * H)
    if cache.tokens:  # the gather's gradient: rows added into the ids' rows, in row order
        dWx = np.zeros((D, 4 * H), dtype)
        np.add.at(dWx, x.reshape(-1), dxw2)
    else:
        dWx = x.reshape(N * T, D).T @ dxw2
    grads.update(
        dx=(dxw2 @ Wx.T).reshape(N, T, D) if need_dx and not cache.tokens else None,
        dh0=dh_next,
        dc0=dc_next,
        dWx=dWx,
        dWh=hprev.reshape(N * T, H).T @ dhw_all.reshape(N * T, 4 * H),
        db=np.sum(da_all, axis=(0, 1)),
    )
    return _weight_gradient_into(dW, grads, D, [dh, dc_final, *_cache_arrays(cache)])


lstm_step_forward, lstm_step_backward = step_functions(lstm_forward, lstm_backward)


# ----------------------------------------------------------------------------- GRU
def gru_forward(x, h0, Wx, Wh, b, bn, layer_norm=None, recurrent_mask=None, eps=1e-5, zoneout_h=None):
    """Run a GRU over x (N, T, D) — or token ids (N, T), a gather of rows of Wx — from h0 (N, H)
    with Wx (D, 3H), Wh (H, 3H), b (3H,), bn (H,) (the equations in :mod:`rnnreg._conventions`,
    gate blocks :data:`GRU_GATE_ORDER`); ``layer_norm``: None or a mapping of the
    :data:`GRU_LAYER_NORM_PARAMS` (the LN-GRU); ``recurrent_mask`` None or (N, H); ``zoneout_h``
    None or zoneout weights (N, T, H). Returns the :class:`GRUCache` that :func:`gru_backward`
    needs; its ``h`` (N, T, H) is the output."""
    H = h0.shape[1]
    if is_token_input(x):
        check_token_input(x, Wx.shape[0])
        N, T = x.shape
        xw = Wx[x]
    else:
        N, T, D = x.shape
        xw = (x.reshape(N * T, D) @ Wx).reshape(N, T, 3 * H)
    if zoneout_h is not None and zoneout_h.shape != (N, T, H):
        raise ValueError(f"zoneout_h has shape {zoneout_h.shape}, expected {(N, T, H)}")
    dtype = h0.dtype
    saved = None
    if layer_norm is not None:
        saved = {}
        xw, saved["xhat_x"], saved["rstd_x"] = _ln_rows_forward(
            xw, layer_norm["gamma_x"], layer_norm["beta_x"], eps
        )
        saved["xhat_h"] = np.empty((N, T, 3 * H), dtype)
        saved["rstd_h"] = np.empty((N, T), dtype)
    hprev = np.empty((N, T, H), dtype)
    gates = np.empty((N, T, 3 * H), dtype)
    hn = np.empty((N, T, H), dtype)
    h = np.empty((N, T, H), dtype)
    h_prev = h0
    for t in range(T):
        hprev[:, t] = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        hw = hprev[:, t] @ Wh
        if layer_norm is not None:
            hw, saved["xhat_h"][:, t], saved["rstd_h"][:, t] = _ln_rows_forward(
                hw, layer_norm["gamma_h"], layer_norm["beta_h"], eps
            )
        gates[:, t, : 2 * H] = sigmoid(hw[:, : 2 * H] + xw[:, t, : 2 * H] + b[: 2 * H])
        hn[:, t] = hw[:, 2 * H :] + bn
        r, z = gates[:, t, :H], gates[:, t, H : 2 * H]
        gates[:, t, 2 * H :] = np.tanh(xw[:, t, 2 * H :] + b[2 * H :] + r * hn[:, t])
        n = gates[:, t, 2 * H :]
        new = (1 - z) * n + z * h_prev
        if zoneout_h is not None:  # h_t = u h_{t-1} + (1 - u) h~_t
            new = zoneout_h[:, t] * h_prev + (1 - zoneout_h[:, t]) * new
        h[:, t] = new
        h_prev = h[:, t]
    return gru_cache(
        x, h0, Wx, Wh, b, bn, layer_norm, recurrent_mask, eps, zoneout_h, hprev, gates, hn, h, saved
    )


def gru_backward(dh, cache, need_dx=True, dW=None):
    """dh (N, T, H): the upstream gradient of every output; cache: the :class:`GRUCache` of
    :func:`gru_forward`; dW: None, or the (D + H, 3H) array to write [dWx; dWh] into. Returns a
    dict with dx (None for token ids or without need_dx), dh0, dWx, dWh, db, dbn and, with layer
    norm, ``d`` + each :data:`GRU_LAYER_NORM_PARAMS` name."""
    if not isinstance(cache, GRUCache):
        raise TypeError(f"cache must be the GRUCache gru_forward returned, got {type(cache).__name__}")
    cache.check()
    x, Wx, Wh, h0, h = cache.x, cache.Wx, cache.Wh, cache.h0, cache.h
    N, T, D, H = cache.N, cache.T, cache.D, cache.H
    if dh.shape != (N, T, H):
        raise ValueError(f"dh has shape {dh.shape}, expected {(N, T, H)}")
    mask, zone, layer_norm = cache.recurrent_mask, cache.zoneout_h, cache.layer_norm
    saved: Any = cache.ln_saved
    da_all = np.empty((N, T, 3 * H), h0.dtype)  # d(X + b) per gate: the input side
    dhw_all = np.empty((N, T, 3 * H), h0.dtype)  # d(h' Wh) per gate: the recurrent side
    grads: dict[str, Any] = {}
    if layer_norm is not None:
        grads["dgamma_h"] = np.zeros_like(layer_norm["gamma_h"])
        grads["dbeta_h"] = np.zeros_like(layer_norm["beta_h"])
    dbn = np.zeros_like(cache.bn)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = h[:, t - 1] if t > 0 else h0
        r, z, n = cache.gates[:, t, :H], cache.gates[:, t, H : 2 * H], cache.gates[:, t, 2 * H :]
        dht = dh[:, t] + dh_next
        carry = None
        if zone is not None:
            carry = zone[:, t] * dht
            dht = (1 - zone[:, t]) * dht
        dn = dht * (1 - z)
        dz = dht * (h_prev - n)
        dan = dn * (1 - n * n)
        dr = dan * cache.hn[:, t]
        dhn = dan * r
        dar = dr * r * (1 - r)
        daz = dz * z * (1 - z)
        da_all[:, t, :H], da_all[:, t, H : 2 * H], da_all[:, t, 2 * H :] = dar, daz, dan
        dhw = np.concatenate((dar, daz, dhn), axis=1)
        dbn += dhn.sum(axis=0)
        if layer_norm is not None:
            grads["dgamma_h"] += np.sum(dhw * saved["xhat_h"][:, t], axis=0)
            grads["dbeta_h"] += np.sum(dhw, axis=0)
            dhw = _ln_rows_backward(dhw, saved["xhat_h"][:, t], saved["rstd_h"][:, t], layer_norm["gamma_h"])
        dhw_all[:, t] = dhw
        dhprev = dhw @ Wh.T
        if mask is not None:
            dhprev = dhprev * mask
        dh_next = dht * z + dhprev
        if carry is not None:
            dh_next = dh_next + carry
    dxw = da_all
    if layer_norm is not None:
        grads["dgamma_x"] = np.sum(da_all * saved["xhat_x"], axis=(0, 1))
        grads["dbeta_x"] = np.sum(da_all, axis=(0, 1))
        dxw = _ln_rows_backward(da_all, saved["xhat_x"], saved["rstd_x"], layer_norm["gamma_x"])
    flat = dxw.reshape(N * T, 3 * H)
    if cache.tokens:
        dWx = np.zeros_like(Wx)
        np.add.at(dWx, x.reshape(-1), flat)
        dx = None
    else:
        dWx = x.reshape(N * T, D).T @ flat
        dx = (flat @ Wx.T).reshape(N, T, D) if need_dx else None
    grads.update(
        dx=dx,
        dh0=dh_next,
        dWx=dWx,
        dWh=cache.hprev.reshape(N * T, H).T @ dhw_all.reshape(N * T, 3 * H),
        db=np.sum(da_all, axis=(0, 1)),
        dbn=dbn,
    )
    _weight_gradient_into(dW, grads, D, [dh, *_cache_arrays(cache)])
    return {
        name: grads[name]
        for name in (
            "dx",
            "dh0",
            "dWx",
            "dWh",
            "db",
            "dbn",
            *("d" + k for k in GRU_LAYER_NORM_PARAMS if layer_norm is not None),
        )
    }


def matmul(a, b, trans_a=False, trans_b=False, out=None):
    """op(a) @ op(b), op = transpose when asked; into ``out`` when given."""
    product = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if out is None:
        return product
    if not isinstance(out, np.ndarray) or out.dtype != product.dtype or not out.flags.c_contiguous:
        raise TypeError(f"out must be a C-contiguous {product.dtype} array")
    if not out.flags.writeable:
        raise TypeError("out must be writeable")
    if out.shape != product.shape:
        raise ValueError(f"out has shape {out.shape}, expected {product.shape}")
    if np.shares_memory(out, a) or np.shares_memory(out, b):
        raise ValueError("out overlaps an array the kernel reads")
    out[...] = product
    return out


def softmax_cross_entropy(logits, targets):
    """logits (M, C), targets (M,) int64 in [0, C) -> (mean cross-entropy as a float,
    dlogits (M, C) = (softmax - onehot) / M)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_z
    rows = np.arange(logits.shape[0])
    loss = -float(np.mean(log_probs[rows, targets]))
    dlogits = np.exp(log_probs)
    dlogits[rows, targets] -= 1
    dlogits /= logits.shape[0]
    return loss, dlogits


def all_finite(arr):
    """Whether every entry is finite."""
    return bool(np.isfinite(arr).all())


def sum_of_squares(arr):
    """Σ x² summed in float64."""
    return float(np.add.reduce(np.square(arr.ravel(), dtype=np.float64)))


def _checked_ranges(ranges, name, n, sorted_):
    if not isinstance(ranges, np.ndarray) or ranges.dtype != np.int64:
        raise TypeError(f"{name} must be an int64 array (k, 2)")
    if ranges.ndim != 2 or ranges.shape[1] != 2:
        raise ValueError(f"{name} must have shape (k, 2), got {ranges.shape}")
    previous = 0
    for k, (start, stop) in enumerate(ranges.tolist()):
        if not 0 <= start <= stop <= n:
            raise ValueError(f"{name}[{k}] = [{start}, {stop}) is not a range within [0, {n}]")
        if sorted_ and start < previous:
            raise ValueError(f"{name} must be sorted and disjoint")
        previous = stop
    return ranges.tolist()


def sums_of_squares(arr, ranges):
    """Σ x² over each [start, stop) range of the flattened array, each as sum_of_squares."""
    flat = arr.reshape(-1)
    return np.array(
        [sum_of_squares(flat[a:b]) for a, b in _checked_ranges(ranges, "ranges", flat.size, False)],
        np.float64,
    )


def new_buffer(n, dtype):
    """A new uninitialized 1-D array of n float32 or float64 elements."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    kind = np.dtype(dtype)
    if kind != np.float32 and kind != np.float64:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return np.empty(int(n), kind)


def first_nonfinite(arrays):
    """The index of the first array holding NaN or inf (None skipped), or -1."""
    for i, arr in enumerate(arrays):
        if arr is not None and not all_finite(arr):
            return i
    return -1


def adam_update(p, g, m, v, step_size, beta1, beta2, eps, decay, l2, decayed=None):
    """One Adam step in place (see the compiled twin for the formula); with ``decayed`` (sorted
    [start, stop) ranges), decay and l2 act within the ranges only."""
    for name, arr in (("g", g), ("m", m), ("v", v)):
        if arr.shape != p.shape:  # NumPy would broadcast a smaller one silently
            raise ValueError(f"{name} has shape {arr.shape}, expected {p.shape} (the shape of p)")
    if decayed is not None:
        ranges = _checked_ranges(decayed, "decayed", p.size, True)
        if not all(a.flags.c_contiguous for a in (p, m, v)):
            raise TypeError("p, m and v must be C-contiguous (updated in place through flat views)")
        flat = [a.reshape(-1) for a in (p, g, m, v)]
        at = 0
        for start, stop in ranges + [(p.size, p.size)]:
            for lo, hi, decay_here, l2_here in ((at, start, 1.0, 0.0), (start, stop, decay, l2)):
                if hi > lo:
                    pp, gg, mm, vv = (a[lo:hi] for a in flat)
                    adam_update(pp, gg, mm, vv, step_size, beta1, beta2, eps, decay_here, l2_here)
            at = max(at, stop)
        return
    dtype = p.dtype.type
    grad = g + dtype(l2) * p
    m *= dtype(beta1)
    m += dtype(1 - beta1) * grad
    v *= dtype(beta2)
    v += dtype(1 - beta2) * (grad * grad)
    p *= dtype(decay)
    p -= (dtype(step_size) * m) / (np.sqrt(v) + dtype(eps))
