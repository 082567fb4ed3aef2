"""The model's regularizers (rnnreg.model), each against an independent implementation of its
formula given the same masks, and by finite differences: AWD-LSTM's embedding dropout, AR and
TAR, and weight tying (Merity, Keskar & Socher 2017)."""

import numpy as np
import pytest

import rnnreg
from rnnreg import RegularizedLSTM
from rnnreg.gradcheck import numerical_gradient, relative_error


def _batch(V=7, N=3, T=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


def _fixed_masks_loss(model, inputs, targets, **kwargs):
    """The training loss as a function of the parameters, every mask drawn the same each call."""
    state = model.rng.bit_generator.state

    def loss():
        model.rng.bit_generator.state = state
        return model.forward_batch(inputs, targets, training=True, **kwargs)[0]

    return loss


def _check_gradients(model, inputs, targets, tol=1e-6):
    loss = _fixed_masks_loss(model, inputs, targets)
    loss()
    grads = model.backward()
    for name, value in model.params.items():
        assert relative_error(grads[name], numerical_gradient(loss, value)) < tol, name


def _softmax_ce(logits, targets):
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -np.take_along_axis(logp, targets[..., None], axis=-1).mean()


def _plain_lstm(x, W, b, H):
    """h (N, T, H) of one LSTM layer from zero state, written out (gate order i, f, o, g)."""
    N, T, D = x.shape
    h, c, out = np.zeros((N, H)), np.zeros((N, H)), []
    for t in range(T):
        a = x[:, t] @ W[:D] + h @ W[D:] + b
        s = 1 / (1 + np.exp(-a[:, : 3 * H]))
        c = s[:, H : 2 * H] * c + s[:, :H] * np.tanh(a[:, 3 * H :])
        h = s[:, 2 * H : 3 * H] * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


# ----------------------------------------------------------------------------- embedding dropout
def test_embedding_dropout_drops_whole_rows_by_the_formula(backend):
    """Merity et al. 2017, 4.3: one Bernoulli(1 - p) mask per embedding row and batch, kept rows
    scaled by 1/(1 - p); a word's every occurrence in the batch is dropped together."""
    model = RegularizedLSTM(7, 5, embedding_size=4, embedding_keep_prob=0.6, seed=0)
    inputs, targets = _batch()
    state = model.rng.bit_generator.state
    loss, logits, _ = model.forward_batch(inputs, targets, training=True)
    # The same draw, independently: the row mask is the first thing the pass draws.
    model.rng.bit_generator.state = state
    row_mask = rnnreg.dropout_mask((7,), 0.6, model.rng)
    assert set(np.unique(row_mask)) <= {0.0, 1 / 0.6}
    p = model.params
    x = (p["embedding"] * row_mask[:, None])[inputs]
    expected = _plain_lstm(x, p["W0"], p["b0"], 5) @ p["Why"] + p["by"]
    assert np.abs(logits - expected).max() < 1e-10
    assert abs(loss - _softmax_ce(expected, targets)) < 1e-10
    # In evaluation nothing is dropped.
    _, eval_logits, _ = model.forward_batch(inputs, targets, training=False)
    x = p["embedding"][inputs]
    assert np.abs(eval_logits - (_plain_lstm(x, p["W0"], p["b0"], 5) @ p["Why"] + p["by"])).max() < 1e-10


def test_embedding_dropout_gradients(backend):
    model = RegularizedLSTM(7, 5, embedding_size=4, embedding_keep_prob=0.5, dropout_keep_prob=0.8, seed=1)
    _check_gradients(model, *_batch())


def test_embedding_dropout_needs_an_embedding():
    with pytest.raises(ValueError, match="embedding_keep_prob"):
        RegularizedLSTM(7, 5, embedding_keep_prob=0.9)


# ----------------------------------------------------------------------------- AR and TAR
def test_ar_and_tar_are_in_the_loss_by_their_formulas(backend):
    """AR = α · mean((m ⊙ h_t)²) on the last layer's dropped output; TAR = β · mean((h_t −
    h_{t−1})²) on its output before dropout (Merity et al. 2017, 4.6)."""
    kwargs = dict(embedding_size=4, dropout_keep_prob=0.7, num_layers=2, seed=2)
    plain = RegularizedLSTM(7, 5, **kwargs)
    model = RegularizedLSTM(7, 5, activation_reg=2.0, temporal_activation_reg=1.5, **kwargs)
    inputs, targets = _batch()
    ce, _, _ = plain.forward_batch(inputs, targets, training=True)  # the same masks
    loss, _, _ = model.forward_batch(inputs, targets, training=True)
    trace = model._trace
    dropped = trace.top.reshape(_batch()[0].shape + (5,))
    h = trace.layers[-1].run.caches[0].h  # the last layer's output, before dropout
    ((part, mask),) = trace.layers[-1].output_parts
    assert np.array_equal(dropped, h * mask)
    ar = 2.0 * np.mean((mask * h) ** 2)
    tar = 1.5 * np.mean((h[:, 1:] - h[:, :-1]) ** 2)
    assert abs(model.last_penalty - (ar + tar)) < 1e-12
    assert abs(loss - (ce + ar + tar)) < 1e-12
    # Evaluation reports plain cross-entropy.
    eval_plain = plain.forward_batch(inputs, targets)[0]
    assert model.forward_batch(inputs, targets)[0] == eval_plain and model.last_penalty == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(activation_reg=3.0),
        dict(temporal_activation_reg=4.0),
        dict(
            activation_reg=1.0,
            temporal_activation_reg=2.0,
            dropout_keep_prob=0.6,
            num_layers=2,
            variational=True,
        ),
    ],
    ids=["ar", "tar", "both-2-layers"],
)
def test_ar_and_tar_gradients(backend, kwargs):
    model = RegularizedLSTM(7, 5, embedding_size=4, seed=3, **kwargs)
    _check_gradients(model, *_batch())


@pytest.mark.parametrize("name", ["activation_reg", "temporal_activation_reg"])
@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_negative_or_non_finite_penalties_are_refused(name, bad):
    with pytest.raises(ValueError, match=name):
        RegularizedLSTM(7, 5, **{name: bad})


# ----------------------------------------------------------------------------- weight tying
def test_tied_weights_are_one_parameter_and_their_gradients_add(backend):
    model = RegularizedLSTM(7, 5, tie_weights=True, seed=4)
    assert "Why" not in model.params and model.embedding_size == 5
    assert np.shares_memory(model.Why, model.params["embedding"])
    inputs, targets = _batch()
    _, logits, _ = model.forward_batch(inputs, targets)
    p = model.params
    x = p["embedding"][inputs]
    expected = _plain_lstm(x, p["W0"], p["b0"], 5) @ p["embedding"].T + p["by"]
    assert np.abs(logits - expected).max() < 1e-10
    _check_gradients(model, inputs, targets)
    untied = RegularizedLSTM(7, 5, embedding_size=5, seed=4)
    assert model.parameter_count() == untied.parameter_count() - 5 * 7


def test_tying_with_other_regularizers_gradients(backend):
    model = RegularizedLSTM(
        7,
        5,
        tie_weights=True,
        embedding_keep_prob=0.7,
        activation_reg=1.0,
        temporal_activation_reg=1.0,
        zoneout_cell=0.3,
        weight_keep_prob=0.8,
        dropout_keep_prob=0.8,
        num_layers=2,
        seed=5,
    )
    _check_gradients(model, *_batch())


def test_tying_unequal_sizes_is_refused_clearly():
    with pytest.raises(ValueError, match="embedding_size == hidden_size"):
        RegularizedLSTM(7, 5, embedding_size=4, tie_weights=True)
    with pytest.raises(ValueError, match="output_size == vocab_size"):
        RegularizedLSTM(7, 5, output_size=6, tie_weights=True)


# ----------------------------------------------------------------------------- sampling
def _text_model():
    from rnnreg import CharCorpus

    corpus = CharCorpus.from_text("abcabcabd\n" * 30)
    model = RegularizedLSTM(corpus.vocab_size, 8, seed=0)
    model.vocabulary = corpus.vocabulary
    return model


def test_top_p_keeps_the_smallest_most_likely_set_reaching_p():
    from rnnreg.model import Sampling, _next_token

    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(0)
    draws = {_next_token(logits, Sampling(1.0, None, 0.75, False), rng) for _ in range(300)}
    assert draws == {0, 1}  # 0.5 + 0.3 >= 0.75; 0.5 alone is not
    draws = {_next_token(logits, Sampling(1.0, None, 0.5, False), rng) for _ in range(100)}
    assert draws == {0}  # 0.5 reaches 0.5
    draws = {_next_token(logits, Sampling(1.0, 3, 0.99, False), rng) for _ in range(300)}
    assert draws == {0, 1, 2}  # top_k first, then top_p
    assert _next_token(logits, Sampling(1.0, None, None, True), rng) == 0


def test_sampling_is_seeded_and_greedy_is_the_argmax_path():
    model = _text_model()
    assert model.generate("ab", 20, top_p=0.8, rng=3) == model.generate("ab", 20, top_p=0.8, rng=3)
    greedy = model.generate("ab", 10, greedy=True)
    ids = model.vocabulary.encode("ab")
    logits, state = model.logits(ids)
    expected = []
    for _ in range(10):
        nxt = int(np.argmax(logits[-1][1:])) + 1  # text never holds the unknown symbol, id 0
        expected.append(nxt)
        logits, state = model.logits(np.array([nxt]), state)
    assert greedy == model.vocabulary.decode(np.array(expected), unknown="")


def test_a_prime_with_characters_the_vocabulary_lacks_is_refused_naming_them():
    model = _text_model()
    with pytest.raises(ValueError, match="'xz'"):
        model.generate("abzx", 5)
    with pytest.raises(ValueError, match="top_p"):
        model.generate("ab", 5, top_p=1.5)
