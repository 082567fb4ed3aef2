"""Any sequence, not only text: real-valued inputs of different lengths, and the classify,
regress and forecast heads — a padded batch gives what each sequence gives alone, gradients
match finite differences and PyTorch (nn.LSTM over packed sequences, plus a Linear head), and
hostile data is refused naming the argument."""

import numpy as np
import pytest

from rnnreg import RegularizedLSTM, load_model, save_model
from rnnreg.gradcheck import numerical_gradient, relative_error
from rnnreg.training import TrainConfig, evaluate, fit

D, H = 3, 5
TASKS = {"classify": 4, "regress": 2, "forecast": 2}


def _model(task, **kwargs):
    return RegularizedLSTM(input_size=D, hidden_size=H, output_size=TASKS[task], task=task, seed=0, **kwargs)


def _batch(task, lengths=(6, 3, 1, 5), seed=0):
    """Padded inputs (N, T, D), lengths, padded targets by task, and the unpadded pieces."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    N, T, width = len(lengths), int(max(lengths)), TASKS[task]
    X = rng.standard_normal((N, T, D))
    Y = {
        "classify": rng.integers(0, width, N),
        "regress": rng.standard_normal((N, width)),
        "forecast": rng.standard_normal((N, T, width)),
    }[task]
    for k, L in enumerate(lengths):  # padding is zero, as the model pads
        X[k, L:] = 0
        if task == "forecast":
            Y[k, L:] = 0
    return X, lengths, Y


def _alone(task, X, lengths, Y, k):
    L = lengths[k]
    return X[k : k + 1, :L], (Y[k : k + 1, :L] if task == "forecast" else Y[k : k + 1])


# ----------------------------------------------------------------------------- padding
PADDING_CASES = [(task, "plain", {}) for task in TASKS] + [
    (
        task,
        "two-ln-zoneout",
        {"num_layers": 2, "use_layer_norm": True, "zoneout_hidden": 0.2, "zoneout_cell": 0.3},
    )
    for task in TASKS
]
PADDING_CASES += [(task, "mean-pooling", {"pooling": "mean"}) for task in ("classify", "regress")]


@pytest.mark.parametrize(
    "task, kwargs",
    [(task, kwargs) for task, _, kwargs in PADDING_CASES],
    ids=[f"{t}-{i}" for t, i, _ in PADDING_CASES],
)
def test_a_padded_batch_gives_what_each_sequence_gives_alone(backend, task, kwargs):
    """Outputs, final states, the loss and every gradient (1e-12, float64), evaluation mode."""
    model = _model(task, **kwargs)
    X, lengths, Y = _batch(task)
    loss, out, (h, c) = model.forward_batch(X, Y, lengths=lengths)
    grads = {k: g.copy() for k, g in model.backward().items()}
    weights = lengths if task == "forecast" else np.ones(len(lengths))
    total = {k: np.zeros_like(g) for k, g in grads.items()}
    losses = []
    for k in range(len(lengths)):
        Xk, Yk = _alone(task, X, lengths, Y, k)
        loss_k, out_k, (h_k, c_k) = model.forward_batch(Xk, Yk)
        got = out[k, : lengths[k]] if task == "forecast" else out[k]
        np.testing.assert_allclose(got, out_k[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(h[:, k], h_k[:, 0], rtol=0, atol=1e-12)  # the last valid step's
        np.testing.assert_allclose(c[:, k], c_k[:, 0], rtol=0, atol=1e-12)
        losses.append(loss_k)
        for name, g in model.backward().items():
            total[name] += weights[k] * g
    assert abs(loss - np.average(losses, weights=weights)) < 1e-12
    for name, g in grads.items():
        np.testing.assert_allclose(g, total[name] / weights.sum(), rtol=0, atol=1e-12, err_msg=name)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"pooling": "mean", "activation_reg": 1.0, "temporal_activation_reg": 0.5},
        {
            "num_layers": 2,
            "dropout_keep_prob": 0.7,
            "variational": True,
            "recurrent_keep_prob": 0.8,
            "zoneout_cell": 0.3,
            "use_layer_norm": True,
            "weight_keep_prob": 0.8,
        },
    ],
    ids=["plain", "mean-ar-tar", "every-mask"],
)
def test_gradients_match_finite_differences(backend, task, kwargs, fixed_masks_loss):
    if "pooling" in kwargs and task == "forecast":
        kwargs = {k: val for k, val in kwargs.items() if k != "pooling"}
    model = _model(task, **kwargs)
    X, lengths, Y = _batch(task, seed=1)
    loss = fixed_masks_loss(model, X, Y, lengths=lengths)
    loss()
    grads = model.backward()
    for name, value in model.params.items():
        assert relative_error(grads[name], numerical_gradient(loss, value)) < 1e-6, name


# ----------------------------------------------------------------------------- PyTorch
@pytest.mark.extras
@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("layers", [1, 2])
def test_loss_and_gradients_equal_pytorch_over_packed_sequences(task, layers):
    """nn.LSTM over pack_padded_sequence and an nn.Linear head given the same weights: the
    loss and every gradient to 1e-10 (float64)."""
    torch = pytest.importorskip("torch", reason="PyTorch is an optional extra")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from rnnreg.interop import _TO_TORCH, _reorder

    model = RegularizedLSTM(
        input_size=D,
        hidden_size=H,
        output_size=TASKS[task],
        task=task,
        num_layers=layers,
        init="pytorch",
        seed=2,
    )
    X, lengths, Y = _batch(task, seed=3)
    loss, _, _ = model.forward_batch(X, Y, lengths=lengths)
    grads = model.backward()
    lstm = torch.nn.LSTM(D, H, num_layers=layers, batch_first=True, dtype=torch.float64)
    head = torch.nn.Linear(H, TASKS[task], dtype=torch.float64)
    p = model.params
    with torch.no_grad():
        for layer in range(layers):
            W = p[f"W{layer}"]
            Din = W.shape[0] - H
            getattr(lstm, f"weight_ih_l{layer}").copy_(torch.from_numpy(_reorder(W[:Din].T, _TO_TORCH, H)))
            getattr(lstm, f"weight_hh_l{layer}").copy_(torch.from_numpy(_reorder(W[Din:].T, _TO_TORCH, H)))
            getattr(lstm, f"bias_ih_l{layer}").copy_(torch.from_numpy(_reorder(p[f"b{layer}"], _TO_TORCH, H)))
            getattr(lstm, f"bias_hh_l{layer}").zero_()
        head.weight.copy_(torch.from_numpy(p["Why"].T))
        head.bias.copy_(torch.from_numpy(p["by"]))
    packed = pack_padded_sequence(
        torch.from_numpy(X), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    out, (h_n, _) = lstm(packed)
    if task == "forecast":
        seq, _ = pad_packed_sequence(out, batch_first=True)
        pred = head(seq)
        mask = torch.from_numpy(np.arange(seq.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)
        target = torch.from_numpy(Y)
        torch_loss = (((pred - target) * mask) ** 2).sum() / (mask.sum() * TASKS[task])
    else:
        pred = head(h_n[-1])
        if task == "classify":
            torch_loss = torch.nn.functional.cross_entropy(pred, torch.from_numpy(Y))
        else:
            torch_loss = torch.nn.functional.mse_loss(pred, torch.from_numpy(Y))
    torch_loss.backward()
    assert abs(loss - torch_loss.item()) < 1e-10
    for layer in range(layers):
        W = p[f"W{layer}"]
        Din = W.shape[0] - H
        # torch's blocks -> ours: undo the order (our block k is torch's _TO_TORCH.index(k))
        order = [_TO_TORCH.index(k) for k in range(4)]
        dWx = _reorder(getattr(lstm, f"weight_ih_l{layer}").grad.numpy(), order, H).T
        dWh = _reorder(getattr(lstm, f"weight_hh_l{layer}").grad.numpy(), order, H).T
        db = _reorder(getattr(lstm, f"bias_ih_l{layer}").grad.numpy(), order, H)
        np.testing.assert_allclose(grads[f"W{layer}"][:Din], dWx, rtol=0, atol=1e-10)
        np.testing.assert_allclose(grads[f"W{layer}"][Din:], dWh, rtol=0, atol=1e-10)
        np.testing.assert_allclose(grads[f"b{layer}"], db, rtol=0, atol=1e-10)
    np.testing.assert_allclose(grads["Why"], head.weight.grad.numpy().T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(grads["by"], head.bias.grad.numpy(), rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- fit and friends
def _ragged(task, n, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 9, n)
    y = rng.integers(0, TASKS["classify"], n)
    X = [rng.standard_normal((L, D)) + 0.5 * y[k] for k, L in enumerate(lengths)]
    targets = {
        "classify": y,
        "regress": np.stack([x.mean(axis=0)[:2] for x in X]),
        "forecast": [np.cumsum(x[:, :2], axis=0) / 4 for x in X],
    }[task]
    return X, targets


@pytest.mark.parametrize("task", list(TASKS))
def test_fit_learns_and_evaluate_reports_the_tasks_metrics(task, tmp_path):
    train, val = _ragged(task, 64, 0), _ragged(task, 16, 1)
    model = _model(task, dropout_keep_prob=0.9, recurrent_keep_prob=0.9, variational=True)
    before = evaluate(model, val)
    history = fit(
        model, train, val, TrainConfig(epochs=8, lr=2e-2, progress=False), test=val, log=lambda line: None
    )
    after = evaluate(model, val)
    names = {"classify": {"accuracy"}, "regress": {"mse", "mae", "rmse"}, "forecast": {"mse", "mae", "rmse"}}[
        task
    ]
    assert set(after) == {"loss"} | names
    assert after["loss"] < before["loss"]
    assert history["test_loss"] == pytest.approx(after["loss"]) and set(history["test_metrics"]) == names
    for name in names:
        assert len(history[f"val_{name}"]) == 8
    if task != "classify":
        assert after["rmse"] == pytest.approx(np.sqrt(after["mse"]))
    # saved and loaded, the model predicts the same
    loaded = load_model(save_model(model, str(tmp_path / "model.npz")))
    X = val[0]
    predicted = model.predict(X)
    again = loaded.predict(X)
    if task == "forecast":
        assert [p.shape for p in predicted] == [(len(x), 2) for x in X]
        assert all(np.array_equal(a, b) for a, b in zip(predicted, again))
    else:
        assert np.array_equal(predicted, again)


def test_early_stopping_watches_a_task_metric_and_restores_its_best():
    train, val = _ragged("classify", 64, 0), _ragged("classify", 16, 1)
    model = _model("classify")
    config = TrainConfig(epochs=12, lr=3e-2, patience=2, monitor="val_accuracy", progress=False)
    history = fit(model, train, val, config, log=lambda line: None)
    best = history["best_epoch"]
    assert history["val_accuracy"][history["epoch"].index(best)] == max(history["val_accuracy"])
    assert evaluate(model, val)["accuracy"] == max(history["val_accuracy"])
    with pytest.raises(ValueError, match="monitor must be one of val_loss, val_accuracy"):
        fit(_model("classify"), train, val, TrainConfig(epochs=1, monitor="val_mae", progress=False))


def test_a_validation_fraction_holds_out_the_last_sequences():
    X, y = _ragged("classify", 40, 0)
    history = fit(
        _model("classify"), (X, y), 0.25, TrainConfig(epochs=1, progress=False), log=lambda line: None
    )
    assert history["val_loss"][0] is not None
    with pytest.raises(ValueError, match="fraction"):
        fit(_model("classify"), (X, y), 1.5, TrainConfig(epochs=1, progress=False))


def test_predict_proba_is_the_softmax_of_the_logits_and_sums_to_one():
    model = _model("classify")
    X, _ = _ragged("classify", 5, 0)
    probs = model.predict_proba(X)
    assert probs.shape == (5, 4) and np.allclose(probs.sum(axis=1), 1)
    assert np.array_equal(np.argmax(probs, axis=1), model.predict(X))
    with pytest.raises(ValueError, match="classify"):
        _model("regress").predict_proba(X)


# ----------------------------------------------------------------------------- hostile data
@pytest.mark.parametrize(
    "case, match",
    [
        ("nan", "NaN or inf"),
        ("features", "must have shape"),
        ("empty", "empty"),
        ("label", "outside"),
        ("label-float", "integer class ids"),
        ("labels-count", "one class id per sequence"),
    ],
)
def test_hostile_sequences_are_refused_naming_the_argument(case, match):
    X, y = _ragged("classify", 6, 0)
    X = [x.copy() for x in X]
    y = y.copy()
    if case == "nan":
        X[2][1, 0] = np.nan
    elif case == "features":
        X[1] = np.ones((4, D + 1))
    elif case == "empty":
        X[0] = np.ones((0, D))
    elif case == "label":
        y[3] = 99
    elif case == "label-float":
        y = y.astype(float)
    elif case == "labels-count":
        y = y[:-1]
    model = _model("classify")
    before = {k: p.copy() for k, p in model.params.items()}
    with pytest.raises((ValueError, TypeError, IndexError), match=match) as info:
        fit(model, (X, y), None, TrainConfig(epochs=1, progress=False))
    assert "train" in str(info.value)
    assert all(np.array_equal(before[k], model.params[k]) for k in before)  # nothing changed


def test_forecast_targets_must_match_their_inputs_lengths():
    X, Y = _ragged("forecast", 4, 0)
    Y[2] = Y[2][:-1]
    with pytest.raises(ValueError, match=r"targets\[2\] has"):
        fit(_model("forecast"), (X, Y), None, TrainConfig(epochs=1, progress=False))


def test_lengths_outside_the_steps_are_refused():
    model = _model("classify")
    X, _, Y = _batch("classify")
    for bad in ([7, 1, 1, 1], [0, 1, 1, 1], [1, 1, 1]):
        with pytest.raises(ValueError, match="lengths"):
            model.forward_batch(X, Y, lengths=np.array(bad))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(embedding_keep_prob=0.9), "real-valued inputs have none"),
        (dict(tie_weights=True), "no embedding to share"),
        (dict(embedding_size=4), "real-valued inputs"),
    ],
)
def test_regularizers_that_cannot_apply_are_refused_saying_why(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model("classify", **kwargs)


def test_real_valued_inputs_need_a_task_and_an_output_size():
    with pytest.raises(TypeError, match="need a task"):
        RegularizedLSTM(input_size=3, hidden_size=4)
    with pytest.raises(TypeError, match="needs output_size"):
        RegularizedLSTM(input_size=3, hidden_size=4, task="classify")
    with pytest.raises(TypeError, match="exactly one"):
        RegularizedLSTM(vocab_size=5, input_size=3, hidden_size=4, task="classify", output_size=2)


# ----------------------------------------------------------------------------- PyTorch export
@pytest.mark.extras
@pytest.mark.parametrize("task, pooling", [("classify", "last"), ("regress", "mean"), ("forecast", "last")])
def test_to_torch_and_back_give_the_same_outputs_on_sequences_of_different_lengths(task, pooling):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional extra")
    from rnnreg import from_torch, to_torch
    from rnnreg.sequences import Standardizer

    kwargs = {} if task == "forecast" else {"pooling": pooling}
    model = RegularizedLSTM(
        input_size=D, hidden_size=H, output_size=TASKS[task], task=task, num_layers=2, seed=4, **kwargs
    )
    model.standardizer = Standardizer(np.array([0.5, -1.0, 2.0]), np.array([2.0, 0.5, 3.0]))
    X, lengths, _ = _batch(task, seed=5)
    _, expected, _ = model.forward_batch(X, lengths=lengths)
    module = to_torch(model)
    with torch.no_grad():
        got = module(torch.from_numpy(X), torch.from_numpy(lengths)).numpy()
    if task == "forecast":  # compare the valid steps (padding's outputs are each side's own)
        for k, L in enumerate(lengths):
            np.testing.assert_allclose(got[k, :L], expected[k, :L], rtol=0, atol=1e-10)
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    back = from_torch(module)
    assert back.model_config == model.model_config
    np.testing.assert_array_equal(back.standardizer.mean, model.standardizer.mean)
    for name, p in model.params.items():
        np.testing.assert_allclose(back.params[name], p, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.extras
def test_from_torch_maps_a_users_sequence_classifier_given_its_task():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional extra")
    from rnnreg import from_torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
            self.head = torch.nn.Linear(H, 4, dtype=torch.float64)

    model = from_torch(Net(), task="classify")
    assert (model.input_size, model.output_size, model.task) == (D, 4, "classify")


# ----------------------------------------------------------------------------- regression losses
@pytest.mark.parametrize("task", ["regress", "forecast"])
@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_mae_and_huber_are_their_formulas_with_their_gradients(task, loss, fixed_masks_loss):
    model = _model(task, regression_loss=loss)
    X, lengths, Y = _batch(task, seed=6)
    Y = Y * 3  # differences on both sides of Huber's delta
    value, out, _ = model.forward_batch(X, Y, lengths=lengths)
    if task == "forecast":
        valid = np.arange(X.shape[1])[None, :] < lengths[:, None]
        diff = (out - Y)[valid]
    else:
        diff = out - Y
    a = np.abs(diff)
    expected = a.mean() if loss == "mae" else np.where(a <= 1, 0.5 * diff**2, a - 0.5).mean()
    assert abs(value - expected) < 1e-12
    fixed = fixed_masks_loss(model, X, Y, lengths=lengths)
    fixed()
    grads = model.backward()
    for name, p in model.params.items():
        assert relative_error(grads[name], numerical_gradient(fixed, p)) < 1e-5, name


def test_a_regression_loss_on_a_classifier_is_refused():
    with pytest.raises(ValueError, match="regression_loss"):
        _model("classify", regression_loss="mae")


@pytest.mark.extras
@pytest.mark.parametrize("task", list(TASKS))
def test_every_mask_equals_pytorch_autograd_of_the_formulas_given_the_same_masks(task):
    """Input dropout (variational), the h(t-1) mask, zoneout of h and c, between-layer and
    output dropout, AR and TAR (over the valid steps), two layers, sequences of different
    lengths: the formulas written in PyTorch (each row frozen past its length) and
    differentiated by autograd, given the masks the model drew, give the model's loss and every
    gradient to 1e-10."""
    torch = pytest.importorskip("torch", reason="PyTorch is an optional extra")
    model = _model(
        task,
        num_layers=2,
        dropout_keep_prob=0.7,
        variational=True,
        recurrent_keep_prob=0.8,
        zoneout_hidden=0.2,
        zoneout_cell=0.3,
        activation_reg=0.7,
        temporal_activation_reg=0.4,
    )
    X, lengths, Y = _batch(task, seed=7)
    loss, _, _ = model.forward_batch(X, Y, training=True, lengths=lengths)
    grads = model.backward()
    trace = model._trace
    N, T = X.shape[:2]
    t_ = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    params = {name: t_(p.copy()).requires_grad_(True) for name, p in model.params.items()}
    ((_, input_mask),) = trace.input_parts
    valid = t_(np.arange(T)[None, :] < lengths[:, None])  # (N, T)
    x = t_(X) * t_(input_mask)
    for layer, layer_trace in enumerate(trace.layers):
        cache = layer_trace.run.caches[0]
        W, b = params[f"W{layer}"], params[f"b{layer}"]
        D = W.shape[0] - H
        h = c = torch.zeros(N, H, dtype=torch.float64)
        outputs = []
        for t in range(T):
            a = x[:, t] @ W[:D] + (h * t_(cache.recurrent_mask)) @ W[D:] + b
            i, f, o = (torch.sigmoid(a[:, k * H : (k + 1) * H]) for k in range(3))
            g = torch.tanh(a[:, 3 * H :])
            c_new = f * c + i * g
            h_new = o * torch.tanh(c_new)
            zc, zh = t_(cache.zoneout_c[:, t]), t_(cache.zoneout_h[:, t])  # 1 past each row's end
            c = zc * c + (1 - zc) * c_new
            h = zh * h + (1 - zh) * h_new
            outputs.append(h)
        ((_, out_mask),) = layer_trace.output_parts
        last_h = torch.stack(outputs, 1)  # the layer's output before dropout (TAR's)
        x = last_h * t_(out_mask)
    if task == "forecast":
        pred = x @ params["Why"] + params["by"]
        m = valid.unsqueeze(-1).double()
        torch_loss = (((pred - t_(Y)) * m) ** 2).sum() / (m.sum() * TASKS[task])
    else:
        last = x[torch.arange(N), t_(lengths - 1)]
        pred = last @ params["Why"] + params["by"]
        if task == "classify":
            torch_loss = torch.nn.functional.cross_entropy(pred, t_(Y))
        else:
            torch_loss = ((pred - t_(Y)) ** 2).mean()
    kept = valid.unsqueeze(-1).double()
    ar = 0.7 * ((x * kept) ** 2).sum() / (kept.sum() * H)  # α · mean over the valid steps
    pairs = valid[:, 1:].unsqueeze(-1).double()
    tar = 0.4 * (((last_h[:, 1:] - last_h[:, :-1]) * pairs) ** 2).sum() / (pairs.sum() * H)
    torch_loss = torch_loss + ar + tar
    torch_loss.backward()
    assert abs(loss - torch_loss.item()) < 1e-10
    for name, p in params.items():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=0, atol=1e-10, err_msg=name)


def test_sampling_is_refused_for_a_sequence_model_saying_why():
    model = _model("classify")
    for call in (lambda: model.generate([1, 2], 5), lambda: model.logits(np.zeros((1, 3), np.int64))):
        with pytest.raises(ValueError, match="needs a language model"):
            call()


def test_nt_asgd_and_a_metric_monitor_train_a_forecaster():
    """NT-ASGD is triggered by the validation loss of a sequence task as of text, and early
    stopping can watch its mean absolute error."""
    X, Y = _ragged("forecast", 32, 0)
    val = _ragged("forecast", 8, 1)
    model = _model("forecast")
    config = TrainConfig(
        epochs=6, optimizer="nt-asgd", lr=0.5, nonmono=1, patience=3, monitor="val_mae", progress=False
    )
    history = fit(model, (X, Y), val, config, log=lambda line: None)
    assert len(history["val_mae"]) == len(history["epoch"]) and history["best_epoch"] is not None
    best = history["epoch"].index(history["best_epoch"])
    assert history["val_mae"][best] == min(history["val_mae"])
