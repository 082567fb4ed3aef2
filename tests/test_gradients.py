"""Central finite-difference checks of every backward pass, in float64, on both backends."""

import numpy as np
import pytest

import rnnreg
from rnnreg.gradcheck import numerical_gradient, relative_error

pytestmark = pytest.mark.kernels

GRAD_TOL = 1e-7


@pytest.mark.parametrize("ln", [False, True], ids=["plain", "layernorm"])
@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "recurrent-dropout"])
def test_lstm_sequence_gradients(backend, ln, mask):
    rng = np.random.default_rng(3)
    N, T, D, H = 2, 4, 3, 5
    inputs = dict(
        x=rng.standard_normal((N, T, D)),
        h0=rng.standard_normal((N, H)),
        c0=rng.standard_normal((N, H)),
        Wx=rng.standard_normal((D, 4 * H)) * 0.5,
        Wh=rng.standard_normal((H, 4 * H)) * 0.5,
        b=rng.standard_normal(4 * H),
    )
    layer_norm = None
    if ln:
        layer_norm = {
            k: rng.standard_normal(4 * H if k[-1] in "xh" else H) + (1 if "gamma" in k else 0)
            for k in rnnreg.LSTM_LAYER_NORM_PARAMS
        }
    recurrent_mask = rnnreg.dropout_mask((N, H), 0.6, rng=5) if mask else None
    dh = rng.standard_normal((N, T, H))
    dc = rng.standard_normal((N, H))

    def loss():
        h, cache = rnnreg.lstm_forward(**inputs, layer_norm=layer_norm, recurrent_mask=recurrent_mask)
        return float(np.sum(h * dh) + np.sum(cache["c_final"] * dc))

    _, cache = rnnreg.lstm_forward(**inputs, layer_norm=layer_norm, recurrent_mask=recurrent_mask)
    grads = rnnreg.lstm_backward(dh, cache, dc_final=dc)
    analytic = dict(x=grads.dx, h0=grads.dh0, c0=grads.dc0, Wx=grads.dWx, Wh=grads.dWh, b=grads.db)
    for name, value in inputs.items():
        assert relative_error(analytic[name], numerical_gradient(loss, value)) < GRAD_TOL, name
    if ln:
        for name, value in layer_norm.items():
            err = relative_error(grads.layer_norm[name], numerical_gradient(loss, value))
            assert err < GRAD_TOL, name


def test_lstm_step_gradients(backend):
    rng = np.random.default_rng(4)
    N, D, H = 3, 4, 5
    inputs = dict(
        x=rng.standard_normal((N, D)),
        prev_h=rng.standard_normal((N, H)),
        prev_c=rng.standard_normal((N, H)),
        Wx=rng.standard_normal((D, 4 * H)),
        Wh=rng.standard_normal((H, 4 * H)),
        b=rng.standard_normal(4 * H),
    )
    dnh, dnc = rng.standard_normal((N, H)), rng.standard_normal((N, H))

    def loss():
        nh, nc, _ = rnnreg.lstm_step_forward(**inputs)
        return float(np.sum(nh * dnh) + np.sum(nc * dnc))

    _, _, cache = rnnreg.lstm_step_forward(**inputs)
    analytic = rnnreg.lstm_step_backward(dnh, dnc, cache)
    for grad, value in zip(analytic, inputs.values()):
        assert relative_error(grad, numerical_gradient(loss, value)) < GRAD_TOL


@pytest.mark.parametrize("shape", [(6,), (4, 7), (2, 3, 5)])
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_layer_norm_gradients(backend, shape, offset):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape) * 2 + offset
    gamma = rng.standard_normal(shape[-1])
    beta = rng.standard_normal(shape[-1])
    dout = rng.standard_normal(shape)

    def loss():
        return float(np.sum(rnnreg.layer_norm_forward(x, gamma, beta)[0] * dout))

    _, cache = rnnreg.layer_norm_forward(x, gamma, beta)
    dx, dgamma, dbeta = rnnreg.layer_norm_backward(dout, cache)
    # A mean of 1e3 shrinks the gradient of x by the input's scale; step accordingly.
    assert relative_error(dx, numerical_gradient(loss, x, h=1e-6 * max(1, offset / 100))) < GRAD_TOL
    assert relative_error(dgamma, numerical_gradient(loss, gamma)) < GRAD_TOL
    assert relative_error(dbeta, numerical_gradient(loss, beta)) < GRAD_TOL


def test_dropout_gradient_with_a_fixed_mask(backend):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 8))
    dout = rng.standard_normal((5, 8))

    def loss():  # the same seed every call: the same mask
        return float(np.sum(rnnreg.dropout_forward(x, 0.7, True, rng=42)[0] * dout))

    _, mask = rnnreg.dropout_forward(x, 0.7, True, rng=42)
    dx = rnnreg.dropout_backward(dout, mask)
    assert relative_error(dx, numerical_gradient(loss, x)) < GRAD_TOL


@pytest.mark.parametrize(
    "config",
    [
        dict(),
        dict(use_layer_norm=True),
        dict(dropout_keep_prob=0.7, recurrent_keep_prob=0.8, weight_keep_prob=0.9),
        dict(
            num_layers=2,
            embedding_size=6,
            use_layer_norm=True,
            dropout_keep_prob=0.8,
            variational=True,
            recurrent_keep_prob=0.7,
        ),
    ],
    ids=["plain", "layernorm", "all-dropouts", "two-layers-embedding-ln-variational"],
)
def test_model_gradients(backend, config):
    model = rnnreg.RegularizedLSTM(7, 5, 6, seed=0, **config)
    inputs, targets = rnnreg.generate_simple_dataset(4, 7, 3, seed=1)
    targets = targets % 6
    state = tuple(np.random.default_rng(2).standard_normal((2, model.num_layers, 3, 5)))

    def loss():
        model.rng = np.random.default_rng(11)  # the same dropout masks at every evaluation
        return model.forward_batch(inputs, targets, state, training=True)[0]

    loss()
    grads = model.backward()
    assert set(grads) == set(model.params)
    for name, value in model.params.items():
        err = relative_error(grads[name], numerical_gradient(loss, value))
        assert err < GRAD_TOL, (name, err)
