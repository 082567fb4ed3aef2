"""The GRU's NumPy reference (rnnreg._reference_gru.gru_forward / gru_backward): the oracle its
compiled kernel will be proven against. Here it is proven itself: equal to PyTorch's nn.GRU
(outputs, final state, every gradient) given the same weights, by finite differences with the
recurrent mask and zoneout, and zoneout 0 is the plain GRU bit for bit."""

import numpy as np
import pytest

from rnnreg import _reference as ref
from rnnreg._conventions import GRU_GATE_ORDER, GRU_LAYER_NORM_PARAMS, GRUCache
from rnnreg.gradcheck import numerical_gradient, relative_error

N, T, D, H = 3, 5, 4, 6


def _weights(seed=0, D=D):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((D, 3 * H)) * 0.5,
        rng.standard_normal((H, 3 * H)) * 0.5,
        rng.standard_normal(3 * H) * 0.3,
        rng.standard_normal(H) * 0.3,
    )


def test_the_gate_order_is_pytorchs():
    assert GRU_GATE_ORDER == ("r", "z", "n")


@pytest.mark.extras
@pytest.mark.parametrize("tokens", [False, True], ids=["vectors", "token-ids"])
def test_forward_and_gradients_equal_nn_gru(tokens):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional extra")
    rng = np.random.default_rng(1)
    Wx, Wh, b, bn = _weights(2, D=7 if tokens else D)
    x = rng.integers(0, 7, (N, T)) if tokens else rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    dh = rng.standard_normal((N, T, H))
    cache = ref.gru_forward(x, h0, Wx, Wh, b, bn)
    grads = ref.gru_backward(dh, cache)
    gru = torch.nn.GRU(Wx.shape[0], H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # our b = PyTorch's b_ih, plus b_hh for r and z; bn its b_hh for n
        gru.weight_ih_l0.copy_(torch.from_numpy(Wx.T))
        gru.weight_hh_l0.copy_(torch.from_numpy(Wh.T))
        gru.bias_ih_l0.copy_(torch.from_numpy(b))
        gru.bias_hh_l0.copy_(torch.from_numpy(np.concatenate([np.zeros(2 * H), bn])))
    xt = torch.nn.functional.one_hot(torch.from_numpy(x), 7).double() if tokens else torch.from_numpy(x)
    xt.requires_grad_(not tokens)
    h0t = torch.from_numpy(h0).unsqueeze(0).requires_grad_(True)
    out, h_n = gru(xt, h0t)
    np.testing.assert_allclose(cache.h, out.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(cache.h[:, -1], h_n[0].detach().numpy(), rtol=0, atol=1e-12)
    (out * torch.from_numpy(dh)).sum().backward()
    np.testing.assert_allclose(grads["dWx"], gru.weight_ih_l0.grad.numpy().T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads["dWh"], gru.weight_hh_l0.grad.numpy().T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads["db"], gru.bias_ih_l0.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads["dbn"], gru.bias_hh_l0.grad.numpy()[2 * H :], rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads["dh0"], h0t.grad[0].numpy(), rtol=0, atol=1e-12)
    if not tokens:
        np.testing.assert_allclose(grads["dx"], xt.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "mask, zoneout, layer_norm",
    [
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (True, True, False),
        (True, True, True),
    ],
)
def test_gradients_match_finite_differences(mask, zoneout, layer_norm):
    rng = np.random.default_rng(3)
    Wx, Wh, b, bn = _weights(4)
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    m = (rng.random((N, H)) < 0.7) / 0.7 if mask else None
    u = (rng.random((N, T, H)) < 0.3).astype(float) if zoneout else None
    weights = rng.standard_normal((N, T, H))
    ln = (
        {
            name: rng.standard_normal(3 * H) * (0.3 if name.startswith("beta") else 1.0)
            for name in GRU_LAYER_NORM_PARAMS
        }
        if layer_norm
        else None
    )
    arrays = {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b, "bn": bn}

    def loss():
        cache = ref.gru_forward(
            arrays["x"],
            arrays["h0"],
            arrays["Wx"],
            arrays["Wh"],
            arrays["b"],
            arrays["bn"],
            recurrent_mask=m,
            zoneout_h=u,
            layer_norm=ln,
        )
        return float(np.sum(cache.h * weights))

    cache = ref.gru_forward(x, h0, Wx, Wh, b, bn, recurrent_mask=m, zoneout_h=u, layer_norm=ln)
    grads = ref.gru_backward(weights, cache)
    names = {"x": "dx", "h0": "dh0", "Wx": "dWx", "Wh": "dWh", "b": "db", "bn": "dbn"}
    for name in ln or ():
        names[name] = "d" + name
    for name, value in [*arrays.items(), *(ln or {}).items()]:
        assert relative_error(grads[names[name]], numerical_gradient(loss, value)) < 1e-7, name


def test_zoneout_zero_is_the_plain_gru_bit_for_bit():
    rng = np.random.default_rng(5)
    Wx, Wh, b, bn = _weights(6)
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    plain = ref.gru_forward(x, h0, Wx, Wh, b, bn)
    zero = ref.gru_forward(x, h0, Wx, Wh, b, bn, zoneout_h=np.zeros((N, T, H)))
    assert np.array_equal(plain.h, zero.h)
    dh = rng.standard_normal((N, T, H))
    a, c = ref.gru_backward(dh, plain), ref.gru_backward(dh, zero)
    assert all(np.array_equal(a[k], c[k]) for k in a)


def test_a_tampered_cache_is_refused_naming_the_field():
    rng = np.random.default_rng(7)
    cache = ref.gru_forward(rng.standard_normal((N, T, D)), np.zeros((N, H)), *_weights())
    assert isinstance(cache, GRUCache)
    with pytest.raises(ValueError, match="cache.hn"):
        ref.gru_backward(np.ones((N, T, H)), cache._replace(hn=np.ones((N, T + 1, H))))
    with pytest.raises(TypeError, match="GRUCache"):
        ref.gru_backward(np.ones((N, T, H)), dict(cache._asdict()))
