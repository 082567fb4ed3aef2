"""Zoneout (Krueger et al. 2016) in the compiled LSTM loop and its NumPy twin, proven against an
independent implementation of the paper's formula (NumPy here, and PyTorch autograd when torch is
installed) given the same masks, by finite differences, and at its limits (z = 0, evaluation)."""

import numpy as np
import pytest

import rnnreg
from rnnreg import _reference
from rnnreg._backend import _kernels
from rnnreg.gradcheck import numerical_gradient, relative_error

pytestmark = pytest.mark.kernels

BACKENDS = ["compiled", "numpy"]
LN_NAMES = rnnreg.LSTM_LAYER_NORM_PARAMS


def _problem(seed, N=3, T=6, D=4, H=5, dtype=np.float64, ln=False, mask=False, z=(0.3, 0.4)):
    rng = np.random.default_rng(seed)
    arrays = dict(
        x=rng.standard_normal((N, T, D)),
        h0=rng.standard_normal((N, H)),
        c0=rng.standard_normal((N, H)),
        Wx=0.5 * rng.standard_normal((D, 4 * H)),
        Wh=0.5 * rng.standard_normal((H, 4 * H)),
        b=rng.standard_normal(4 * H),
    )
    arrays = {k: a.astype(dtype) for k, a in arrays.items()}
    layer_norm = None
    if ln:
        layer_norm = {
            k: (
                rng.standard_normal(H if k.endswith("_c") else 4 * H) * 0.3
                + (1.0 if k.startswith("gamma") else 0.0)
            ).astype(dtype)
            for k in LN_NAMES
        }
    recurrent_mask = rnnreg.dropout_mask((N, H), 0.7, rng=seed, dtype=dtype) if mask else None
    zoneout_h = rnnreg.zoneout_mask((N, T, H), z[0], rng=seed + 1, dtype=dtype) if z[0] else None
    zoneout_c = rnnreg.zoneout_mask((N, T, H), z[1], rng=seed + 2, dtype=dtype) if z[1] else None
    return arrays, layer_norm, recurrent_mask, zoneout_h, zoneout_c


# ----------------------------------------------------------------------------- the definition
def _layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def zoneout_lstm_by_the_paper(x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, u_h, u_c):
    """Krueger et al. 2016, section 3 (LSTM), written out step by step:
    c_t = d^c ⊙ c_{t-1} + (1 - d^c) ⊙ (f ⊙ c_{t-1} + i ⊙ g)
    h_t = d^h ⊙ h_{t-1} + (1 - d^h) ⊙ (o ⊙ tanh(f ⊙ c_{t-1} + i ⊙ g)).
    Returns h (N, T, H) and c (N, T, H)."""
    N, T, _ = x.shape
    H = h0.shape[1]
    h_prev, c_prev = h0, c0
    hs, cs = [], []
    for t in range(T):
        xw = x[:, t] @ Wx
        hw = (h_prev if recurrent_mask is None else h_prev * recurrent_mask) @ Wh
        if layer_norm is not None:
            xw = _layer_norm(xw, layer_norm["gamma_x"], layer_norm["beta_x"])
            hw = _layer_norm(hw, layer_norm["gamma_h"], layer_norm["beta_h"])
        a = xw + hw + b
        i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H : 2 * H]), _sigmoid(a[:, 2 * H : 3 * H])
        g = np.tanh(a[:, 3 * H :])
        c_new = f * c_prev + i * g
        cell = (
            c_new if layer_norm is None else _layer_norm(c_new, layer_norm["gamma_c"], layer_norm["beta_c"])
        )
        h_new = o * np.tanh(cell)
        dh = 0.0 if u_h is None else u_h[:, t]
        dc = 0.0 if u_c is None else u_c[:, t]
        c_t = dc * c_prev + (1 - dc) * c_new
        h_t = dh * h_prev + (1 - dh) * h_new
        hs.append(h_t)
        cs.append(c_t)
        h_prev, c_prev = h_t, c_t
    return np.stack(hs, axis=1), np.stack(cs, axis=1)


@pytest.mark.parametrize("ln", [False, True], ids=["plain", "layernorm"])
@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "recurrent-dropout"])
@pytest.mark.parametrize("z", [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4)], ids=["h", "c", "both"])
def test_forward_is_the_papers_formula(backend, ln, mask, z):
    arrays, layer_norm, recurrent_mask, u_h, u_c = _problem(1, ln=ln, mask=mask, z=z)
    h, cache = rnnreg.lstm_forward(
        **arrays, layer_norm=layer_norm, recurrent_mask=recurrent_mask, zoneout_h=u_h, zoneout_c=u_c
    )
    h_ref, c_ref = zoneout_lstm_by_the_paper(
        **arrays, layer_norm=layer_norm, recurrent_mask=recurrent_mask, u_h=u_h, u_c=u_c
    )
    assert np.abs(h - h_ref).max() < 1e-10
    assert np.abs(cache.c - c_ref).max() < 1e-10
    # The masks really zone something out: some units kept their previous value exactly.
    if u_h is not None:
        kept = u_h[:, 1:] == 1
        assert kept.any() and np.array_equal(h[:, 1:][kept], h[:, :-1][kept])


@pytest.mark.parametrize("ln", [False, True], ids=["plain", "layernorm"])
@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "recurrent-dropout"])
def test_gradients_by_finite_differences(backend, ln, mask):
    arrays, layer_norm, recurrent_mask, u_h, u_c = _problem(2, N=2, T=4, D=3, H=4, ln=ln, mask=mask)
    rng = np.random.default_rng(7)
    dh, dc = rng.standard_normal((2, 4, 4)), rng.standard_normal((2, 4))

    def loss():
        h, cache = rnnreg.lstm_forward(
            **arrays, layer_norm=layer_norm, recurrent_mask=recurrent_mask, zoneout_h=u_h, zoneout_c=u_c
        )
        return float(np.sum(h * dh) + np.sum(cache.c_final * dc))

    _, cache = rnnreg.lstm_forward(
        **arrays, layer_norm=layer_norm, recurrent_mask=recurrent_mask, zoneout_h=u_h, zoneout_c=u_c
    )
    grads = rnnreg.lstm_backward(dh, cache, dc_final=dc)
    analytic = dict(x=grads.dx, h0=grads.dh0, c0=grads.dc0, Wx=grads.dWx, Wh=grads.dWh, b=grads.db)
    for name, value in arrays.items():
        assert relative_error(analytic[name], numerical_gradient(loss, value)) < 1e-7, name
    for name, value in (layer_norm or {}).items():
        assert relative_error(grads.layer_norm[name], numerical_gradient(loss, value)) < 1e-7


torch = None
try:
    import torch
except ImportError:
    pass


@pytest.mark.extras
@pytest.mark.skipif(torch is None, reason="PyTorch is an optional extra")
@pytest.mark.parametrize("ln", [False, True], ids=["plain", "layernorm"])
def test_forward_and_gradients_equal_pytorch_autograd(backend, ln):
    """The same formula in PyTorch, differentiated by autograd, given the same masks."""
    arrays, layer_norm, recurrent_mask, u_h, u_c = _problem(3, ln=ln, mask=True)
    rng = np.random.default_rng(8)
    dh, dc = rng.standard_normal(arrays["x"].shape[:2] + (5,)), rng.standard_normal((3, 5))
    T = {k: torch.tensor(a, requires_grad=True) for k, a in arrays.items()}
    L = {k: torch.tensor(a, requires_grad=True) for k, a in (layer_norm or {}).items()}
    m, zh, zc = (torch.tensor(a) for a in (recurrent_mask, u_h, u_c))
    H = 5

    def ln_t(v, gamma, beta):
        return torch.nn.functional.layer_norm(v, (v.shape[-1],), gamma, beta, eps=1e-5)

    h_prev, c_prev, hs = T["h0"], T["c0"], []
    for t in range(arrays["x"].shape[1]):
        xw, hw = T["x"][:, t] @ T["Wx"], (h_prev * m) @ T["Wh"]
        if ln:
            xw, hw = ln_t(xw, L["gamma_x"], L["beta_x"]), ln_t(hw, L["gamma_h"], L["beta_h"])
        a = xw + hw + T["b"]
        i, f, o = (torch.sigmoid(a[:, k * H : (k + 1) * H]) for k in range(3))
        g = torch.tanh(a[:, 3 * H :])
        c_new = f * c_prev + i * g
        h_new = o * torch.tanh(ln_t(c_new, L["gamma_c"], L["beta_c"]) if ln else c_new)
        c_prev = zc[:, t] * c_prev + (1 - zc[:, t]) * c_new
        h_prev = zh[:, t] * h_prev + (1 - zh[:, t]) * h_new
        hs.append(h_prev)
    h_torch = torch.stack(hs, dim=1)
    (h_torch * torch.tensor(dh)).sum().add((c_prev * torch.tensor(dc)).sum()).backward()

    h, cache = rnnreg.lstm_forward(
        **arrays, layer_norm=layer_norm, recurrent_mask=recurrent_mask, zoneout_h=u_h, zoneout_c=u_c
    )
    grads = rnnreg.lstm_backward(dh, cache, dc_final=dc)
    assert np.abs(h - h_torch.detach().numpy()).max() < 1e-10
    ours = dict(x=grads.dx, h0=grads.dh0, c0=grads.dc0, Wx=grads.dWx, Wh=grads.dWh, b=grads.db)
    for name in arrays:
        assert np.abs(ours[name] - T[name].grad.numpy()).max() < 1e-10, name
    for name in L:
        assert np.abs(grads.layer_norm[name] - L[name].grad.numpy()).max() < 1e-10, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ln", [False, True], ids=["plain", "layernorm"])
@pytest.mark.parametrize("N,H", [(1, 9), (3, 9), (9, 9), (2, 128)], ids=lambda v: str(v))
def test_compiled_kernel_equals_its_twin(dtype, ln, N, H):
    """Random shapes (the packed step product from N > 4, several threads' rows; threads sharing
    hidden units at N = 2, H = 128), both dtypes."""
    arrays, layer_norm, recurrent_mask, u_h, u_c = _problem(
        4 + N, N=N, T=7, D=6, H=H, dtype=dtype, ln=ln, mask=True
    )
    args = (
        arrays["x"],
        arrays["h0"],
        arrays["c0"],
        arrays["Wx"],
        arrays["Wh"],
        arrays["b"],
        layer_norm,
        recurrent_mask,
        1e-5,
        u_h,
        u_c,
    )
    compiled, twin = _kernels.lstm_forward(*args), _reference.lstm_forward(*args)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for name in ("h", "c", "tc", "gates", "hprev"):
        assert np.abs(getattr(compiled, name) - getattr(twin, name)).max() < tol, name
    rng = np.random.default_rng(N)
    dh = rng.standard_normal(compiled.h.shape).astype(dtype)
    dc = rng.standard_normal(arrays["h0"].shape).astype(dtype)
    g_compiled = _kernels.lstm_backward(dh, dc, compiled)
    g_twin = _reference.lstm_backward(dh, dc, twin)
    for name, value in g_twin.items():
        scale = max(1.0, float(np.abs(value).max()))
        assert np.abs(g_compiled[name] - value).max() / scale < tol * 10, name


def test_any_memory_layout_of_the_weights_is_taken():
    arrays, _, _, u_h, u_c = _problem(5)
    expected, _ = rnnreg.lstm_forward(**arrays, zoneout_h=u_h, zoneout_c=u_c)
    strided_h = np.asfortranarray(u_h)
    sliced_c = np.repeat(u_c, 2, axis=2)[:, :, ::2]
    big_endian = u_h.astype(u_h.dtype.newbyteorder(">"))
    for zh, zc in ((strided_h, sliced_c), (big_endian, u_c), (u_h.tolist(), u_c)):
        h, _ = rnnreg.lstm_forward(**arrays, zoneout_h=zh, zoneout_c=zc)
        assert np.array_equal(h, expected)


@pytest.mark.parametrize("ln", [False, True], ids=["plain", "layernorm"])
def test_zero_weights_are_the_plain_lstm_bit_for_bit(backend, ln):
    arrays, layer_norm, recurrent_mask, u_h, _ = _problem(6, ln=ln, mask=True)
    zeros = np.zeros_like(u_h)
    h_plain, plain = rnnreg.lstm_forward(**arrays, layer_norm=layer_norm, recurrent_mask=recurrent_mask)
    h_zero, zoned = rnnreg.lstm_forward(
        **arrays, layer_norm=layer_norm, recurrent_mask=recurrent_mask, zoneout_h=zeros, zoneout_c=zeros
    )
    assert np.array_equal(h_plain, h_zero) and np.array_equal(plain.c, zoned.c)
    dh = np.random.default_rng(0).standard_normal(h_plain.shape)
    a, b = rnnreg.lstm_backward(dh, plain), rnnreg.lstm_backward(dh, zoned)
    for x, y in zip(a[:6], b[:6]):
        assert np.array_equal(x, y)


def test_a_model_with_zero_zoneout_is_the_plain_model_bit_for_bit():
    tokens = np.random.default_rng(0).integers(0, 9, (4, 8))
    for kwargs in ({}, {"use_layer_norm": True, "num_layers": 2}):
        plain = rnnreg.RegularizedLSTM(9, 6, seed=3, **kwargs)
        zoned = rnnreg.RegularizedLSTM(9, 6, seed=3, zoneout_hidden=0.0, zoneout_cell=0.0, **kwargs)
        a = plain.forward_batch(tokens[:, :-1], tokens[:, 1:], training=True)
        b = zoned.forward_batch(tokens[:, :-1], tokens[:, 1:], training=True)
        assert a[0] == b[0] and np.array_equal(a[1], b[1])
        ga, gb = plain.backward(), zoned.backward()
        assert all(np.array_equal(ga[k], gb[k]) for k in ga)


@pytest.mark.parametrize("ln", [False, True], ids=["plain", "layernorm"])
def test_evaluation_is_the_expectation(backend, ln):
    """In evaluation the model zones out by the expectation: u = z everywhere."""
    model = rnnreg.RegularizedLSTM(
        7, 5, embedding_size=4, use_layer_norm=ln, seed=2, zoneout_hidden=0.2, zoneout_cell=0.45
    )
    tokens = np.random.default_rng(1).integers(0, 7, (3, 6))
    logits, _ = model.logits(tokens)
    p = model.params
    x = p["embedding"][tokens]
    N, T, H = 3, 6, 5
    layer_norm = {k: p[f"ln0.{k}"] for k in LN_NAMES} if ln else None
    h, _ = zoneout_lstm_by_the_paper(
        x,
        np.zeros((N, H)),
        np.zeros((N, H)),
        p["W0"][:4],
        p["W0"][4:],
        p["b0"],
        layer_norm,
        None,
        np.full((N, T, H), 0.2),
        np.full((N, T, H), 0.45),
    )
    assert np.abs(logits - (h @ p["Why"] + p["by"])).max() < 1e-10


def test_the_same_seed_gives_the_same_masks_in_both_backends():
    tokens = np.random.default_rng(0).integers(0, 9, (5, 12))
    caches = {}
    for backend in BACKENDS:
        with rnnreg.use_backend(backend):
            model = rnnreg.RegularizedLSTM(
                9, 6, seed=11, zoneout_hidden=0.3, zoneout_cell=0.5, dtype="float32"
            )
            model.forward_batch(tokens[:, :-1], tokens[:, 1:], training=True)
            caches[backend] = model._trace.layers[0].run.caches[0]
    a, b = caches["compiled"], caches["numpy"]
    assert np.array_equal(a.zoneout_h, b.zoneout_h) and np.array_equal(a.zoneout_c, b.zoneout_c)
    assert 0.2 < a.zoneout_h.mean() < 0.4 and 0.4 < a.zoneout_c.mean() < 0.6
    assert np.abs(a.h - b.h).max() < 1e-5


def test_zoneout_weights_are_checked_by_the_kernel_and_named_by_the_wrapper():
    arrays, _, _, u_h, _ = _problem(9)
    args = (
        arrays["x"],
        arrays["h0"],
        arrays["c0"],
        arrays["Wx"],
        arrays["Wh"],
        arrays["b"],
        None,
        None,
        1e-5,
    )
    with pytest.raises(ValueError, match="zoneout_h"):
        _kernels.lstm_forward(*args, u_h[:, :-1].copy(), None)  # one step short
    with pytest.raises((ValueError, TypeError), match="zoneout_c"):
        _kernels.lstm_forward(*args, None, u_h.astype(np.float32))
    with pytest.raises(ValueError, match="zoneout_h"):
        rnnreg.lstm_forward(**arrays, zoneout_h=u_h[:2])
    with pytest.raises(ValueError, match="zoneout_h"):
        rnnreg.lstm_forward(**arrays, zoneout_h=np.full_like(u_h, np.nan))
    # A cache whose zoneout weights were swapped for smaller ones is refused, not read.
    _, cache = rnnreg.lstm_forward(**arrays, zoneout_h=u_h)
    tampered = cache._replace(zoneout_h=u_h[:1].copy())
    with pytest.raises(ValueError, match="zoneout_h"):
        _kernels.lstm_backward(np.ones_like(cache.h), None, tampered)
    with pytest.raises(ValueError, match="zoneout_h"):
        _reference.lstm_backward(np.ones_like(cache.h), None, tampered)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "0.2", True])
def test_zoneout_probabilities_outside_0_1_are_refused(bad):
    for name in ("zoneout_hidden", "zoneout_cell"):
        with pytest.raises((ValueError, TypeError), match=name):
            rnnreg.RegularizedLSTM(5, 4, **{name: bad})


def test_zoneout_in_the_model_with_document_resets_matches_finite_differences():
    """Several kernel calls per layer (a document starts mid-batch): weights sliced per call."""
    model = rnnreg.RegularizedLSTM(6, 4, seed=0, zoneout_hidden=0.3, zoneout_cell=0.4, num_layers=2)
    rng = np.random.default_rng(2)
    inputs, targets = rng.integers(0, 6, (2, 7)), rng.integers(0, 6, (2, 7))
    resets = np.zeros((2, 7), bool)
    resets[0, 3] = resets[1, 5] = True
    state = model.rng.bit_generator.state

    def loss():
        model.rng.bit_generator.state = state
        return model.forward_batch(inputs, targets, training=True, resets=resets)[0]

    loss()
    grads = model.backward()
    for name, value in model.params.items():
        assert relative_error(grads[name], numerical_gradient(loss, value)) < 1e-6, name
