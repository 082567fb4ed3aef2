"""The GRU: its compiled kernels against their NumPy twin (random shapes, both dtypes, every
argument, any number of threads), the public functions on any memory layout and by finite
differences, and RegularizedGRU against PyTorch's nn.GRU and against an independent
implementation of each regularizer's formula given the same masks."""

import itertools
import json
import zlib

import numpy as np
import pytest

import rnnreg
from rnnreg import (
    GRU_LAYER_NORM_PARAMS,
    RegularizedGRU,
    _backend,
    _reference,
    gru_backward,
    gru_forward,
    load_model,
    save_model,
    set_num_threads,
)
from rnnreg.gradcheck import numerical_gradient, relative_error

K = _backend._kernels

# (N, T, D, H): batch 1, hidden 1, T 1; plain-loop and BLAS products; batches several threads
# share by hidden units (N <= 4, H a multiple of 32 from 128, 160 in unequal parts) and by rows.
SHAPES = [
    (1, 1, 1, 1),
    (3, 7, 5, 1),
    (2, 9, 11, 13),
    (6, 5, 7, 10),
    (9, 3, 20, 64),
    (3, 6, 5, 128),
    (2, 5, 7, 160),
]
OPTIONS = list(itertools.product([False, True], repeat=4))  # tokens, layer norm, mask, zoneout


def _arguments(shape, dtype, tokens, ln, mask, zone, seed):
    N, T, D, H = shape
    if ln:
        D, H = max(D, 2), max(H, 4)  # layer norm over one value is degenerate (see the LSTM's test)
    rng = np.random.default_rng(seed)
    f = lambda *s, scale=1.0: (rng.standard_normal(s) * scale).astype(dtype)  # noqa: E731
    x = rng.integers(0, D, (N, T)) if tokens else f(N, T, D)
    kwargs = dict(
        layer_norm={k: f(3 * H) + (1 if k.startswith("gamma") else 0) for k in GRU_LAYER_NORM_PARAMS}
        if ln
        else None,
        recurrent_mask=((rng.random((N, H)) < 0.7) / 0.7).astype(dtype) if mask else None,
        zoneout_h=(rng.random((N, T, H)) < 0.3).astype(dtype) if zone else None,
    )
    args = (x, f(N, H), f(D, 3 * H, scale=0.5), f(H, 3 * H, scale=0.5), f(3 * H), f(H))
    return args, kwargs, f(N, T, H)


def _run(module, args, kwargs, dh):
    cache = module.gru_forward(*args, eps=1e-5, **kwargs)
    return cache, module.gru_backward(dh, cache)


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_kernel_equals_its_numpy_twin(dtype, shape):
    for tokens, ln, mask, zone in OPTIONS:
        seed = zlib.crc32(repr((shape, tokens, ln, mask, zone)).encode())
        args, kwargs, dh = _arguments(shape, dtype, tokens, ln, mask, zone, seed)
        (cache_k, g_k), (cache_r, g_r) = _run(K, args, kwargs, dh), _run(_reference, args, kwargs, dh)
        label = f"tokens={tokens} ln={ln} mask={mask} zone={zone}"
        # float32: backpropagating 128 units through a 1/0.7 mask and 6 steps carries rounding
        # up to 2.4e-5 (measured on the portable build, no FMA); layer norm more (see the LSTM's).
        tol = 1e-12 if dtype == np.float64 else 1e-4
        for name in ("h", "gates", "hn", "hprev"):
            assert getattr(cache_k, name).dtype == dtype
            assert relative_error(getattr(cache_k, name), getattr(cache_r, name)) <= tol, (label, name)
        assert set(g_k) == set(g_r), label
        for name, value in g_r.items():
            if value is None:
                assert g_k[name] is None, (label, name)
                continue
            assert g_k[name].dtype == dtype and g_k[name].shape == value.shape, (label, name)
            assert relative_error(g_k[name], value) <= tol, (label, name)


@pytest.mark.kernels
def test_kernel_and_twin_read_each_others_caches():
    args, kwargs, dh = _arguments((3, 6, 5, 8), np.float64, False, True, True, True, 1)
    cache_k, cache_r = K.gru_forward(*args, **kwargs), _reference.gru_forward(*args, **kwargs)
    for a, b in ((K.gru_backward(dh, cache_r), _reference.gru_backward(dh, cache_k)),):
        for name in a:
            assert relative_error(a[name], b[name]) <= 1e-12, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 35, 81, 256), (1, 35, 81, 256), (3, 9, 5, 160), (9, 20, 40, 64)])
@pytest.mark.parametrize("ln, mask, zone", [(False, False, False), (True, True, False), (False, True, True)])
def test_the_kernels_give_the_same_bits_on_any_number_of_threads(dtype, shape, ln, mask, zone):
    for tokens in (False, True):
        args, kwargs, dh = _arguments(shape, dtype, tokens, ln, mask, zone, sum(shape))
        set_num_threads(1)
        try:
            cache_1, g_1 = _run(K, args, kwargs, dh)
        finally:
            set_num_threads(None)
        cache_n, g_n = _run(K, args, kwargs, dh)
        np.testing.assert_array_equal(cache_n.h, cache_1.h)
        for name, value in g_1.items():
            if value is not None:
                np.testing.assert_array_equal(g_n[name], value, err_msg=name)


@pytest.mark.parametrize("layout", ["strided", "fortran", "readonly"])
def test_the_public_functions_take_any_memory_layout(layout):
    args, kwargs, dh = _arguments((3, 5, 4, 6), np.float64, False, True, True, True, 2)

    def relaid(a):
        if not isinstance(a, np.ndarray):
            return a
        if layout == "strided":
            big = np.empty(a.shape + (2,), a.dtype)
            big[..., 0] = a
            return big[..., 0]
        if layout == "fortran":
            return np.asfortranarray(a)
        out = a.copy()
        out.setflags(write=False)
        return out

    h, cache = gru_forward(*args, **kwargs)
    grads = gru_backward(dh, cache)
    h2, cache2 = gru_forward(
        *map(relaid, args),
        layer_norm={k: relaid(v) for k, v in kwargs["layer_norm"].items()},
        recurrent_mask=relaid(kwargs["recurrent_mask"]),
        zoneout_h=relaid(kwargs["zoneout_h"]),
    )
    np.testing.assert_array_equal(h2, h)
    np.testing.assert_array_equal(gru_backward(relaid(dh), cache2).dWh, grads.dWh)


def test_the_public_functions_refuse_what_does_not_fit_naming_it():
    args, _, dh = _arguments((2, 3, 4, 5), np.float64, False, False, False, False, 3)
    with pytest.raises(ValueError, match="bn"):
        gru_forward(*args[:5], np.zeros(4))
    with pytest.raises(ValueError, match="Wh"):
        gru_forward(args[0], args[1], args[2], np.zeros((5, 12)), args[4], args[5])
    with pytest.raises(ValueError, match="NaN"):
        gru_forward(args[0], args[1], args[2], args[3], np.full(15, np.nan), args[5])
    _, cache = gru_forward(*args)
    with pytest.raises(ValueError, match="cache.hn"):
        gru_backward(dh, cache._replace(hn=np.ones((2, 4, 5))))
    with pytest.raises(TypeError, match="GRUCache"):
        K.gru_backward(dh, dict(cache._asdict()))


@pytest.mark.kernels
@pytest.mark.parametrize("ln, mask, zone", [(False, False, False), (True, True, True), (False, True, True)])
def test_the_public_functions_match_finite_differences(backend, ln, mask, zone):
    (x, h0, Wx, Wh, b, bn), kwargs, dh = _arguments((2, 4, 3, 5), np.float64, False, ln, mask, zone, 4)
    inputs = dict(x=x, h0=h0, Wx=Wx, Wh=Wh, b=b, bn=bn)
    ln_params = kwargs["layer_norm"] or {}

    def loss():
        h, _ = gru_forward(*inputs.values(), **kwargs)
        return float(np.sum(h * dh))

    _, cache = gru_forward(*inputs.values(), **kwargs)
    grads = gru_backward(dh, cache)
    analytic = dict(x=grads.dx, h0=grads.dh0, Wx=grads.dWx, Wh=grads.dWh, b=grads.db, bn=grads.dbn)
    for name, value in inputs.items():
        assert relative_error(analytic[name], numerical_gradient(loss, value)) < 1e-7, name
    for name, value in ln_params.items():
        assert relative_error(grads.layer_norm[name], numerical_gradient(loss, value)) < 1e-7, name


# ----------------------------------------------------------------------------- the model
def _tokens(seed, N=3, T=7, V=11):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


def test_zoneout_of_the_cell_state_is_refused_by_name():
    with pytest.raises(ValueError, match="zoneout_cell.*no cell state"):
        RegularizedGRU(vocab_size=5, hidden_size=4, zoneout_cell=0.3)
    with pytest.raises(ValueError, match="build_model"):
        rnnreg.RegularizedLSTM(vocab_size=5, hidden_size=4, cell="gru")


def test_zoneout_zero_is_the_plain_gru_bit_for_bit():
    x, y = _tokens(0)
    plain = RegularizedGRU(vocab_size=11, hidden_size=8, seed=0)
    zoned = RegularizedGRU(vocab_size=11, hidden_size=8, seed=0)
    cache = K.gru_forward(
        x, np.zeros((3, 8)), *np.split(plain.params["W0"], [11]), plain.params["b0"], plain.params["bn0"]
    )
    cache0 = K.gru_forward(
        x,
        np.zeros((3, 8)),
        *np.split(zoned.params["W0"], [11]),
        zoned.params["b0"],
        zoned.params["bn0"],
        zoneout_h=np.zeros((3, 7, 8)),
    )
    np.testing.assert_array_equal(cache.h, cache0.h)
    g, g0 = K.gru_backward(np.ones((3, 7, 8)), cache), K.gru_backward(np.ones((3, 7, 8)), cache0)
    for name in g:
        if g[name] is not None:
            np.testing.assert_array_equal(g[name], g0[name], err_msg=name)


REGULARIZED = [
    dict(recurrent_keep_prob=0.7),
    dict(zoneout_hidden=0.3),
    dict(weight_keep_prob=0.7),
    dict(use_layer_norm=True),
    dict(activation_reg=0.5, temporal_activation_reg=0.3),
    dict(
        num_layers=2,
        use_layer_norm=True,
        recurrent_keep_prob=0.8,
        zoneout_hidden=0.2,
        weight_keep_prob=0.8,
        input_weight_keep_prob=0.9,
    ),
]


@pytest.mark.parametrize("kwargs", REGULARIZED, ids=lambda k: ",".join(k))
def test_model_gradients_match_finite_differences(backend, kwargs, fixed_masks_loss):
    model = RegularizedGRU(vocab_size=11, hidden_size=5, embedding_size=4, seed=1, **kwargs)
    x, y = _tokens(1, N=2, T=5)
    loss = fixed_masks_loss(model, x, y)
    loss()
    model.backward()
    grads = dict(model.grads)
    for name, value in model.params.items():
        assert relative_error(grads[name], numerical_gradient(loss, value)) < 1e-6, name


def _independent_loss(model, x, y):
    """The training loss of the model's last training pass, computed again from the GRU's
    formula (rnnreg._conventions) in plain NumPy with the masks that pass drew: the recurrent
    mask, the zoneout weights and the dropped weights the kernels were given, AR and TAR."""
    config, p = model.model_config, model.params
    trace = model._trace
    h_in = p["embedding"][x] if config.embedding_size else np.eye(config.vocab_size)[x]
    H = config.hidden_size
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731

    def ln(a, gamma, beta):
        mu = a.mean(-1, keepdims=True)
        var = ((a - mu) ** 2).mean(-1, keepdims=True)
        return (a - mu) / np.sqrt(var + 1e-5) * gamma + beta

    for layer, layer_trace in enumerate(trace.layers):
        cache = layer_trace.run.caches[0]
        Wx, Wh = cache.Wx, cache.Wh  # after weight-drop, as the kernel got them
        W = p[f"W{layer}"]
        for part, saved in layer_trace.weight_parts:  # the masks: W ⊙ M exactly
            name = type(part).__name__
            if name == "WeightDrop":
                np.testing.assert_array_equal(Wh, W[-H:] * saved)
            if name == "InputWeightDrop":
                np.testing.assert_array_equal(Wx, W[:-H] * saved)
        b, bn = p[f"b{layer}"], p[f"bn{layer}"]
        m = cache.recurrent_mask if cache.recurrent_mask is not None else 1.0
        N, T = x.shape
        h = np.zeros((N, H))
        outs = []
        for t in range(T):
            X = h_in[:, t] @ Wx
            R = (h * m) @ Wh
            if config.use_layer_norm:
                X = ln(X, p[f"ln{layer}.gamma_x"], p[f"ln{layer}.beta_x"])
                R = ln(R, p[f"ln{layer}.gamma_h"], p[f"ln{layer}.beta_h"])
            r = sig(X[:, :H] + R[:, :H] + b[:H])
            z = sig(X[:, H : 2 * H] + R[:, H : 2 * H] + b[H : 2 * H])
            n = np.tanh(X[:, 2 * H :] + b[2 * H :] + r * (R[:, 2 * H :] + bn))
            new = (1 - z) * n + z * h
            if cache.zoneout_h is not None:
                u = cache.zoneout_h[:, t]
                new = u * h + (1 - u) * new
            h = new
            outs.append(h)
        h_in = np.stack(outs, axis=1)
    logits = h_in @ p["Why"] + p["by"]
    logits -= logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    loss = -np.take_along_axis(logp, y[..., None], -1).mean()
    loss += config.activation_reg * np.mean(h_in**2)
    if config.temporal_activation_reg:
        loss += config.temporal_activation_reg * np.mean((h_in[:, 1:] - h_in[:, :-1]) ** 2)
    return loss


@pytest.mark.parametrize("kwargs", REGULARIZED, ids=lambda k: ",".join(k))
def test_each_regularizer_is_its_formula_given_the_same_masks(kwargs):
    model = RegularizedGRU(vocab_size=11, hidden_size=6, embedding_size=5, seed=2, **kwargs)
    x, y = _tokens(2)
    loss = model.forward_batch(x, y, training=True)[0]
    assert loss == pytest.approx(_independent_loss(model, x, y), rel=1e-12)


def test_the_masks_are_what_each_part_draws():
    model = RegularizedGRU(vocab_size=11, hidden_size=6, seed=3, recurrent_keep_prob=0.6, zoneout_hidden=0.4)
    x, y = _tokens(3, N=40, T=30)
    model.forward_batch(x, y, training=True)
    cache = model._trace.layers[0].run.caches[0]
    assert set(np.unique(cache.recurrent_mask)) <= {0.0, 1 / 0.6}
    assert abs((cache.recurrent_mask > 0).mean() - 0.6) < 0.1  # 240 draws
    assert set(np.unique(cache.zoneout_h)) <= {0.0, 1.0} and abs(cache.zoneout_h.mean() - 0.4) < 0.03
    model.forward_batch(x, y, training=False)  # evaluation: the expectation, no mask
    cache = model._trace.layers[0].run.caches[0]
    assert cache.recurrent_mask is None and np.all(cache.zoneout_h == 0.4)


def test_a_gru_trains_saves_loads_and_samples(tmp_path):
    corpus = rnnreg.CharCorpus.from_text("abcabcabdabcabcabd\n" * 30)
    model = RegularizedGRU(corpus.vocab_size, 16, seed=0, recurrent_keep_prob=0.9, dtype="float32")
    history = rnnreg.fit(
        model,
        corpus.train,
        corpus.val,
        rnnreg.TrainConfig(epochs=3, lr=0.01, progress=False),
        log=lambda s: None,
    )
    assert history["val_loss"][-1] < history["val_loss"][0]
    model.vocabulary = corpus.vocabulary
    loaded = load_model(save_model(model, str(tmp_path / "gru.npz")))
    assert type(loaded) is RegularizedGRU and loaded.config() == model.config()
    tokens = corpus.train[:20][None, :]
    np.testing.assert_array_equal(loaded.logits(tokens)[0], model.logits(tokens)[0])
    text = loaded.generate("ab", 30, rng=0)
    assert len(text) == 30 and set(text) <= set(corpus.chars)
    loss, h = model.forward(corpus.train[:10], corpus.train[1:11], np.zeros((16, 1), np.float32))
    assert h.shape == (16, 1) and np.isfinite(loss)


def test_a_gru_classifies_variable_length_sequences_as_each_alone():
    rng = np.random.default_rng(4)
    model = RegularizedGRU(input_size=3, hidden_size=8, output_size=2, task="classify", seed=0)
    X = rng.standard_normal((3, 6, 3))
    lengths = np.array([6, 2, 4])
    _, logits, (h,) = model.forward_batch(X, lengths=lengths)
    for row, length in enumerate(lengths):
        _, alone, (h_alone,) = model.forward_batch(X[row : row + 1, :length])
        np.testing.assert_allclose(logits[row], alone[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(h[0, row], h_alone[0, 0], rtol=0, atol=1e-13)


# ----------------------------------------------------------------------------- PyTorch
def _torch_gru(model, torch):
    """nn.GRU with the model's weights (float64)."""
    H, L = model.hidden_size, model.num_layers
    gru = torch.nn.GRU(
        model.params["W0"].shape[0] - H, H, num_layers=L, batch_first=True, dtype=torch.float64
    )
    with torch.no_grad():
        for layer in range(L):
            W = model.params[f"W{layer}"]
            D = W.shape[0] - H
            getattr(gru, f"weight_ih_l{layer}").copy_(torch.from_numpy(W[:D].T))
            getattr(gru, f"weight_hh_l{layer}").copy_(torch.from_numpy(W[D:].T))
            getattr(gru, f"bias_ih_l{layer}").copy_(torch.from_numpy(model.params[f"b{layer}"]))
            bias_hh = np.concatenate([np.zeros(2 * H), model.params[f"bn{layer}"]])
            getattr(gru, f"bias_hh_l{layer}").copy_(torch.from_numpy(bias_hh))
    return gru


@pytest.mark.extras
@pytest.mark.parametrize("layers", [1, 2])
def test_the_model_equals_nn_gru_with_carried_state_and_every_gradient(layers):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional extra")
    model = RegularizedGRU(
        input_size=4, hidden_size=6, output_size=3, task="forecast", num_layers=layers, init="pytorch", seed=5
    )
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((3, 7, 4)), rng.standard_normal((3, 7, 3))
    h0 = rng.standard_normal((layers, 3, 6))
    dh_final = rng.standard_normal((layers, 3, 6))
    loss, out, (h_n,) = model.forward_batch(X, Y, state=(h0,), training=True)
    grads = model.backward(dh_final)
    gru, head = _torch_gru(model, torch), torch.nn.Linear(6, 3, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(model.params["Why"].T))
        head.bias.copy_(torch.from_numpy(model.params["by"]))
    h0_t = torch.from_numpy(h0).requires_grad_(True)
    seq, h_n_t = gru(torch.from_numpy(X), h0_t)
    pred = head(seq)
    loss_t = ((pred - torch.from_numpy(Y)) ** 2).mean()
    np.testing.assert_allclose(out, pred.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n, h_n_t.detach().numpy(), rtol=0, atol=1e-12)
    assert loss == pytest.approx(loss_t.item(), abs=1e-12)
    (loss_t + (h_n_t * torch.from_numpy(dh_final)).sum()).backward()
    for layer in range(layers):
        D = model.params[f"W{layer}"].shape[0] - 6
        torch_W = np.concatenate(
            [
                getattr(gru, f"weight_ih_l{layer}").grad.numpy().T,
                getattr(gru, f"weight_hh_l{layer}").grad.numpy().T,
            ]
        )
        np.testing.assert_allclose(grads[f"W{layer}"], torch_W, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            grads[f"b{layer}"], getattr(gru, f"bias_ih_l{layer}").grad.numpy(), atol=1e-12
        )
        np.testing.assert_allclose(
            grads[f"bn{layer}"], getattr(gru, f"bias_hh_l{layer}").grad.numpy()[12:], atol=1e-12
        )
        assert D > 0
    np.testing.assert_allclose(grads["Why"], head.weight.grad.numpy().T, rtol=0, atol=1e-12)


@pytest.mark.extras
def test_a_trained_gru_exports_to_pytorch_and_back_with_the_same_logits():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional extra")
    corpus = rnnreg.CharCorpus.from_text("the cat sat on the mat.\n" * 40)
    model = RegularizedGRU(
        corpus.vocab_size, 12, embedding_size=6, num_layers=2, dropout_keep_prob=0.8, seed=0
    )
    rnnreg.fit(
        model, corpus.train, corpus.val, rnnreg.TrainConfig(epochs=2, progress=False), log=lambda s: None
    )
    module = rnnreg.to_torch(model)
    assert isinstance(module.gru, torch.nn.GRU)
    tokens = corpus.val[None, :30]
    logits, h_n = module(torch.from_numpy(tokens))
    expected, (h,) = model.logits(tokens)
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(h_n.detach().numpy(), h, rtol=0, atol=1e-10)
    back = rnnreg.from_torch(module)
    assert type(back) is RegularizedGRU
    for name, value in model.params.items():
        np.testing.assert_allclose(back.params[name], value, rtol=0, atol=1e-15, err_msg=name)
    with pytest.raises(ValueError, match="zoneout"):
        rnnreg.to_torch(RegularizedGRU(5, 4, zoneout_hidden=0.1))


def test_a_sweep_runs_over_the_cell(tmp_path, capsys):
    """``--grid cell=lstm,gru``: each trial trains its own cell, and the table names it."""
    from rnnreg.cli import main

    code = main(
        [
            "sweep",
            "--grid",
            "cell=lstm,gru",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--train-size",
            "1500",
            "--eval-size",
            "400",
            "--bptt",
            "10",
            "--out",
            str(tmp_path / "sweep"),
            "--no-progress",
            "--jobs",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "| gru |" in out and "| lstm |" in out
    records = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    cells = sorted(r["params"]["cell"] for r in records["trials"] if "best_val_loss" in r)
    assert cells == ["gru", "lstm"]


@pytest.mark.extras
def test_a_gru_of_variable_length_sequences_exports_and_comes_back():
    """The exported module runs packed sequences through nn.GRU: the same outputs as the model
    on a batch of different lengths (from_torch checks it on its probe, too)."""
    torch = pytest.importorskip("torch", reason="PyTorch is an optional extra")
    model = RegularizedGRU(
        input_size=3,
        hidden_size=8,
        output_size=2,
        task="classify",
        num_layers=2,
        pooling="mean",
        init="pytorch",
        seed=7,
    )
    X = np.random.default_rng(8).standard_normal((3, 6, 3))
    lengths = np.array([6, 2, 4])
    module = rnnreg.to_torch(model)
    with torch.no_grad():
        got = module(torch.from_numpy(X), torch.from_numpy(lengths)).numpy()
    np.testing.assert_allclose(got, model.forward_batch(X, lengths=lengths)[1], rtol=0, atol=1e-12)
    back = rnnreg.from_torch(module)
    assert type(back) is RegularizedGRU and back.pooling == "mean" and back.num_layers == 2
    for name, value in model.params.items():
        np.testing.assert_allclose(back.params[name], value, rtol=0, atol=1e-15, err_msg=name)


def test_a_gru_refuses_a_cell_state_gradient_it_has_no_place_for():
    model = RegularizedGRU(12, 8, seed=0)
    x = np.random.default_rng(0).integers(0, 12, (2, 5))
    model.forward_batch(x, x, training=True)
    with pytest.raises(ValueError, match="dc_final.*GRU keeps only h"):
        model.backward(dc_final=np.ones((1, 2, 8)))
