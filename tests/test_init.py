"""Initialization schemes: each draws what it documents, from the model's seed."""

import numpy as np
import pytest

from rnnreg import RegularizedLSTM
from rnnreg.init import DEFAULT_FORGET_BIAS, INIT_SCHEMES, glorot_uniform, orthogonal

V, H, E = 60, 64, 24


def _model(init, **kwargs):
    return RegularizedLSTM(V, H, seed=kwargs.pop("seed", 0), init=init, **kwargs)


def _uniform_stats(a, bound):
    """A sample looks U(±bound): inside the bounds, mean ~0, variance ~bound²/3 (5 SE)."""
    a = a.ravel()
    assert np.abs(a).max() <= bound
    assert abs(a.mean()) < 5 * bound / np.sqrt(3 * a.size)
    var = bound**2 / 3
    assert abs(a.var() - var) < 5 * var * np.sqrt(0.8 / a.size)  # Var(x²) = 4·bound⁴/45 for U


@pytest.mark.parametrize("init", INIT_SCHEMES)
def test_every_scheme_is_seeded(init):
    a, b, c = _model(init, seed=1), _model(init, seed=1), _model(init, seed=2)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(a.params["W0"], c.params["W0"])


def test_uniform_scheme():
    model = _model("uniform", forget_bias=1.0, embedding_size=E)
    W, b = model.params["W0"], model.params["b0"]
    _uniform_stats(W, 1 / np.sqrt(H))
    assert (b[H : 2 * H] == 1).all() and (np.delete(b, np.s_[H : 2 * H]) == 0).all()
    _uniform_stats(model.params["Why"], np.sqrt(6 / (H + V)))
    assert (model.params["by"] == 0).all()
    assert abs(model.params["embedding"].std() - 0.1) < 0.005
    assert (_model("uniform", forget_bias=0.0).params["b0"] == 0).all()


def test_uniform_scheme_with_forget_bias_1_draws_the_weights_of_earlier_releases():
    """The same seed gives the same weights as before schemes existed (checkpoints, results)."""
    rng = np.random.default_rng(7)
    bound = 1 / np.sqrt(H)
    W = rng.uniform(-bound, bound, (V + H, 4 * H))
    limit = np.sqrt(6.0 / (H + V))
    Why = rng.uniform(-limit, limit, (H, V))
    model = RegularizedLSTM(V, H, seed=7, init="uniform", forget_bias=1.0)
    np.testing.assert_array_equal(model.params["W0"], W)
    np.testing.assert_array_equal(model.params["Why"], Why)


def test_pytorch_scheme():
    model = _model("pytorch", embedding_size=E, num_layers=2)
    bound = 1 / np.sqrt(H)
    for layer in (0, 1):
        _uniform_stats(model.params[f"W{layer}"], bound)
        b = model.params[f"b{layer}"]
        # b_ih + b_hh: the sum of two U(±bound), variance 2·bound²/3, range ±2·bound
        assert np.abs(b).max() <= 2 * bound and abs(b.var() / (2 * bound**2 / 3) - 1) < 0.35
    _uniform_stats(model.params["Why"], bound)
    assert np.abs(model.params["by"]).max() <= bound and model.params["by"].any()
    assert abs(model.params["embedding"].std() - 1) < 0.05
    assert model.forget_bias == DEFAULT_FORGET_BIAS["pytorch"] == 0.0


@pytest.mark.parametrize("forget_bias", [None, 0.0, 2.5])
def test_keras_scheme(forget_bias):
    model = _model("keras", embedding_size=E, forget_bias=forget_bias)
    W, b = model.params["W0"], model.params["b0"]
    Wx, Wh = W[:E], W[E:]
    _uniform_stats(Wx, np.sqrt(6 / (E + 4 * H)))
    np.testing.assert_allclose(Wh @ Wh.T, np.eye(H), atol=1e-12)  # orthogonal rows
    expected = 1.0 if forget_bias is None else forget_bias  # unit_forget_bias
    assert (b[H : 2 * H] == expected).all() and (np.delete(b, np.s_[H : 2 * H]) == 0).all()
    _uniform_stats(model.params["Why"], np.sqrt(6 / (H + V)))
    assert np.abs(model.params["embedding"]).max() <= 0.05


@pytest.mark.parametrize("init", ["uniform", "pytorch"])
def test_orthogonal_recurrent_weights_on_any_scheme(init):
    model = _model(init, recurrent_init="orthogonal", num_layers=2)
    for layer, D in ((0, V), (1, H)):
        Wh = model.params[f"W{layer}"][D:]
        np.testing.assert_allclose(Wh @ Wh.T, np.eye(H), atol=1e-12)


@pytest.mark.parametrize("shape", [(5, 20), (20, 5), (7, 7)])
def test_orthogonal_matrices(shape):
    q = orthogonal(shape, np.random.default_rng(0), gain=1.0)
    small = min(shape)
    gram = q @ q.T if shape[0] <= shape[1] else q.T @ q
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)
    assert q.shape == shape
    g = glorot_uniform((30, 50), np.random.default_rng(0))
    assert np.abs(g).max() <= np.sqrt(6 / 80)


def test_the_scheme_travels_with_the_config():
    model = _model("keras", forget_bias=0.5, recurrent_init="orthogonal")
    config = model.config()
    assert (config["init"], config["forget_bias"], config["recurrent_init"]) == ("keras", 0.5, "orthogonal")
    clone = RegularizedLSTM(**config, seed=0)
    for name in model.params:
        np.testing.assert_array_equal(clone.params[name], model.params[name])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"init": "xavier"}, "init"),
        ({"forget_bias": float("nan")}, "forget_bias"),
        ({"forget_bias": "1"}, "forget_bias"),
        ({"recurrent_init": "identity"}, "recurrent_init"),
    ],
)
def test_bad_initialization_arguments(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        RegularizedLSTM(V, H, **kwargs)


@pytest.mark.slow
def test_learning_benchmark_smoke(tmp_path, run_benchmark):
    """benchmarks/learning.py runs end to end (tiny settings) and writes its table and plot."""
    import json

    out = tmp_path / "learning"
    proc = run_benchmark(
        "learning",
        *("--quick", "--jobs", "1", "--variants", "uniform-fb0", "keras-fb1"),
        *("--reference", "uniform-fb0", "--out", str(out)),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| keras-fb1 |" in proc.stdout and "| uniform-fb0 |" in proc.stdout
    runs = json.loads((out / "learning.json").read_text())["runs"]
    assert {r["variant"] for r in runs} == {"uniform-fb0", "keras-fb1"}
    assert all(len(r["val_loss"]) == 2 for r in runs)
    assert (out / "learning.png").read_bytes()[:4] == b"\x89PNG"
