"""The GRU's NumPy reference: the oracle its compiled kernel will be proven against.

Reference first (the project's rule): the GRU's equations and cache are declared in
``rnnreg._conventions`` (``GRU_GATE_ORDER``, ``GRUCache``), and these two functions compute them
in plain NumPy, proven equal to PyTorch's ``nn.GRU`` and to finite differences
(``tests/test_gru_reference.py``). They join ``rnnreg._reference`` — where every function has a
compiled twin of the same name — when the compiled GRU kernels land.
"""

import numpy as np

from ._conventions import GRUCache, check_token_input, is_token_input

__all__ = ["gru_forward", "gru_backward"]


def sigmoid(x):
    """Logistic function that never overflows (``rnnreg._reference``'s, which only the backend
    may import)."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z)).astype(x.dtype, copy=False)


def gru_forward(x, h0, Wx, Wh, b, bn, recurrent_mask=None, zoneout_h=None):
    """Run a GRU over x (N, T, D) — or token ids (N, T), a gather of rows of Wx — from h0 (N, H)
    (the equations in ``rnnreg._conventions``, gate blocks :data:`GRU_GATE_ORDER`). Returns the
    :class:`GRUCache` that :func:`gru_backward` needs; its ``h`` (N, T, H) is the output."""
    H = h0.shape[1]
    if is_token_input(x):
        check_token_input(x, Wx.shape[0])
        N, T = x.shape
        xw = Wx[x] + b
    else:
        N, T, D = x.shape
        xw = (x.reshape(N * T, D) @ Wx).reshape(N, T, 3 * H) + b
    dtype = h0.dtype
    hprev = np.empty((N, T, H), dtype)
    gates = np.empty((N, T, 3 * H), dtype)
    hn = np.empty((N, T, H), dtype)
    h = np.empty((N, T, H), dtype)
    h_prev = h0
    for t in range(T):
        hprev[:, t] = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        hw = hprev[:, t] @ Wh
        gates[:, t, : 2 * H] = sigmoid(xw[:, t, : 2 * H] + hw[:, : 2 * H])
        hn[:, t] = hw[:, 2 * H :] + bn
        r, z = gates[:, t, :H], gates[:, t, H : 2 * H]
        gates[:, t, 2 * H :] = np.tanh(xw[:, t, 2 * H :] + r * hn[:, t])
        n = gates[:, t, 2 * H :]
        new = (1 - z) * n + z * h_prev
        if zoneout_h is not None:  # h_t = u h_{t-1} + (1 - u) h~_t
            new = zoneout_h[:, t] * h_prev + (1 - zoneout_h[:, t]) * new
        h[:, t] = new
        h_prev = new
    N, T = h.shape[:2]
    D = Wx.shape[0]
    return GRUCache(x, h0, Wx, Wh, b, bn, recurrent_mask, zoneout_h, hprev, gates, hn, h, N, T, D, H)


def gru_backward(dh, cache, need_dx=True):
    """dh (N, T, H): the upstream gradient of every output. Returns a dict with dx (None for
    token ids or without need_dx), dh0, dWx, dWh, db, dbn."""
    if not isinstance(cache, GRUCache):
        raise TypeError(f"cache must be the GRUCache gru_forward returned, got {type(cache).__name__}")
    cache.check()
    x, Wx, Wh, h0, h = cache.x, cache.Wx, cache.Wh, cache.h0, cache.h
    N, T, D, H = cache.N, cache.T, cache.D, cache.H
    mask, zone = cache.recurrent_mask, cache.zoneout_h
    dx_gates = np.empty((N, T, 3 * H), h0.dtype)  # d(x Wx + b) per gate
    dWh = np.zeros_like(Wh)
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
        dx_gates[:, t, :H], dx_gates[:, t, H : 2 * H], dx_gates[:, t, 2 * H :] = dar, daz, dan
        dhw = np.concatenate((dar, daz, dhn), axis=1)  # d(h' Wh) per gate
        dWh += cache.hprev[:, t].T @ dhw
        dbn += dhn.sum(axis=0)
        dhprev = dhw @ Wh.T
        if mask is not None:
            dhprev = dhprev * mask
        dh_next = dht * z + dhprev
        if carry is not None:
            dh_next = dh_next + carry
    flat = dx_gates.reshape(N * T, 3 * H)
    if cache.tokens:
        dWx = np.zeros_like(Wx)
        np.add.at(dWx, x.reshape(-1), flat)
        dx = None
    else:
        dWx = x.reshape(N * T, D).T @ flat
        dx = (flat @ Wx.T).reshape(N, T, D) if need_dx else None
    return {"dx": dx, "dh0": dh_next, "dWx": dWx, "dWh": dWh, "db": flat.sum(axis=0), "dbn": dbn}
