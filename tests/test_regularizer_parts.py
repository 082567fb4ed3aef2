"""The regularizer parts (rnnreg.regularizers): their declaration, their draw order, and the
two parts added on the new seams — DropConnect on Wx and AWD-LSTM's separate dropout rates —
each against an independent implementation of its formula given the same masks, and by finite
differences."""

import numpy as np
import pytest

import rnnreg
from rnnreg import RegularizedLSTM
from rnnreg.gradcheck import numerical_gradient, relative_error
from rnnreg.model_config import ModelConfig
from rnnreg.regularizers import PARTS, Place, Regularizer, active_parts

V, H = 7, 5


def _batch(N=3, T=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


def _check_gradients(fixed_masks_loss, model, inputs, targets, tol=1e-6):
    loss = fixed_masks_loss(model, inputs, targets)
    loss()
    grads = model.backward()
    for name, value in model.params.items():
        assert relative_error(grads[name], numerical_gradient(loss, value)) < tol, name


# ----------------------------------------------------------------------------- the declaration
def test_every_part_names_declared_settings_and_a_place_and_its_formula():
    fields = set(ModelConfig.__dataclass_fields__)
    for part in PARTS:
        assert isinstance(part, Regularizer) and isinstance(part.place, Place)
        assert part.settings and set(part.settings) <= fields, part
        assert part.__doc__ and ("=" in part.__doc__ or "·" in part.__doc__), part


def test_every_regularizing_setting_has_a_part():
    """A setting that regularizes (a keep probability, a zoneout rate, a penalty, tying) is
    acted on by a part: declaring it without its part fails here."""
    regularizing = {
        name
        for name in ModelConfig.__dataclass_fields__
        if name.endswith("keep_prob")
        or name.startswith("zoneout")
        or name.endswith("_reg")
        or name == "tie_weights"
    }
    claimed = {name for part in PARTS for name in part.settings}
    assert regularizing <= claimed, regularizing - claimed


def test_a_part_that_is_off_draws_nothing():
    """Switching on a part never changes the masks drawn before it: the plain model's generator
    is untouched by a training pass."""
    model = RegularizedLSTM(V, H, seed=0)
    before = model.rng.bit_generator.state
    model.forward_batch(*_batch(), training=True)
    assert model.rng.bit_generator.state == before
    assert all(not active_parts(model.model_config, place) for place in Place)


# ----------------------------------------------------------------------------- DropConnect on Wx
@pytest.mark.parametrize("embedding_size", [None, 4])
def test_dropconnect_on_wx_is_the_plain_model_on_masked_weights(backend, embedding_size):
    """Wx' = Wx ⊙ M: the loss is the plain model's with W0 = [Wx ⊙ M; Wh], and the gradient of
    Wx is M ⊙ the plain model's, for the mask drawn first from the model's generator."""
    kwargs = dict(embedding_size=embedding_size, seed=3)
    model = RegularizedLSTM(V, H, input_weight_keep_prob=0.6, **kwargs)
    plain = RegularizedLSTM(V, H, **kwargs)
    assert all(np.array_equal(plain.params[k], model.params[k]) for k in model.params)
    inputs, targets = _batch()
    D = model.params["W0"].shape[0] - H
    mask = rnnreg.dropout_mask((D, 4 * H), 0.6, _clone(model.rng))  # the model's first draw
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6}
    loss = model.forward_batch(inputs, targets, training=True)[0]
    grads = model.backward()
    plain.params["W0"][:D] *= mask
    expected = plain.forward_batch(inputs, targets, training=True)[0]
    plain_grads = plain.backward()
    assert abs(loss - expected) < 1e-12
    np.testing.assert_allclose(grads["W0"][:D], mask * plain_grads["W0"][:D], atol=1e-12)
    np.testing.assert_allclose(grads["W0"][D:], plain_grads["W0"][D:], atol=1e-12)


def _clone(rng):
    """A generator in the same state as ``rng`` (it draws the same masks)."""
    twin = np.random.default_rng()
    twin.bit_generator.state = rng.bit_generator.state
    return twin


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(num_layers=2, embedding_size=4, weight_keep_prob=0.7, use_layer_norm=True)],
    ids=["one-hot", "two-layers-weight-drop-ln"],
)
def test_dropconnect_on_wx_gradients(backend, kwargs, fixed_masks_loss):
    _check_gradients(
        fixed_masks_loss, RegularizedLSTM(V, H, input_weight_keep_prob=0.7, seed=1, **kwargs), *_batch()
    )


def test_dropconnect_is_off_in_evaluation():
    model = RegularizedLSTM(V, H, input_weight_keep_prob=0.5, seed=0)
    plain = RegularizedLSTM(V, H, seed=0)
    inputs, targets = _batch()
    assert model.forward_batch(inputs, targets)[0] == plain.forward_batch(inputs, targets)[0]


# ----------------------------------------------------------------------------- AWD's rates
def test_separate_rates_at_their_default_are_the_general_rate_bit_for_bit():
    inputs, targets = _batch()
    kwargs = dict(embedding_size=4, num_layers=3, variational=True, seed=5)
    general = RegularizedLSTM(V, H, dropout_keep_prob=0.6, **kwargs)
    spelled = RegularizedLSTM(
        V,
        H,
        dropout_keep_prob=0.6,
        input_keep_prob=0.6,
        between_keep_prob=0.6,
        output_keep_prob=0.6,
        **kwargs,
    )
    a = general.forward_batch(inputs, targets, training=True)[0]
    b = spelled.forward_batch(inputs, targets, training=True)[0]
    assert a == b
    for name, g in general.backward().items():
        assert np.array_equal(g, spelled.backward()[name]), name


def test_each_rate_acts_where_it_is_named():
    """dropouti on the embedded inputs, dropouth between layers, dropout on the output: each
    place's mask holds 0 and 1/keep of its own rate."""
    model = RegularizedLSTM(
        V,
        H,
        embedding_size=4,
        num_layers=3,
        input_keep_prob=0.9,
        between_keep_prob=0.7,
        output_keep_prob=0.5,
        seed=0,
    )
    inputs, targets = _batch(N=20, T=30)
    model.forward_batch(inputs, targets, training=True)
    trace = model._trace
    ((_, input_mask),) = trace.input_parts
    scales = [np.unique(input_mask)] + [np.unique(layer.output_parts[0][1]) for layer in trace.layers]
    for values, keep in zip(scales, (0.9, 0.7, 0.7, 0.5)):
        np.testing.assert_allclose(values, [0.0, 1 / keep])
    # the general rate switched off, the separate ones still act
    only = RegularizedLSTM(V, H, embedding_size=4, num_layers=2, output_keep_prob=0.5, seed=0)
    only.forward_batch(inputs, targets, training=True)
    assert only._trace.input_parts == () and only._trace.layers[0].output_parts[0][1] is None
    assert only._trace.layers[1].output_parts[0][1] is not None


def test_the_output_rate_is_the_independent_formula():
    """logits = (h ⊙ m / keep) Why + by for the last layer's output h and the mask drawn after
    the layer ran: the model's loss from its own pieces."""
    model = RegularizedLSTM(V, H, output_keep_prob=0.5, seed=2)
    inputs, targets = _batch()
    rng = _clone(model.rng)
    loss = model.forward_batch(inputs, targets, training=True)[0]
    h = model._trace.layers[0].run.caches[0].h
    flat = np.ascontiguousarray(h).reshape(-1)
    _, mask = rnnreg.dropout_forward(flat, 0.5, rng=rng)  # the same draw, by the public twin
    logits = (h * mask.reshape(h.shape)) @ model.params["Why"] + model.params["by"]
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    expected = -np.take_along_axis(logp, targets[..., None], -1).mean()
    assert abs(loss - expected) < 1e-12


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_keep_prob=0.8, between_keep_prob=0.6, output_keep_prob=0.7),
        dict(input_keep_prob=0.8, output_keep_prob=0.9, variational=True, dropout_keep_prob=0.5),
    ],
    ids=["per-element", "variational"],
)
def test_separate_rates_gradients(backend, kwargs, fixed_masks_loss):
    _check_gradients(
        fixed_masks_loss, RegularizedLSTM(V, H, embedding_size=4, num_layers=2, seed=4, **kwargs), *_batch()
    )


def test_an_input_rate_without_an_embedding_is_refused_saying_why():
    with pytest.raises(ValueError, match="one-hot inputs are not dropped"):
        RegularizedLSTM(V, H, input_keep_prob=0.8)
