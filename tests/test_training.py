"""The trainer (rnnreg.training): batches, truncated and variable-length BPTT, weight decay,
clipping, schedules, NT-ASGD in fit, evaluation."""

import math

import numpy as np
import pytest

import rnnreg
from rnnreg import RegularizedLSTM, TrainConfig, compute_l2_penalty, fit, generate_simple_dataset
from rnnreg.checkpoint import load_checkpoint
from rnnreg.gradcheck import numerical_gradient, relative_error
from rnnreg.optim import SGD, Adam, AdamW, clip_grad_norm, cosine_lr, l2_gradient
from rnnreg.training import TrainingError, evaluate, iterate_batches, variable_bptt_lengths


def _small_task(seed=1):
    train = generate_simple_dataset(10, 12, 120, seed=seed)
    val = generate_simple_dataset(10, 12, 40, seed=seed + 100)
    return train, val


# ----------------------------------------------------------------------------- weight decay
def test_l2_penalty_and_gradient_are_consistent():
    """Coupled L2: λ/2·Σw² in the loss, λ·w in the gradient — checked by finite differences
    through the whole model."""
    model = RegularizedLSTM(7, 5, seed=0, use_layer_norm=True)
    inputs, targets = generate_simple_dataset(4, 7, 3, seed=1)
    lam = 0.3
    decay = model.decay_parameter_names()
    assert set(decay) == {"W0", "Why"}  # no biases, no layer-norm gains

    def loss():
        ce = model.forward_batch(inputs, targets)[0]
        return ce + compute_l2_penalty([model.params[n] for n in decay], lam)

    loss()
    grads = model.backward()
    extra = l2_gradient(model.params, lam, decay)
    for name, value in model.params.items():
        analytic = grads[name] + extra.get(name, 0)
        assert relative_error(analytic, numerical_gradient(loss, value)) < 1e-7, name


def test_coupled_sgd_step_equals_gradient_of_penalized_loss():
    params = {"W": np.array([[1.0, -2.0]]), "b": np.array([3.0])}
    grads = {"W": np.array([[0.5, 0.5]]), "b": np.array([1.0])}
    SGD(params, lr=0.1, weight_decay=0.2).step(grads)
    np.testing.assert_allclose(params["W"], [[1 - 0.1 * (0.5 + 0.2), -2 - 0.1 * (0.5 - 0.4)]])
    np.testing.assert_allclose(params["b"], [3 - 0.1 * 1.0])  # bias not decayed


def test_adamw_decay_is_decoupled():
    params = {"W": np.full((2, 2), 2.0), "b": np.full(2, 2.0)}
    zero = {"W": np.zeros((2, 2)), "b": np.zeros(2)}
    opt = AdamW(params, lr=0.1, weight_decay=0.5)
    opt.step(zero)
    np.testing.assert_allclose(params["W"], 2.0 * (1 - 0.1 * 0.5))
    np.testing.assert_allclose(params["b"], 2.0)


def test_adam_matches_the_textbook_update():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5)
    params = {"w": w0.copy()}
    opt = Adam(params, lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    m = np.zeros(5)
    s = np.zeros(5)
    w = w0.copy()
    for t in range(1, 6):
        g = rng.standard_normal(5)
        opt.step({"w": g})
        m = 0.9 * m + 0.1 * g
        s = 0.99 * s + 0.01 * g * g
        w = w - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(s / (1 - 0.99**t)) + 1e-8)
    np.testing.assert_allclose(params["w"], w, rtol=1e-12)


def test_sgd_momentum():
    params = {"w": np.array([1.0])}
    opt = SGD(params, lr=0.1, momentum=0.9)
    opt.step({"w": np.array([1.0])})
    opt.step({"w": np.array([1.0])})
    np.testing.assert_allclose(params["w"], [1 - 0.1 - 0.1 * 1.9])


def test_clip_grad_norm_returns_the_norm_and_clips():
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    assert math.sqrt(grads["a"][0] ** 2 + grads["b"][0] ** 2) == pytest.approx(1.0)
    small = {"a": np.array([0.3])}
    assert clip_grad_norm(small, 1.0) == pytest.approx(0.3)
    assert small["a"][0] == 0.3


def test_cosine_schedule():
    lr = cosine_lr(1.0, 10, warmup_epochs=2)
    assert lr(0) == 0.5 and lr(1) == 1.0 and lr(2) == 1.0
    assert lr(10) == pytest.approx(0.0) and 0 < lr(6) < 1


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_training_cuts_held_out_loss(optimizer):
    train, val = _small_task()
    model = RegularizedLSTM(12, 24, seed=0, dropout_keep_prob=0.9, use_layer_norm=True)
    start = evaluate(model, val)
    lr = {"sgd": 0.5, "adam": 1e-2, "adamw": 1e-2}[optimizer]
    history = fit(
        model,
        train,
        val,
        TrainConfig(epochs=12, batch_size=16, lr=lr, optimizer=optimizer, weight_decay=1e-4, progress=False),
        log=None,
    )
    assert start > 2.3
    assert history["best_val_loss"] < 0.6 * start
    assert len(history["val_loss"]) == 12


def test_truncated_bptt_on_a_text_stream_learns_and_batches_are_contiguous():
    text = np.array(list(b"abcdefgh" * 200)) - ord("a")
    chunks = list(iterate_batches(text, 4, 10))
    assert chunks[0][2] and not any(new for _, _, new in chunks[1:])
    # consecutive chunks continue each stream
    first, second = chunks[0][0], chunks[1][0]
    assert all((second[:, 0] - first[:, -1]) % 8 == 1)
    model = RegularizedLSTM(8, 16, seed=0)
    history = fit(
        model,
        text[:1200],
        text[1200:],
        TrainConfig(epochs=4, batch_size=4, bptt=10, lr=2e-2, progress=False),
        log=None,
    )
    assert history["val_loss"][-1] < 0.2


def test_same_seed_same_history():
    train, val = _small_task()
    runs = []
    for _ in range(2):
        model = RegularizedLSTM(12, 16, seed=3, dropout_keep_prob=0.8, recurrent_keep_prob=0.9)
        h = fit(model, train, val, TrainConfig(epochs=3, batch_size=16, seed=5, progress=False), log=None)
        runs.append((h["train_loss"], h["val_loss"], model.state_dict()))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    for name in runs[0][2]:
        np.testing.assert_array_equal(runs[0][2][name], runs[1][2][name])


def test_early_stopping_restores_best_weights():
    train, val = _small_task()
    model = RegularizedLSTM(12, 48, seed=0)
    # overfit a tiny training set so that validation loss turns up
    tiny = (train[0][:20], train[1][:20])
    history = fit(
        model, tiny, val, TrainConfig(epochs=80, batch_size=4, lr=2e-2, patience=3, progress=False), log=None
    )
    assert history["stopped_epoch"] is not None and history["stopped_epoch"] < 79
    assert history["restored_best"]
    assert evaluate(model, val) == pytest.approx(history["best_val_loss"], rel=1e-9)


def test_non_finite_gradient_stops_restores_best_and_keeps_the_checkpoint(tmp_path, poisoned_lstm):
    train, val = _small_task()
    model = poisoned_lstm(12, 16, seed=0)
    model.healthy_steps = 8 * 3 + 2  # three clean epochs of 8 batches, then NaN
    path = str(tmp_path / "ck.npz")
    with pytest.raises(TrainingError, match="non-finite gradient norm at epoch 3") as info:
        fit(
            model,
            train,
            val,
            TrainConfig(epochs=10, batch_size=16, patience=5, progress=False, checkpoint_path=path),
            log=None,
        )
    assert "best weights were restored" in str(info.value)
    history = info.value.args[1]
    assert len(history["val_loss"]) == 3
    assert np.isfinite(model.params["W0"]).all()
    assert evaluate(model, val) == pytest.approx(history["best_val_loss"], rel=1e-9)
    assert load_checkpoint(path)["epoch"] == 2  # the last completed epoch, intact


def test_global_norm_of_large_float32_gradients_does_not_overflow():
    from rnnreg.optim import global_norm

    grads = {"w": np.full(4, 1e30, np.float32)}
    assert global_norm(grads) == pytest.approx(2e30, rel=1e-6)


def test_layer_norm_lstm_with_dropout_keeps_gradients_tame():
    """Regression: dropping whole one-hot tokens under layer norm made the cell state constant
    across units, and gradients reached 1e22. One-hot inputs are not dropped."""
    from rnnreg.data import load_stdlib_docstrings

    corpus = load_stdlib_docstrings(train_chars=3000, eval_chars=100)
    inputs, targets, _ = next(iterate_batches(corpus.train, 8, 35, np.random.default_rng(0)))
    model = RegularizedLSTM(
        corpus.vocab_size, 64, dropout_keep_prob=0.6, use_layer_norm=True, seed=0, dtype=np.float32
    )
    model.forward_batch(inputs, targets, training=True)
    grads = model.backward()
    assert max(float(np.abs(g).max()) for g in grads.values()) < 10
    assert model._trace.input_parts == ()  # one-hot input: not dropped
    assert model._trace.layers[0].output_parts[0][1] is not None  # the output is


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


def test_nt_asgd_needs_validation_data():
    with pytest.raises(ValueError, match="nt-asgd"):
        fit(
            RegularizedLSTM(9, 8),
            _stream(),
            None,
            TrainConfig(epochs=1, optimizer="nt-asgd", progress=False),
            log=lambda _: None,
        )


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
    config = TrainConfig(
        epochs=1, optimizer="sgd", lr=0.2, bptt=20, batch_size=2, variable_bptt=True, progress=False, seed=3
    )
    fit(RegularizedLSTM(9, 8, seed=0), _stream(2000), None, config, log=lambda _: None)
    lengths = variable_bptt_lengths(999, 20, np.random.default_rng(3))
    assert np.allclose(seen, [0.2 * n / 20 for n in lengths])
    assert len(set(seen)) > 3


def test_variable_bptt_is_for_streams_not_sequence_pairs():
    pairs = rnnreg.generate_simple_dataset(6, 9, 16, seed=0)
    with pytest.raises(ValueError, match="variable_bptt"):
        fit(RegularizedLSTM(9, 8), pairs, None, TrainConfig(epochs=1, variable_bptt=True, progress=False))


def test_iterate_batches_with_lengths_reads_every_token_once():
    stream = np.arange(201)
    chunks = list(iterate_batches(stream, 4, 10, lengths=[7, 13, 20, 10]))
    assert [c[0].shape[1] for c in chunks] == [7, 13, 20, 10]
    assert np.array_equal(np.concatenate([c[0] for c in chunks], axis=1).ravel(), np.arange(200))


def test_resuming_a_run_that_stopped_early_gives_the_same_result(tmp_path):
    """A finished run stays finished: resuming it neither trains on nor changes its result."""
    train = generate_simple_dataset(10, 12, 96, seed=1)
    val = generate_simple_dataset(10, 12, 32, seed=2)
    test = generate_simple_dataset(10, 12, 32, seed=3)
    path = str(tmp_path / "run.npz")
    config = TrainConfig(epochs=40, patience=1, lr=3e-2, progress=False, checkpoint_path=path)
    model = RegularizedLSTM(12, 16, seed=0)
    first = fit(model, train, val, config, test=test, log=lambda line: None)
    assert first["stopped_epoch"] is not None and first["stopped_epoch"] < 39
    lines = []
    again = RegularizedLSTM(12, 16, seed=0)
    second = fit(again, train, val, config, test=test, resume_from=path, log=lines.append)
    assert any("stopped early" in line and "nothing to resume" in line for line in lines)
    for key in ("epoch", "val_loss", "best_epoch", "stopped_epoch", "test_loss"):
        assert second[key] == first[key], key
    for name in model.params:
        assert np.array_equal(again.params[name], model.params[name]), name


def test_verbose_levels_print_epoch_lines_with_the_total_and_an_eta(capsys):
    train, val = _small_task()
    fit(RegularizedLSTM(12, 8, seed=0), train, val, TrainConfig(epochs=3), verbose=2)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch")]
    assert len(lines) == 3 and lines[0].startswith("epoch   0/3") and "ETA" in lines[0]
    assert "ETA" not in lines[-1]  # nothing left
    fit(RegularizedLSTM(12, 8, seed=0), train, val, TrainConfig(epochs=2), verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="verbose"):
        fit(RegularizedLSTM(12, 8, seed=0), train, val, TrainConfig(epochs=1), verbose=3)


def test_auto_verbosity_is_silent_when_piped_and_shows_in_a_notebook(monkeypatch):
    from rnnreg import training

    monkeypatch.setattr(training, "_in_notebook", lambda: False)
    monkeypatch.setattr(training.sys.stderr, "isatty", lambda: False, raising=False)
    assert training._verbosity("auto") == 0
    monkeypatch.setattr(training, "_in_notebook", lambda: True)  # a Jupyter kernel
    assert training._verbosity("auto") == 1
    assert training._Progress(3, "epoch 0", True).enabled


@pytest.mark.slow
def test_a_notebook_shows_the_progress_bar_and_the_epoch_lines():
    """fit's default in a Jupyter kernel: a tqdm widget per epoch and a line per epoch (run in a
    real kernel through nbclient, when it is installed — CI installs it)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset\n"
            "train = generate_simple_dataset(10, 12, 128, seed=1)\n"
            "val = generate_simple_dataset(10, 12, 32, seed=2)\n"
            "history = fit(RegularizedLSTM(12, 16, seed=0), train, val, TrainConfig(epochs=2))\n"
        )
    ]
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    widgets = [
        o
        for o in outputs
        if o.get("output_type") == "display_data"
        and "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert len(widgets) == 2  # one bar per epoch
    assert "epoch   0/2" in text and "epoch   1/2" in text


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
@pytest.mark.parametrize("layer_norm,zoneout", [(False, 0.0), (True, 0.0), (False, 0.3)])
def test_documents_read_side_by_side_give_the_loss_of_reading_each_alone(dtype, tol, layer_norm, zoneout):
    """Rows that finish take the next document (batch 3: most documents start in a row another
    one has left, in the middle of the reading), over two layers, with layer norm or zoneout."""
    rng = np.random.default_rng(0)
    lengths = [1, 2, 3, 40, 71, 5, 140, 36, 37, 9, 2, 200]  # around bptt, shorter, a lone token
    stream = rng.integers(0, 12, sum(lengths))
    starts = np.cumsum([0] + lengths[:-1])
    model = RegularizedLSTM(
        12,
        16,
        seed=1,
        dtype=dtype,
        use_layer_norm=layer_norm,
        num_layers=2,
        zoneout_hidden=zoneout,
        zoneout_cell=zoneout,
    )
    total = count = 0
    for begin, end in zip(starts, np.append(starts[1:], stream.size)):
        doc, state = stream[begin:end], None
        for k in range(0, doc.size - 1, 35):
            piece = doc[k : k + 36]
            if piece.size >= 2:
                loss, _, state = model.forward_batch(piece[None, :-1], piece[None, 1:], state)
                total += loss * (piece.size - 1)
                count += piece.size - 1
    for batch_size in (1, 3, 8, 64):
        stats = {}
        got = evaluate(model, stream, batch_size, 35, starts=starts, stats=stats)
        assert abs(got - total / count) <= tol * total / count, batch_size
        assert stats["max_abs_c"] > 0


def test_a_long_stream_read_as_parallel_streams_is_the_documented_approximation():
    rng = np.random.default_rng(3)
    stream = (np.arange(2003) + rng.integers(0, 2, 2003)) % 12
    model = RegularizedLSTM(12, 16, seed=2)
    fit(model, stream, None, TrainConfig(epochs=2), verbose=0)
    exact = evaluate(model, stream, 8, 35)
    approx = evaluate(model, stream, 8, 35, as_streams=True)
    # by hand: the 8 streams of training's layout, state carried, then the leftover tokens
    total = count = 0
    state = None
    for inputs, targets, new in iterate_batches(stream, 8, 35):
        loss, _, state = model.forward_batch(inputs, targets, None if new else state)
        total, count = total + loss * targets.size, count + targets.size
    rest = stream[count:]
    loss, _, _ = model.forward_batch(rest[None, :-1], rest[None, 1:])
    total, count = total + loss * (rest.size - 1), count + rest.size - 1
    assert count == stream.size - 1 and approx == pytest.approx(total / count, rel=1e-12)
    assert approx != exact and abs(approx - exact) < 0.05 * exact
    history = fit(
        RegularizedLSTM(12, 16, seed=2),
        stream,
        stream[:500],
        TrainConfig(epochs=1, eval_as_streams=True),
        verbose=0,
    )
    assert np.isfinite(history["val_loss"][0])
