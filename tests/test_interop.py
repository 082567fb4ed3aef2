"""PyTorch interop: to_torch / from_torch give the same logits and states (needs torch, an
optional extra; CI installs it)."""

import numpy as np
import pytest

import rnnreg
from rnnreg import RegularizedLSTM, from_torch, to_torch

pytestmark = pytest.mark.extras
torch = pytest.importorskip("torch", reason="PyTorch is an optional extra (pip install torch)")


def _model(layers, embedding, dtype=np.float64, **kwargs):
    model = RegularizedLSTM(
        17, 12, num_layers=layers, embedding_size=embedding, seed=3, dtype=dtype, init="pytorch", **kwargs
    )
    rng = np.random.default_rng(1)
    for p in model.params.values():  # non-trivial biases in every gate block
        p += rng.normal(0, 0.1, p.shape).astype(p.dtype)
    return model


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("embedding", [None, 6])
def test_to_torch_matches_logits_and_carried_state(layers, embedding):
    model = _model(layers, embedding)
    module = to_torch(model)
    tokens = np.random.default_rng(2).integers(0, 17, (3, 9))
    ours, (h, c) = model.logits(tokens[:, :5])
    ours2, (h2, c2) = model.logits(tokens[:, 5:], (h, c))
    with torch.no_grad():
        theirs, state = module(torch.from_numpy(tokens[:, :5]))
        theirs2, state2 = module(torch.from_numpy(tokens[:, 5:]), state)
    errors = [
        np.abs(ours - theirs.numpy()).max(),
        np.abs(ours2 - theirs2.numpy()).max(),
        np.abs(h2 - state2[0].numpy()).max(),
        np.abs(c2 - state2[1].numpy()).max(),
    ]
    assert max(errors) < 1e-10, errors


@pytest.mark.parametrize("layers, embedding", [(1, None), (2, 6)])
def test_round_trip_is_exact_enough_and_keeps_the_vocabulary(layers, embedding):
    from rnnreg import Vocabulary

    model = _model(layers, embedding)
    model.vocabulary = Vocabulary(["\x00"] + list("abcdefghijklmnop"))
    back = from_torch(to_torch(model))
    assert back.vocabulary == model.vocabulary and back.config()["num_layers"] == layers
    for name, value in model.params.items():
        np.testing.assert_allclose(back.params[name], value, rtol=0, atol=1e-15)


def test_a_module_built_by_hand_is_taken_back():
    torch.manual_seed(0)

    class Hand(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(11, 5)
            self.rnn = torch.nn.LSTM(5, 7, num_layers=2, batch_first=True)
            self.out = torch.nn.Linear(7, 11)

        def forward(self, tokens, state=None):
            y, state = self.rnn(self.emb(tokens), state)
            return self.out(y), state

    hand = Hand().double()
    model = from_torch(hand)
    tokens = np.random.default_rng(0).integers(0, 11, (2, 8))
    ours, _ = model.logits(tokens)
    with torch.no_grad():
        theirs, _ = hand(torch.from_numpy(tokens))
    assert np.abs(ours - theirs.numpy()).max() < 1e-10
    f32 = from_torch(Hand())
    assert f32.dtype == np.float32


def test_what_nn_lstm_cannot_express_is_refused_clearly():
    with pytest.raises(ValueError, match="LN-LSTM"):
        to_torch(RegularizedLSTM(5, 4, use_layer_norm=True, seed=0))
    with pytest.raises(ValueError, match="weight-drop"):
        to_torch(RegularizedLSTM(5, 4, weight_keep_prob=0.5, seed=0))
    with pytest.raises(ValueError, match="one nn.LSTM"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(3, 3)))
    with pytest.raises(ValueError, match="bidirectional"):
        from_torch(torch.nn.ModuleList([torch.nn.LSTM(3, 4, bidirectional=True), torch.nn.Linear(8, 3)]))


def test_dropout_rates_travel_to_the_module():
    module = to_torch(RegularizedLSTM(5, 4, dropout_keep_prob=0.7, num_layers=2, seed=0))
    assert module.output_dropout.p == pytest.approx(0.3) and module.lstm.dropout == pytest.approx(0.3)


def test_tied_model_exports_tied_and_comes_back():
    torch = pytest.importorskip("torch")
    model = RegularizedLSTM(9, 6, tie_weights=True, seed=1)
    module = rnnreg.to_torch(model)
    assert module.head.weight is module.embedding.weight
    tokens = np.random.default_rng(0).integers(0, 9, (2, 5))
    logits = module(torch.from_numpy(tokens))[0].detach().numpy()
    assert np.abs(logits - model.logits(tokens)[0]).max() < 1e-10
    back = rnnreg.from_torch(module)
    assert back.tie_weights and np.array_equal(back.logits(tokens)[0], model.logits(tokens)[0])
    with pytest.raises(ValueError, match="zoneout_hidden"):
        rnnreg.to_torch(RegularizedLSTM(9, 6, zoneout_hidden=0.1))


def _lm(extra=None, embedding_kwargs=None):
    """A hand-built language model: embedding, LSTM, (extra layer,) head."""

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(11, 6, **(embedding_kwargs or {}))
            self.rnn = torch.nn.LSTM(6, 6, batch_first=True)
            self.extra = extra
            self.out = torch.nn.Linear(6, 11)

        def forward(self, tokens, state=None):
            y, state = self.rnn(self.emb(tokens), state)
            if self.extra is not None:
                y = self.extra(y)
            return self.out(y), state

    return LM().double()


def test_a_layer_the_converter_does_not_map_is_refused_by_name():
    with pytest.raises(ValueError, match="LayerNorm at 'extra'"):
        from_torch(_lm(torch.nn.LayerNorm(6)))
    with pytest.raises(ValueError, match="Tanh at 'extra'"):
        from_torch(_lm(torch.nn.Tanh()))


def test_an_embedding_that_renormalizes_is_refused():
    with pytest.raises(ValueError, match="max_norm"):
        from_torch(_lm(embedding_kwargs={"max_norm": 0.1}))


def test_a_forward_that_does_more_than_the_layers_is_caught_on_a_probe():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(11, 6)
            self.rnn = torch.nn.LSTM(6, 6, batch_first=True)
            self.out = torch.nn.Linear(6, 11)

        def forward(self, tokens):
            y, _ = self.rnn(self.emb(tokens) * 2.0)  # arithmetic no layer declares
            return self.out(y)

    with pytest.raises(ValueError, match="differ from the module's"):
        from_torch(Scaled().double())


def test_from_torch_of_something_that_is_no_module_says_so():
    with pytest.raises(TypeError, match="takes a torch.nn.Module, got str"):
        from_torch("not a module")
