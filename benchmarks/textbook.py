"""What a user would write without rnnreg: the textbook NumPy versions the benchmark compares the
public functions against, and the PyTorch versions (its fused modules where they exist, the
TorchScript cell loops its users must write where they do not).

NumPy, as taught (CS231n's LSTM, with the input product of all time steps hoisted out of the
loop; layer norm from ``x.mean``/``x.var``; dropout from ``rng.random(shape) < keep``). Gate
blocks in rnnreg's order (i, f, o, g), so the weights are the same arrays.
"""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    xw = (x.reshape(N * T, -1) @ Wx + b).reshape(N, T, 4 * H)  # one input product
    h, c = h0, np.zeros_like(h0)
    hs = np.empty((N, T, H), x.dtype)
    steps = []
    for t in range(T):
        a = xw[:, t] + h @ Wh
        i, f, o, g = (
            sigmoid(a[:, :H]),
            sigmoid(a[:, H : 2 * H]),
            sigmoid(a[:, 2 * H : 3 * H]),
            np.tanh(a[:, 3 * H :]),
        )
        c_prev, h_prev = c, h
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        hs[:, t] = h
        steps.append((i, f, o, g, c_prev, h_prev, tc))
    return hs, (x, Wx, Wh, steps)


def lstm_backward(dh, cache):
    x, Wx, Wh, steps = cache
    N, T, D = x.shape
    H = Wh.shape[0]
    dxw = np.empty((N, T, 4 * H), x.dtype)
    dWh = np.zeros_like(Wh)
    dh_next = np.zeros((N, H), x.dtype)
    dc_next = np.zeros((N, H), x.dtype)
    for t in reversed(range(T)):
        i, f, o, g, c_prev, h_prev, tc = steps[t]
        dh_t = dh[:, t] + dh_next
        do = dh_t * tc
        dc = dc_next + dh_t * o * (1 - tc * tc)
        di, df, dg = dc * g, dc * c_prev, dc * i
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g * g)], axis=1)
        dxw[:, t] = da
        dWh += h_prev.T @ da
        dh_next = da @ Wh.T
        dc_next = dc * f
    flat = dxw.reshape(N * T, 4 * H)
    dx = (flat @ Wx.T).reshape(N, T, D)
    dWx = x.reshape(N * T, D).T @ flat
    return dx, dh_next, dWx, dWh, flat.sum(0)


def layer_norm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    xhat = (x - mu) / np.sqrt(var + eps)
    return gamma * xhat + beta, (xhat, gamma, var, eps)


def layer_norm_backward(dout, cache):
    xhat, gamma, var, eps = cache
    F = xhat.shape[1]
    dxhat = dout * gamma
    dx = (dxhat * F - dxhat.sum(axis=1, keepdims=True) - xhat * (dxhat * xhat).sum(axis=1, keepdims=True)) / (
        F * np.sqrt(var + eps)
    )
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def dropout_forward(x, keep_prob, rng):
    mask = (rng.random(x.shape) < keep_prob).astype(x.dtype) / x.dtype.type(keep_prob)
    return x * mask, mask


def dropout_forward_into(x, keep_prob, rng, uniform, out, mask):
    """The same with every array preallocated (as a careful user reusing buffers would)."""
    rng.random(out=uniform)
    np.less(uniform, keep_prob, out=mask, casting="unsafe")
    mask /= x.dtype.type(keep_prob)
    np.multiply(x, mask, out=out)
    return out, mask


def zoneout_mask(n, zoneout, rng, dtype):
    """Zoneout's training weights u ~ Bernoulli(zoneout), 0 or 1."""
    return (rng.random(n) < zoneout).astype(dtype)


# ----------------------------------------------------------------------------- PyTorch
def torch_cells():
    """TorchScript LSTM loops for what nn.LSTM cannot do — layer-normalized cells and dropout on
    h(t-1) — written as a careful PyTorch user would: the input projection of every step in one
    product before the loop, the recurrence scripted. Returns (ln_lstm, recurrent_dropout_lstm),
    both ``f(xw (T, N, 4H), h, c, Wh_t (H, 4H), ...) -> hs (T, N, H)``."""
    import torch

    @torch.jit.script
    def ln_lstm(
        xw: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        Wh: torch.Tensor,
        gx: torch.Tensor,
        bx: torch.Tensor,
        gh: torch.Tensor,
        bh: torch.Tensor,
        gc: torch.Tensor,
        bc: torch.Tensor,
        b: torch.Tensor,
    ) -> torch.Tensor:
        outputs = []
        H = h.shape[1]
        for t in range(xw.shape[0]):
            a = torch.layer_norm(xw[t], [4 * H], gx, bx) + torch.layer_norm(h @ Wh, [4 * H], gh, bh) + b
            i, f, o, g = a.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(torch.layer_norm(c, [H], gc, bc))
            outputs.append(h)
        return torch.stack(outputs)

    @torch.jit.script
    def masked_lstm(
        xw: torch.Tensor, h: torch.Tensor, c: torch.Tensor, Wh: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        outputs = []
        for t in range(xw.shape[0]):
            a = xw[t] + (h * mask) @ Wh
            i, f, o, g = a.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs)

    return ln_lstm, masked_lstm


def torch_zoneout_cell():
    """A TorchScript zoneout LSTM loop (Krueger et al. 2016) as a PyTorch user writes it — no
    fused module has zoneout: the input projection hoisted, the recurrence scripted, the
    Bernoulli(z) masks drawn per unit and step inside the loop in training (the expectation in
    evaluation). ``f(xw (T, N, 4H), h, c, Wh (H, 4H), zh, zc, training) -> (hs (T, N, H), h, c)``,
    gate blocks (i, f, o, g)."""
    import torch

    @torch.jit.script
    def zoneout_lstm(
        xw: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        Wh: torch.Tensor,
        zh: float,
        zc: float,
        training: bool,
    ):
        outputs = []
        for t in range(xw.shape[0]):
            a = xw[t] + h @ Wh
            i, f, o, g = a.chunk(4, 1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            if training:
                dc = (torch.rand_like(c) < zc).to(c.dtype)
                dh = (torch.rand_like(h) < zh).to(h.dtype)
            else:
                dc = torch.full_like(c, zc)
                dh = torch.full_like(h, zh)
            c = dc * c + (1 - dc) * c_new
            h = dh * h + (1 - dh) * h_new
            outputs.append(h)
        return torch.stack(outputs), h, c

    return zoneout_lstm
