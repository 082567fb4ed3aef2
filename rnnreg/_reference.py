"""Pure-NumPy twins of every compiled kernel in ``rnnreg._kernels``.

This module is the test oracle and the benchmark baseline. Each function has the same
name, arguments and return values as its compiled twin, and trusts its inputs exactly as
much: the public wrappers in :mod:`rnnreg.functional` validate first, then call one of
the two backends. Arrays are C-contiguous, of one floating dtype (float32 or float64).

LSTM conventions (shared with the compiled kernels)
---------------------------------------------------
Weights follow CS231n: ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)``; the four gate blocks of
the 4H axis are, in order, :data:`GATE_ORDER` = input ``i``, forget ``f``, output ``o`` and
candidate ``g``::

    a_t = X_t + H_t + b             X_t = x_t Wx,  H_t = (h_{t-1} * m) Wh
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);   g = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(C_t)             C_t = c_t

``m`` is an optional recurrent-dropout mask of shape (N, H), the same at every step
(Gal & Ghahramani, 2016). With layer normalization (Ba et al., 2016) the input and
recurrent projections and the cell state are each normalized over their last axis::

    X_t = LN(x_t Wx; gamma_x, beta_x),  H_t = LN((h_{t-1} * m) Wh; gamma_h, beta_h),
    C_t = LN(c_t; gamma_c, beta_c)

while the recurrence itself carries the un-normalized ``c_t``.
"""
import numpy as np

GATE_ORDER = ("i", "f", "o", "g")
LSTM_LAYER_NORM_PARAMS = ("gamma_x", "beta_x", "gamma_h", "beta_h", "gamma_c", "beta_c")


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
    return rstd[..., None] * (g - g.mean(axis=-1, keepdims=True)
                              - xhat * np.mean(g * xhat, axis=-1, keepdims=True))


# ----------------------------------------------------------------------------- layer norm
def layer_norm_forward(x, gamma, beta, eps):
    """x (M, F), gamma (F,), beta (F,) -> (out (M, F), xhat (M, F), rstd (M,))."""
    return _ln_rows_forward(x, gamma, beta, eps)


def layer_norm_backward(dout, xhat, rstd, gamma):
    """dout (M, F) -> (dx (M, F), dgamma (F,), dbeta (F,))."""
    dx = _ln_rows_backward(dout, xhat, rstd, gamma)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


# ----------------------------------------------------------------------------- dropout
DROPOUT_RESOLUTION = 1 << 16


def dropout_threshold(keep_prob):
    """keep_prob as a count of 16-bit values: an element is kept when its 16-bit uniform is
    below it. Rounded to the nearest 1/65536, and at least 1 so that something is kept."""
    return max(1, min(DROPOUT_RESOLUTION, int(round(keep_prob * DROPOUT_RESOLUTION))))


def dropout_forward(x, keep_prob, rng):
    """x (M,) -> (out, mask). Each 64-bit draw of ``rng`` serves four elements: element k is
    kept when bits 16*(k % 4) .. 16*(k % 4) + 15 of draw k // 4 are below
    ``dropout_threshold(keep_prob)``; kept elements scale by 1/keep_prob."""
    n = x.shape[0]
    draws = rng.integers(0, 1 << 64, size=(n + 3) // 4, dtype=np.uint64)  # = next_uint64 each
    shifts = np.array([0, 16, 32, 48], dtype=np.uint64)
    uniforms = ((draws[:, None] >> shifts) & np.uint64(0xFFFF)).reshape(-1)[:n]
    scale = x.dtype.type(1.0 / keep_prob)
    mask = np.where(uniforms < dropout_threshold(keep_prob), scale, x.dtype.type(0))
    mask = mask.astype(x.dtype, copy=False)
    return x * mask, mask


def dropout_backward(dout, mask):
    return dout * mask


# ----------------------------------------------------------------------------- LSTM
def lstm_forward(x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, eps):
    """Run an LSTM over x (N, T, D) from (h0, c0) (N, H). Returns the cache (a dict) that
    :func:`lstm_backward` needs; ``cache["h"]`` (N, T, H) is the output and
    ``cache["c"][:, -1]`` the final cell state. ``layer_norm`` is None or a dict with the
    :data:`LSTM_LAYER_NORM_PARAMS`; ``recurrent_mask`` is None or (N, H)."""
    N, T, D = x.shape
    H = h0.shape[1]
    dtype = x.dtype
    xw = (x.reshape(N * T, D) @ Wx).reshape(N, T, 4 * H)
    cache = dict(x=x, h0=h0, c0=c0, Wx=Wx, Wh=Wh, b=b, layer_norm=layer_norm,
                 recurrent_mask=recurrent_mask, eps=eps)
    if layer_norm is not None:
        xw, cache["xhat_x"], cache["rstd_x"] = _ln_rows_forward(
            xw, layer_norm["gamma_x"], layer_norm["beta_x"], eps)
        cache["xhat_h"] = np.empty((N, T, 4 * H), dtype)
        cache["rstd_h"] = np.empty((N, T), dtype)
        cache["xhat_c"] = np.empty((N, T, H), dtype)
        cache["rstd_c"] = np.empty((N, T), dtype)
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
            hw, cache["xhat_h"][:, t], cache["rstd_h"][:, t] = _ln_rows_forward(
                hw, layer_norm["gamma_h"], layer_norm["beta_h"], eps)
        a = xw[:, t] + hw + b
        gates[:, t, :3 * H] = sigmoid(a[:, :3 * H])
        gates[:, t, 3 * H:] = np.tanh(a[:, 3 * H:])
        i, f, o, g = (gates[:, t, k * H:(k + 1) * H] for k in range(4))
        c[:, t] = f * c_prev + i * g
        if layer_norm is not None:
            c_norm, cache["xhat_c"][:, t], cache["rstd_c"][:, t] = _ln_rows_forward(
                c[:, t], layer_norm["gamma_c"], layer_norm["beta_c"], eps)
            tc[:, t] = np.tanh(c_norm)
        else:
            tc[:, t] = np.tanh(c[:, t])
        h[:, t] = o * tc[:, t]
        h_prev, c_prev = h[:, t], c[:, t]
    cache.update(hprev=hprev, gates=gates, c=c, tc=tc, h=h)
    return cache


def lstm_backward(dh, dc_final, cache):
    """dh (N, T, H): upstream gradient of every output; dc_final (N, H): of the final cell
    state. Returns a dict with dx, dh0, dc0, dWx, dWh, db and, with layer norm, one
    gradient per :data:`LSTM_LAYER_NORM_PARAMS` name (``d`` + name)."""
    x, Wx, Wh = cache["x"], cache["Wx"], cache["Wh"]
    gates, c, tc, hprev = cache["gates"], cache["c"], cache["tc"], cache["hprev"]
    layer_norm, mask = cache["layer_norm"], cache["recurrent_mask"]
    N, T, D = x.shape
    H = Wh.shape[0]
    dtype = x.dtype
    da_all = np.empty((N, T, 4 * H), dtype)
    dhw_all = np.empty((N, T, 4 * H), dtype) if layer_norm is not None else da_all
    grads = {}
    if layer_norm is not None:
        for name in ("gamma_h", "beta_h", "gamma_c", "beta_c"):
            grads["d" + name] = np.zeros_like(layer_norm[name])
    dh_next = np.zeros((N, H), dtype)
    dc_next = dc_final
    for t in reversed(range(T)):
        i, f, o, g = (gates[:, t, k * H:(k + 1) * H] for k in range(4))
        dht = dh[:, t] + dh_next
        do = dht * tc[:, t]
        dcn = dht * o * (1 - tc[:, t] * tc[:, t])
        if layer_norm is not None:
            grads["dgamma_c"] += np.sum(dcn * cache["xhat_c"][:, t], axis=0)
            grads["dbeta_c"] += np.sum(dcn, axis=0)
            dcn = _ln_rows_backward(dcn, cache["xhat_c"][:, t], cache["rstd_c"][:, t],
                                    layer_norm["gamma_c"])
        dct = dcn + dc_next
        c_prev = c[:, t - 1] if t > 0 else cache["c0"]
        da = da_all[:, t]
        da[:, 0 * H:1 * H] = dct * g * i * (1 - i)
        da[:, 1 * H:2 * H] = dct * c_prev * f * (1 - f)
        da[:, 2 * H:3 * H] = do * o * (1 - o)
        da[:, 3 * H:4 * H] = dct * i * (1 - g * g)
        dc_next = dct * f
        if layer_norm is not None:
            grads["dgamma_h"] += np.sum(da * cache["xhat_h"][:, t], axis=0)
            grads["dbeta_h"] += np.sum(da, axis=0)
            dhw_all[:, t] = _ln_rows_backward(da, cache["xhat_h"][:, t], cache["rstd_h"][:, t],
                                              layer_norm["gamma_h"])
        dh_next = dhw_all[:, t] @ Wh.T
        if mask is not None:
            dh_next = dh_next * mask
    dxw = da_all
    if layer_norm is not None:
        grads["dgamma_x"] = np.sum(da_all * cache["xhat_x"], axis=(0, 1))
        grads["dbeta_x"] = np.sum(da_all, axis=(0, 1))
        dxw = _ln_rows_backward(da_all, cache["xhat_x"], cache["rstd_x"], layer_norm["gamma_x"])
    dxw2 = dxw.reshape(N * T, 4 * H)
    grads.update(
        dx=(dxw2 @ Wx.T).reshape(N, T, D),
        dh0=dh_next,
        dc0=dc_next,
        dWx=x.reshape(N * T, D).T @ dxw2,
        dWh=hprev.reshape(N * T, H).T @ dhw_all.reshape(N * T, 4 * H),
        db=np.sum(da_all, axis=(0, 1)),
    )
    return grads


def _step_functions(sequence_forward, sequence_backward):
    """lstm_step_forward and lstm_step_backward of a backend: its sequence functions with T = 1
    (the compiled module builds its pair from its own kernels with this too)."""
    def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
        """One time step: x (N, D) -> (next_h, next_c, cache); the sequence function, T = 1."""
        cache = sequence_forward(x[:, None, :], prev_h, prev_c, Wx, Wh, b, None, None, 1e-5)
        return cache["h"][:, 0], cache["c"][:, 0], cache

    def lstm_step_backward(dnext_h, dnext_c, cache):
        """-> (dx, dprev_h, dprev_c, dWx, dWh, db) for one step."""
        grads = sequence_backward(dnext_h[:, None, :], dnext_c, cache)
        return (grads["dx"][:, 0], grads["dh0"], grads["dc0"], grads["dWx"], grads["dWh"],
                grads["db"])
    return lstm_step_forward, lstm_step_backward


lstm_step_forward, lstm_step_backward = _step_functions(lstm_forward, lstm_backward)


def matmul(a, b, trans_a=False, trans_b=False):
    """op(a) @ op(b), op = transpose when asked."""
    return (a.T if trans_a else a) @ (b.T if trans_b else b)


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


def adam_update(p, g, m, v, step_size, beta1, beta2, eps, decay, l2):
    """One Adam step in place (see the compiled twin for the formula)."""
    dtype = p.dtype.type
    grad = g + dtype(l2) * p
    m *= dtype(beta1)
    m += dtype(1 - beta1) * grad
    v *= dtype(beta2)
    v += dtype(1 - beta2) * (grad * grad)
    p *= dtype(decay)
    p -= (dtype(step_size) * m) / (np.sqrt(v) + dtype(eps))
