"""AWD-LSTM's regularizers (Merity, Keskar & Socher 2017): embedding dropout, AR, TAR, weight
tying, NT-ASGD and variable-length BPTT — each against an independent implementation of its
formula given the same masks, by finite differences, and through fit, the CLI and checkpoints."""
import json
import math

import numpy as np
import pytest

import rnnreg
from rnnreg import RegularizedLSTM, TrainConfig, fit, load_model, save_model
from rnnreg.cli import main
from rnnreg.gradcheck import numerical_gradient, relative_error
from rnnreg.optim import NTASGD, Adam
from rnnreg.training import iterate_batches, variable_bptt_lengths



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
        s = 1 / (1 + np.exp(-a[:, :3 * H]))
        c = s[:, H:2 * H] * c + s[:, :H] * np.tanh(a[:, 3 * H:])
        h = s[:, 2 * H:3 * H] * np.tanh(c)
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
    model = RegularizedLSTM(7, 5, embedding_size=4, embedding_keep_prob=0.5,
                            dropout_keep_prob=0.8, seed=1)
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
    ce, _, _ = plain.forward_batch(inputs, targets, training=True)   # the same masks
    loss, _, _ = model.forward_batch(inputs, targets, training=True)
    dropped = model._cache["top"]
    h = model._cache["top_h"]
    mask = model._cache["dropout_masks"][-1]
    assert np.array_equal(dropped, h * mask)
    ar = 2.0 * np.mean((mask * h) ** 2)
    tar = 1.5 * np.mean((h[:, 1:] - h[:, :-1]) ** 2)
    assert abs(model.last_penalty - (ar + tar)) < 1e-12
    assert abs(loss - (ce + ar + tar)) < 1e-12
    # Evaluation reports plain cross-entropy.
    eval_plain = plain.forward_batch(inputs, targets)[0]
    assert model.forward_batch(inputs, targets)[0] == eval_plain and model.last_penalty == 0


@pytest.mark.parametrize("kwargs", [dict(activation_reg=3.0), dict(temporal_activation_reg=4.0),
                                    dict(activation_reg=1.0, temporal_activation_reg=2.0,
                                         dropout_keep_prob=0.6, num_layers=2, variational=True)],
                         ids=["ar", "tar", "both-2-layers"])
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
    model = RegularizedLSTM(7, 5, tie_weights=True, embedding_keep_prob=0.7, activation_reg=1.0,
                            temporal_activation_reg=1.0, zoneout_cell=0.3, weight_keep_prob=0.8,
                            dropout_keep_prob=0.8, num_layers=2, seed=5)
    _check_gradients(model, *_batch())


def test_tying_unequal_sizes_is_refused_clearly():
    with pytest.raises(ValueError, match="embedding_size == hidden_size"):
        RegularizedLSTM(7, 5, embedding_size=4, tie_weights=True)
    with pytest.raises(ValueError, match="output_size == vocab_size"):
        RegularizedLSTM(7, 5, output_size=6, tie_weights=True)


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


# ----------------------------------------------------------------------------- NT-ASGD
def test_nt_asgd_triggers_on_the_papers_rule_and_averages_the_iterates():
    p = {"w": np.zeros(3)}
    opt = NTASGD(p, lr=0.5, nonmono=2)
    # Algorithm 1: trigger at check k when k > n and L_k > min(L_0 .. L_{k-n-1}).
    # 3.5 is not above min(5.0); 3.2 is not above min(5.0, 4.0): no trigger yet.
    assert [opt.record(x) for x in (5.0, 4.0, 3.0, 3.5, 3.2)] == [False] * 5
    assert opt.record(4.5) is True      # 4.5 > min(5.0, 4.0, 3.0) = 3.0
    assert opt.averaging and opt.record(9.0) is False   # once
    iterates = []
    for g in (1.0, -2.0, 0.5, 3.0):
        opt.step({"w": np.full(3, g)})
        iterates.append(p["w"].copy())
    assert np.allclose(opt.state["average"]["w"], np.mean(iterates, axis=0), atol=1e-15)
    with opt.evaluation_weights():
        assert np.array_equal(p["w"], opt.state["average"]["w"])
    assert np.array_equal(p["w"], iterates[-1])


def test_nt_asgd_before_the_trigger_is_plain_sgd():
    p, q = {"w": np.ones(4)}, {"w": np.ones(4)}
    a, b = NTASGD(p, lr=0.1, weight_decay=0.01), rnnreg.optim.SGD(q, lr=0.1, weight_decay=0.01)
    for k in range(3):
        g = {"w": np.arange(4.0) * (k + 1)}
        a.step(dict(g))
        b.step(dict(g))
    assert np.array_equal(p["w"], q["w"])
    with a.evaluation_weights():   # nothing averaged yet: the iterate itself
        assert np.array_equal(p["w"], q["w"])


def _stream(n=600, seed=0, V=9):
    rng = np.random.default_rng(seed)
    return (np.arange(n) + rng.integers(0, 2, n)) % V


def test_fit_with_nt_asgd_evaluates_and_ends_with_the_averaged_weights():
    train, val = _stream(800), _stream(300, 1)
    model = RegularizedLSTM(9, 8, seed=0)
    lines = []
    config = TrainConfig(epochs=6, optimizer="nt-asgd", lr=10.0, nonmono=1, progress=False)
    history = fit(model, train, val, config, log=lines.append)
    assert any("averaging" in line for line in lines)
    # The final model is the average (what was evaluated last).
    assert abs(rnnreg.evaluate(model, val) - history["val_loss"][-1]) < 1e-12


def test_nt_asgd_resume_is_exact(tmp_path):
    train, val = _stream(800), _stream(300, 1)
    # lr 10: validation gets worse at epoch 3, so averaging starts before the checkpoint of
    # epoch 3 and its average has to travel through the file.
    config = dict(optimizer="nt-asgd", lr=10.0, nonmono=1, progress=False, variable_bptt=True,
                  bptt=12)
    whole_model = RegularizedLSTM(9, 8, seed=0, zoneout_cell=0.3, activation_reg=1.0)
    whole = fit(whole_model, train, val, TrainConfig(epochs=6, **config), log=lambda _: None)
    path = str(tmp_path / "run.npz")
    first = RegularizedLSTM(9, 8, seed=0, zoneout_cell=0.3, activation_reg=1.0)
    lines = []
    fit(first, train, val, TrainConfig(epochs=4, checkpoint_path=path, **config),
        log=lines.append)
    assert "averaging" in lines[3]
    resumed_model = RegularizedLSTM(9, 8, seed=0, zoneout_cell=0.3, activation_reg=1.0)
    resumed = fit(resumed_model, train, val, TrainConfig(epochs=6, checkpoint_path=path,
                                                         **config),
                  resume_from=path, log=lambda _: None)
    assert resumed["val_loss"] == whole["val_loss"]
    for name in whole_model.params:
        assert np.array_equal(whole_model.params[name], resumed_model.params[name]), name


def test_nt_asgd_refuses_another_optimizers_state():
    p = {"w": np.zeros(2)}
    adam_state = Adam({"w": np.zeros(2)}, lr=0.1).state_dict()
    opt = NTASGD(p, lr=0.1)
    before = opt.state_dict()
    with pytest.raises(ValueError, match="NT-ASGD"):
        opt.load_state_dict(adam_state)
    assert opt.state_dict() == before   # nothing changed
    with pytest.raises(ValueError, match="state"):
        Adam({"w": np.zeros(2)}, lr=0.1).load_state_dict(opt.state_dict())


def test_nt_asgd_needs_validation_data():
    with pytest.raises(ValueError, match="nt-asgd"):
        fit(RegularizedLSTM(9, 8), _stream(), None,
            TrainConfig(epochs=1, optimizer="nt-asgd", progress=False), log=lambda _: None)


# ----------------------------------------------------------------------------- variable BPTT
def test_variable_bptt_lengths_cover_the_stream_around_bptt():
    rng = np.random.default_rng(0)
    lengths = variable_bptt_lengths(100_000, 35, rng)
    assert sum(lengths) == 100_000 and min(lengths) >= 1
    assert min(lengths[:-1]) >= 5
    # 95% around 35, 5% around 17.5 (sd 5): mean 0.95*35 + 0.05*17.5 - 0.5 (int truncation)
    assert abs(np.mean(lengths[:-1]) - (0.95 * 35 + 0.05 * 17.5 - 0.5)) < 0.3
    assert 4.5 < np.std([x for x in lengths if x > 25]) < 6


def test_variable_bptt_scales_each_steps_learning_rate(monkeypatch):
    """The step of a chunk of length L uses lr · L / bptt (Merity et al. 2017, 4.1)."""
    seen = []
    original = rnnreg.optim.SGD.step

    def spy(self, grads):
        seen.append(self.lr)
        return original(self, grads)
    monkeypatch.setattr(rnnreg.optim.SGD, "step", spy)
    config = TrainConfig(epochs=1, optimizer="sgd", lr=0.2, bptt=20, batch_size=2,
                         variable_bptt=True, progress=False, seed=3)
    fit(RegularizedLSTM(9, 8, seed=0), _stream(2000), None, config, log=lambda _: None)
    lengths = variable_bptt_lengths(999, 20, np.random.default_rng(3))
    assert np.allclose(seen, [0.2 * n / 20 for n in lengths])
    assert len(set(seen)) > 3


def test_variable_bptt_is_for_streams_not_sequence_pairs():
    pairs = rnnreg.generate_simple_dataset(6, 9, 16, seed=0)
    with pytest.raises(ValueError, match="variable_bptt"):
        fit(RegularizedLSTM(9, 8), pairs, None, TrainConfig(epochs=1, variable_bptt=True,
                                                             progress=False))


def test_iterate_batches_with_lengths_reads_every_token_once():
    stream = np.arange(201)
    chunks = list(iterate_batches(stream, 4, 10, lengths=[7, 13, 20, 10]))
    assert [c[0].shape[1] for c in chunks] == [7, 13, 20, 10]
    assert np.array_equal(np.concatenate([c[0] for c in chunks], axis=1).ravel(),
                          np.arange(200))


# ----------------------------------------------------------------------------- where users meet them
def test_model_files_and_checkpoints_carry_every_regularizer(tmp_path):
    kwargs = dict(zoneout_hidden=0.1, zoneout_cell=0.5, embedding_keep_prob=0.9,
                  activation_reg=2.0, temporal_activation_reg=1.0, tie_weights=True)
    model = RegularizedLSTM(9, 6, seed=0, **kwargs)
    loaded = load_model(save_model(model, str(tmp_path / "m.npz")))
    assert loaded.config() == model.config()
    tokens = np.arange(6)[None]
    assert np.array_equal(loaded.logits(tokens)[0], model.logits(tokens)[0])


def test_cli_flags_reach_the_model_and_trainer(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "synthetic", "--train-size", "40", "--eval-size", "20",
                 "--epochs", "2", "--hidden", "8", "--zoneout", "0.1", "--zoneout-cell", "0.5",
                 "--embedding-dropout", "0.1", "--ar", "2", "--tar", "1", "--tie-weights",
                 "--optimizer", "nt-asgd", "--lr", "1", "--nonmono", "1", "--quiet",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    history = json.loads((out / "history.json").read_text())
    assert history["model"]["zoneout_hidden"] == 0.1 and history["model"]["zoneout_cell"] == 0.5
    assert history["model"]["embedding_keep_prob"] == pytest.approx(0.9)
    assert history["model"]["tie_weights"] and history["model"]["activation_reg"] == 2.0
    assert history["train_config"]["optimizer"] == "nt-asgd"
    assert load_model(str(out / "train.checkpoint.npz")).tie_weights


@pytest.mark.parametrize("argv, words", [
    (["--zoneout", "1"], "--zoneout"), (["--zoneout-cell", "-0.1"], "--zoneout-cell"),
    (["--embedding-dropout", "1.5"], "--embedding-dropout"), (["--ar", "-1"], "--ar"),
    (["--tar", "inf"], "--tar"), (["--tar", "nan"], "--tar"),
    (["--optimizer", "asgd"], "--optimizer"),
])
def test_cli_refuses_bad_rates_naming_the_flag(argv, words, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "synthetic", "--out", str(tmp_path)] + argv)
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_cli_tying_unequal_sizes_is_one_line(capsys, tmp_path):
    code = main(["train", "--data", "synthetic", "--train-size", "20", "--eval-size", "10",
                 "--epochs", "1", "--hidden", "8", "--embedding", "4", "--tie-weights",
                 "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "embedding_size == hidden_size" in err and "Traceback" not in err


def test_sweeps_can_search_the_new_regularizers():
    from rnnreg.sweeps import parse_grid, sweep_trials
    grid = parse_grid(["zoneout=0,0.1", "tie-weights=false,true", "ar=0,2",
                       "optimizer=adam,nt-asgd", "variable-bptt=false,true"])
    assert len(sweep_trials(grid)) == 32
    with pytest.raises(ValueError, match="zoneout"):
        parse_grid(["zoneout=1.2"])


@pytest.mark.slow
def test_compare_runs_the_zoneout_and_awd_settings(tmp_path, capsys):
    code = main(["compare", "--settings", "zoneout", "awd", "--epochs", "2", "--hidden", "16",
                 "--train-size", "1500", "--eval-size", "600", "--quiet", "--no-progress",
                 "--out", str(tmp_path)])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"zoneout", "awd"}
    assert results["awd"]["model"]["tie_weights"] is True
    assert results["awd"]["train_config"]["optimizer"] == "nt-asgd"
    assert results["zoneout"]["model"]["zoneout_cell"] == 0.5
    assert all(math.isfinite(h["test_loss"]) for h in results.values())
