"""One-hot inputs given as token ids: lstm_forward(x=(N, T) int64 ids in [0, D)) gathers rows of
Wx instead of multiplying by one-hot vectors — the same numbers exactly — and lstm_backward adds
the gate gradients into those rows (in row order) instead of a product. Both backends."""

import numpy as np
import pytest

from rnnreg import _backend, _reference
from rnnreg._conventions import TOKEN_DTYPE

BACKENDS = [_reference] + ([_backend._kernels] if _backend._kernels is not None else [])
IDS = ["numpy", "compiled"][: len(BACKENDS)]


def _arrays(rng, N, T, D, H, dtype, layer_norm, masked):
    ids = rng.integers(0, D, (N, T)).astype(TOKEN_DTYPE)
    one_hot = np.zeros((N, T, D), dtype)
    np.put_along_axis(one_hot, ids[..., None], 1, axis=2)
    f = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    ln = None
    if layer_norm:
        ln = {
            "gamma_x": 1 + f(4 * H) / 10,
            "beta_x": f(4 * H) / 10,
            "gamma_h": 1 + f(4 * H) / 10,
            "beta_h": f(4 * H) / 10,
            "gamma_c": 1 + f(H) / 10,
            "beta_c": f(H) / 10,
        }
    mask = (rng.random((N, H)) < 0.7).astype(dtype) / dtype(0.7) if masked else None
    rest = (f(N, H), f(N, H), f(D, 4 * H) / 3, f(H, 4 * H) / dtype(np.sqrt(H)), f(4 * H), ln, mask, 1e-5)
    return ids, one_hot, rest, f(N, T, H)


CASES = [
    (3, 6, 11, 8, False, False),
    (8, 20, 81, 64, True, False),
    (9, 12, 40, 32, False, True),
    (1, 1, 1, 4, True, True),
    (16, 35, 81, 256, False, False),
]


@pytest.mark.parametrize("K", BACKENDS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,T,D,H,layer_norm,masked", CASES)
def test_ids_give_the_one_hot_forward_exactly_and_its_gradients(K, dtype, N, T, D, H, layer_norm, masked):
    rng = np.random.default_rng(N * T + D)
    ids, one_hot, rest, dh = _arrays(rng, N, T, D, H, dtype, layer_norm, masked)
    by_ids = K.lstm_forward(ids, *rest)
    by_vectors = K.lstm_forward(one_hot, *rest)
    assert by_ids.tokens and not by_vectors.tokens
    assert (by_ids.N, by_ids.T, by_ids.D, by_ids.H) == (N, T, D, H)
    for name in ("h", "c", "gates", "tc", "hprev"):  # x @ Wx with one-hot rows is exact
        np.testing.assert_array_equal(getattr(by_ids, name), getattr(by_vectors, name), err_msg=name)
    g_ids = K.lstm_backward(dh, None, by_ids, False)
    g_vec = K.lstm_backward(dh, None, by_vectors, False)
    assert g_ids["dx"] is None
    for name in g_vec:
        if name == "dx":
            continue
        if name == "dWx":  # a sum in row order against a product's order
            tol = 2e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(g_ids[name], g_vec[name], rtol=tol, atol=tol)
        else:
            np.testing.assert_array_equal(g_ids[name], g_vec[name], err_msg=name)
    # Rows of Wx no id points at get exactly zero.
    unused = np.setdiff1d(np.arange(D), ids)
    assert not g_ids["dWx"][unused].any()


@pytest.mark.skipif(_backend._kernels is None, reason="compiled kernels not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_weight_gradient_of_ids_matches_the_twin(dtype):
    rng = np.random.default_rng(5)
    ids, _, rest, dh = _arrays(rng, 8, 30, 50, 64, dtype, False, False)
    K = _backend._kernels
    twin = _reference.lstm_backward(dh, None, _reference.lstm_forward(ids, *rest), False)
    compiled = K.lstm_backward(dh, None, K.lstm_forward(ids, *rest), False)
    # The same row-order sum, of gate gradients that agree to rounding (compiled exp/tanh).
    np.testing.assert_allclose(
        compiled["dWx"], twin["dWx"], rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-5
    )


@pytest.mark.parametrize("K", BACKENDS, ids=IDS)
@pytest.mark.parametrize("bad", [-1, 11, 2**62])
def test_ids_outside_the_rows_of_wx_are_refused(K, bad):
    rng = np.random.default_rng(0)
    ids, _, rest, _ = _arrays(rng, 3, 4, 11, 8, np.float64, False, False)
    ids[1, 2] = bad
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 11\)"):
        K.lstm_forward(ids, *rest)


@pytest.mark.parametrize("K", BACKENDS, ids=IDS)
def test_other_integer_types_are_refused(K):
    rng = np.random.default_rng(0)
    ids, _, rest, _ = _arrays(rng, 3, 4, 11, 8, np.float64, False, False)
    with pytest.raises(TypeError):
        K.lstm_forward(ids.astype(np.int32), *rest)


@pytest.mark.parametrize("K", BACKENDS, ids=IDS)
def test_a_cache_whose_ids_were_changed_is_refused_by_backward(K):
    rng = np.random.default_rng(0)
    ids, _, rest, dh = _arrays(rng, 3, 4, 11, 8, np.float32, False, False)
    cache = K.lstm_forward(ids, *rest)
    bad = ids.copy()
    bad[0, 0] = 11
    with pytest.raises(ValueError, match="token ids must lie in"):
        K.lstm_backward(dh, None, cache._replace(x=bad), False)


def test_the_model_feeds_its_one_hot_layer_ids_and_learns_the_same():
    """A model without an embedding: the loss equals the loss of the same LSTM on one-hot
    vectors, and its gradients match (to the order of a sum)."""
    from rnnreg import RegularizedLSTM, lstm_forward

    model = RegularizedLSTM(13, 16, seed=0)
    rng = np.random.default_rng(1)
    inputs, targets = rng.integers(0, 13, (4, 9)), rng.integers(0, 13, (4, 9))
    loss, logits, _ = model.forward_batch(inputs, targets, training=True)
    grads = model.backward()
    W, H = model.params["W0"], 16
    one_hot = np.eye(13)[inputs]
    h, _ = lstm_forward(one_hot, np.zeros((4, H)), W[:13], W[13:], model.params["b0"])
    expected = h.reshape(-1, H) @ model.params["Why"] + model.params["by"]
    np.testing.assert_allclose(logits.reshape(-1, 13), expected, rtol=1e-12, atol=1e-12)
    assert np.isfinite(loss) and grads["W0"].shape == W.shape
    assert not grads["W0"][:13][np.setdiff1d(np.arange(13), inputs)].any()


@pytest.mark.parametrize("backend", ["compiled", "numpy"][: len(BACKENDS)][::-1])
@pytest.mark.parametrize("form", ["int64", "int32", "list", "strided", "big_endian", "uint8"])
def test_the_public_functions_take_ids_in_any_integer_form(backend, form):
    from rnnreg import lstm_backward, lstm_forward, use_backend

    rng = np.random.default_rng(3)
    ids, one_hot, rest, dh = _arrays(rng, 4, 6, 9, 8, np.float64, True, False)
    h0, c0, Wx, Wh, b, ln, _, _ = rest
    given = {
        "int64": ids,
        "int32": ids.astype(np.int32),
        "list": ids.tolist(),
        "strided": np.repeat(ids, 2, axis=1)[:, ::2],
        "big_endian": ids.astype(">i8"),
        "uint8": ids.astype(np.uint8),
    }[form]
    with use_backend(backend):
        h, cache = lstm_forward(given, h0, Wx, Wh, b, c0, layer_norm=ln)
        h_vec, cache_vec = lstm_forward(one_hot, h0, Wx, Wh, b, c0, layer_norm=ln)
        grads = lstm_backward(dh, cache)
        grads_vec = lstm_backward(dh, cache_vec)
    np.testing.assert_array_equal(h, h_vec)
    assert grads.dx is None and grads_vec.dx.shape == (4, 6, 9)
    np.testing.assert_allclose(grads.dWx, grads_vec.dWx, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(grads.dWh, grads_vec.dWh)


@pytest.mark.parametrize(
    "bad,error,match",
    [
        (np.array([[0, 9]]), ValueError, r"token ids must lie in \[0, 9\)"),
        (np.array([[-1, 0]]), ValueError, r"token ids must lie in \[0, 9\)"),
        (np.array([[2**64 - 1, 0]], dtype=np.uint64), ValueError, "token ids must lie in"),
        (np.zeros((0, 3), np.int64), ValueError, "must not be empty"),
    ],
)
def test_the_public_forward_refuses_bad_ids_naming_x(bad, error, match):
    from rnnreg import lstm_forward

    rng = np.random.default_rng(0)
    _, _, rest, _ = _arrays(rng, 1, 2, 9, 4, np.float64, False, False)
    h0, c0, Wx, Wh, b = rest[:5]
    with pytest.raises(error, match=match):
        lstm_forward(bad, np.zeros((bad.shape[0], 4)), Wx, Wh, b)
