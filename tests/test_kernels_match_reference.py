"""Every compiled kernel equals its NumPy twin: random shapes (with 1s), both dtypes,
C-contiguous, non-contiguous and read-only inputs."""

import zlib

import numpy as np
import pytest

import rnnreg
from rnnreg import _backend, _reference

pytestmark = pytest.mark.kernels

TOL = {np.float64: 1e-12, np.float32: 1e-5}
DTYPES = [np.float64, np.float32]
# (N, T, D, H): batch 1, hidden 1 and T 1 included. The kernels' matrix products run as plain
# loops up to SMALL_BATCH = 4 rows or SMALL_PRODUCT = 2^17 multiply-adds, on BLAS above: (6, 5, 7,
# 10) reaches every remainder of the loops' register blocks, (9, 3, 20, 64) puts every product
# of both passes on BLAS. (3, 6, 5, 128) and (2, 5, 7, 160) are batches that several threads
# share by hidden units (UNIT_SPLIT_MAX_BATCH in _kernels_lstm.pxi), 160 in unequal parts.
# (5, 9, 3, 19) packs Wh and Wh^T in whole panels and a part panel, and Wh^T's 76 rows in 8 x 8
# blocks with 12 left over (rn_pack in _fastmath.h).
SHAPES = [
    (1, 1, 1, 1),
    (1, 15, 50, 32),
    (3, 7, 5, 1),
    (4, 1, 3, 6),
    (2, 9, 11, 13),
    (5, 4, 1, 8),
    (6, 5, 7, 10),
    (9, 3, 20, 64),
    (3, 6, 5, 128),
    (2, 5, 7, 160),
    (5, 9, 3, 19),
]
LAYOUTS = ["contiguous", "strided", "readonly", "fortran"]


def relative_error(a, b):
    """Relative error, with an absolute floor for arrays that are nearly zero: a gradient that is
    the cancellation of O(1) terms (layer norm over one feature, or through a layer-normed
    projection onto D = 1) carries absolute, not relative, rounding error. The inputs here are
    O(1); the floor measures such arrays against 1% of that scale."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a) + np.abs(b)), 1e-2))


def _layout(a, layout, rng):
    """The same values as ``a`` in the requested memory layout."""
    if layout == "strided":
        big = np.empty(a.shape + (2,), a.dtype)
        big[..., 0] = a
        out = big[..., 0]
        assert not out.flags.c_contiguous or a.size == 1
        return out
    if layout == "readonly":
        out = a.copy()
        out.setflags(write=False)
        return out
    if layout == "fortran":
        return np.asfortranarray(a)
    return a


def _lstm_args(rng, dtype, N, T, D, H, layout, ln, mask):
    def arr(*shape, scale=1.0):
        return _layout((rng.standard_normal(shape) * scale).astype(dtype), layout, rng)

    args = dict(
        x=arr(N, T, D),
        h0=arr(N, H),
        Wx=arr(D, 4 * H, scale=0.5),
        Wh=arr(H, 4 * H, scale=0.5),
        b=arr(4 * H),
        c0=arr(N, H),
    )
    if ln:
        args["layer_norm"] = {k: arr(4 * H if k[-1] in "xh" else H) for k in rnnreg.LSTM_LAYER_NORM_PARAMS}
    if mask:
        args["recurrent_mask"] = _layout(rnnreg.dropout_mask((N, H), 0.6, rng, dtype), layout, rng)
    return args


def _run_lstm(backend, args, dh, dc):
    with rnnreg.use_backend(backend):
        h, cache = rnnreg.lstm_forward(**args)
        grads = rnnreg.lstm_backward(dh, cache, dc_final=dc)
    return h, cache, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ln", [False, True], ids=["plain", "layernorm"])
@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "recmask"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_lstm_sequence_matches_reference(dtype, shape, ln, mask, layout):
    rng = np.random.default_rng(zlib.crc32(repr((shape, ln, mask, layout)).encode()))
    N, T, D, H = shape
    if ln:
        # Layer norm over a single value is degenerate: LN of the rank-1 projection x_t Wx does
        # not depend on x_t (D = 1), and LN of a one-unit cell state is the constant beta_c
        # (H = 1), and with two units xhat is always ±1. The true gradients are then 0 and both
        # backends return rounding noise amplified by 1/std
        # (up to 1/sqrt(eps)), so these cases get D >= 2 and H >= 4. The plain cases keep D = H = 1.
        D, H = max(D, 2), max(H, 4)
    args = _lstm_args(rng, dtype, N, T, D, H, layout, ln, mask)
    dh = _layout(rng.standard_normal((N, T, H)).astype(dtype), layout, rng)
    dc = _layout(rng.standard_normal((N, H)).astype(dtype), layout, rng)
    h_c, cache_c, g_c = _run_lstm("compiled", args, dh, dc)
    h_r, cache_r, g_r = _run_lstm("numpy", args, dh, dc)
    tol = TOL[dtype]
    # Backpropagating through layer norms multiplies float32 rounding by 1/std at every step,
    # so two correct float32 implementations differ by more than 1e-5 on some inputs. Measured
    # over 200 random shapes: NumPy float32 vs a float64 truth up to 1.8e-5, compiled up to 4e-5
    # (median compiled error 0.84x NumPy's). Forward outputs keep the 1e-5 bound.
    grad_tol = 1e-4 if (ln and dtype == np.float32) else tol
    assert h_c.dtype == dtype
    assert relative_error(h_c, h_r) <= tol
    assert relative_error(cache_c["c_final"], cache_r["c_final"]) <= tol
    for name in ("dx", "dh0", "dc0", "dWx", "dWh", "db"):
        a, b = getattr(g_c, name), getattr(g_r, name)
        assert a.dtype == dtype and a.shape == b.shape, name
        assert relative_error(a, b) <= grad_tol, name
    if ln:
        for name in rnnreg.LSTM_LAYER_NORM_PARAMS:
            assert relative_error(g_c.layer_norm[name], g_r.layer_norm[name]) <= grad_tol, name
    else:
        assert g_c.layer_norm is None and g_r.layer_norm is None


def _float64(tree):
    if isinstance(tree, dict):
        return {k: _float64(val) for k, val in tree.items()}
    return None if tree is None else np.asarray(tree, np.float64)


def test_compiled_float32_is_as_accurate_as_numpy_float32():
    """Against a float64 truth, over many random LN-LSTM cases, the compiled float32 gradients
    are on the whole no less accurate than NumPy's float32 ones."""
    ratios = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        N, T, D, H = rng.integers(1, 6), rng.integers(1, 10), rng.integers(2, 8), rng.integers(4, 10)
        args = _lstm_args(rng, np.float32, N, T, D, H, "contiguous", True, bool(seed % 2))
        dh = rng.standard_normal((N, T, H)).astype(np.float32)
        dc = rng.standard_normal((N, H)).astype(np.float32)
        _, _, g_c = _run_lstm("compiled", args, dh, dc)
        _, _, g_n = _run_lstm("numpy", args, dh, dc)
        _, _, truth = _run_lstm("numpy", _float64(args), _float64(dh), _float64(dc))
        for name in ("dx", "dh0", "dc0", "dWx", "dWh", "db"):
            err_c = relative_error(getattr(g_c, name), getattr(truth, name))
            err_n = relative_error(getattr(g_n, name), getattr(truth, name))
            assert err_c < 1e-4, (seed, name, err_c)
            ratios.append(err_c / max(err_n, 1e-9))
    assert np.median(ratios) <= 1.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_caches_are_interchangeable_between_backends(dtype, rng):
    args = _lstm_args(rng, dtype, 2, 5, 3, 4, "contiguous", True, True)
    dh = rng.standard_normal((2, 5, 4)).astype(dtype)
    with rnnreg.use_backend("compiled"):
        _, cache = rnnreg.lstm_forward(**args)
    with rnnreg.use_backend("numpy"):
        g_r = rnnreg.lstm_backward(dh, cache)
    with rnnreg.use_backend("compiled"):
        g_c = rnnreg.lstm_backward(dh, cache)
    assert relative_error(g_c.dWh, g_r.dWh) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 50, 32), (7, 3, 5), (4, 2, 9)])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_lstm_step_matches_reference(dtype, shape, layout):
    rng = np.random.default_rng(sum(shape))
    N, D, H = shape
    x, h, c = (_layout(rng.standard_normal(s).astype(dtype), layout, rng) for s in ((N, D), (N, H), (N, H)))
    Wx, Wh, b = (
        _layout(rng.standard_normal(s).astype(dtype), layout, rng) for s in ((D, 4 * H), (H, 4 * H), (4 * H,))
    )
    dnh = rng.standard_normal((N, H)).astype(dtype)
    dnc = rng.standard_normal((N, H)).astype(dtype)
    results = {}
    for backend in ("compiled", "numpy"):
        with rnnreg.use_backend(backend):
            nh, nc, cache = rnnreg.lstm_step_forward(x, h, c, Wx, Wh, b)
            results[backend] = (nh, nc) + tuple(rnnreg.lstm_step_backward(dnh, dnc, cache))
    for a, b_ in zip(results["compiled"], results["numpy"]):
        assert a.shape == b_.shape and a.dtype == dtype
        assert relative_error(a, b_) <= TOL[dtype]


def test_step_equals_one_step_of_the_sequence(rng):
    x = rng.standard_normal((3, 1, 4))
    h0, c0 = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    Wx, Wh, b = rng.standard_normal((4, 20)), rng.standard_normal((5, 20)), rng.standard_normal(20)
    nh, nc, _ = rnnreg.lstm_step_forward(x[:, 0], h0, c0, Wx, Wh, b)
    h, cache = rnnreg.lstm_forward(x, h0, Wx, Wh, b, c0)
    np.testing.assert_array_equal(nh, h[:, 0])
    np.testing.assert_array_equal(nc, cache["c_final"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (32,), (1, 32), (32, 256), (3, 4, 5), (7, 1)])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_layer_norm_matches_reference(dtype, shape, layout, offset):
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    x = _layout((rng.standard_normal(shape) * 3 + offset).astype(dtype), layout, rng)
    gamma = _layout(rng.standard_normal(shape[-1]).astype(dtype), layout, rng)
    beta = _layout(rng.standard_normal(shape[-1]).astype(dtype), layout, rng)
    dout = _layout(rng.standard_normal(shape).astype(dtype), layout, rng)
    results = {}
    for backend in ("compiled", "numpy"):
        with rnnreg.use_backend(backend):
            out, cache = rnnreg.layer_norm_forward(x, gamma, beta)
            results[backend] = (out,) + rnnreg.layer_norm_backward(dout, cache)
    # float32 with a mean of 1e4 loses digits in x itself; compare at the precision x carries
    tol = TOL[dtype] if offset == 0 or dtype == np.float64 else 1e-3
    for a, b_ in zip(results["compiled"], results["numpy"]):
        assert a.dtype == dtype and a.shape == b_.shape
        assert relative_error(a, b_) <= (1e-9 if dtype == np.float64 and offset else tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (10,), (20, 50), (3, 4, 5), (1000,)])
@pytest.mark.parametrize("keep_prob", [0.05, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_dropout_matches_reference_bit_for_bit(dtype, shape, keep_prob, layout):
    rng = np.random.default_rng(7)
    x = _layout(rng.standard_normal(shape).astype(dtype), layout, rng)
    dout = _layout(rng.standard_normal(shape).astype(dtype), layout, rng)
    results = {}
    for backend in ("compiled", "numpy"):
        with rnnreg.use_backend(backend):
            out, mask = rnnreg.dropout_forward(x, keep_prob, True, rng=np.random.default_rng(99))
            results[backend] = (out, mask, rnnreg.dropout_backward(dout, mask))
    for a, b_ in zip(results["compiled"], results["numpy"]):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 4096, 4097, 10001])  # blocks of 4096 draws, and a part
@pytest.mark.parametrize("keep_prob", [0.05, 0.5, 1.0])
def test_draw_mask_matches_reference_and_dropout_forwards_mask(dtype, n, keep_prob):
    """The mask alone, scaled (dropout) or not (zoneout's 0/1 weights), is the mask
    dropout_forward draws from the same generator state, in both backends bit for bit, and
    leaves the generator where dropout_forward leaves it."""
    _, dropout = _backend._kernels.dropout_forward(np.ones(n, dtype), keep_prob, np.random.default_rng(5))
    for scaled in (True, False):
        expected = dropout if scaled else (dropout != 0).astype(dtype)
        for module in (_backend._kernels, _reference):
            rng = np.random.default_rng(5)
            mask = module.draw_mask(n, keep_prob, rng, dtype, scaled)
            assert mask.dtype == dtype and mask.shape == (n,)
            np.testing.assert_array_equal(mask, expected)
            after = np.random.default_rng(5)
            _backend._kernels.dropout_forward(np.ones(n, dtype), keep_prob, after)
            assert rng.integers(1 << 62) == after.integers(1 << 62)


def test_kernel_modules_expose_the_same_names():
    # the functions _reference defines itself (not the conventions it imports), bar a helper
    public = [
        n
        for n, f in vars(_reference).items()
        if not n.startswith("_")
        and callable(f)
        and getattr(f, "__module__", None) == _reference.__name__
        and n != "sigmoid"
    ]
    assert {"lstm_forward", "lstm_backward", "adam_update", "dropout_forward"} <= set(public)
    for name in public:
        assert hasattr(_backend._kernels, name), f"_kernels lacks the twin of _reference.{name}"
    assert _backend._kernels.GATE_ORDER == _reference.GATE_ORDER == rnnreg.GATE_ORDER == ("i", "f", "o", "g")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decay, l2", [(1.0, 0.0), (0.999, 0.0), (1.0, 0.01)])
@pytest.mark.parametrize("shape", [(37,), (5, 7)])
def test_adam_update_matches_reference_bit_for_bit(dtype, decay, l2, shape):
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(shape).astype(dtype) for _ in range(4)]
    arrays[3] = np.abs(arrays[3])  # second moments are non-negative
    compiled = [a.copy() for a in arrays]
    numpy_ = [a.copy() for a in arrays]
    for _ in range(3):
        _backend._kernels.adam_update(*compiled, 0.01, 0.9, 0.999, 1e-8, decay, l2)
        _reference.adam_update(*numpy_, 0.01, 0.9, 0.999, 1e-8, decay, l2)
    for a, b_ in zip(compiled, numpy_):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, classes", [(1, 1), (1, 50), (15, 50), (37, 3), (8, 1000)])
def test_softmax_cross_entropy_matches_reference(dtype, rows, classes):
    rng = np.random.default_rng(rows * classes)
    logits = (rng.standard_normal((rows, classes)) * 4).astype(dtype)
    targets = rng.integers(0, classes, rows)
    loss_k, dlogits_k = _backend._kernels.softmax_cross_entropy(logits, targets)
    loss_r, dlogits_r = _reference.softmax_cross_entropy(logits, targets)
    assert dlogits_k.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert abs(loss_k - loss_r) <= tol * max(1.0, abs(loss_r))
    np.testing.assert_allclose(dlogits_k, dlogits_r, rtol=tol * 10, atol=tol)
    # the gradient of a mean over rows: each row of (softmax - onehot) / M sums to zero
    np.testing.assert_allclose(dlogits_k.sum(axis=1), 0, atol=tol * 10)


def test_softmax_cross_entropy_kernel_refuses_targets_outside_the_classes():
    logits = np.zeros((2, 3))
    for bad in (np.array([0, 3]), np.array([-1, 0])):
        with pytest.raises(ValueError, match="outside"):
            _backend._kernels.softmax_cross_entropy(logits, bad)
    with pytest.raises(TypeError, match="int64"):
        _backend._kernels.softmax_cross_entropy(logits, np.array([0.0, 1.0]))


@pytest.mark.parametrize("keep_prob", [0.05, 0.5, 0.8, 0.99])
def test_dropout_keeps_each_unit_with_probability_keep_prob(keep_prob):
    """The 16-bit uniforms behind the mask: the kept fraction of a million units lies within
    five standard deviations of keep_prob, and so does each of the four slices of a draw."""
    n = 1_000_000
    _, mask = rnnreg.dropout_forward(np.ones(n), keep_prob, True, rng=2024)
    kept = mask > 0
    sigma = np.sqrt(keep_prob * (1 - keep_prob) / n)
    assert abs(kept.mean() - keep_prob) < 5 * sigma + 1 / 65536
    for slice_ in range(4):
        part = kept[slice_::4]
        assert abs(part.mean() - keep_prob) < 5 * 2 * sigma + 1 / 65536
    assert set(np.unique(mask)) == {0.0, 1 / keep_prob}


def test_kernels_refuse_arrays_they_cannot_read_in_place():
    """The kernels read raw data pointers (the wrappers convert layouts first); called directly
    with an array of another layout, dtype or rank, or a read-only array to update, they raise
    instead of reading or writing memory they should not."""
    K = _backend._kernels
    a = np.ones((4, 4))
    for bad in (a[:, ::2], np.asfortranarray(np.ones((4, 3))), a.astype(np.float32)):
        with pytest.raises(TypeError, match="C-contiguous"):
            K.matmul(bad, a)
    with pytest.raises(TypeError, match="must be a numpy array"):
        K.matmul([[1.0]], a)
    with pytest.raises(ValueError, match="must have 2 axes"):
        K.matmul(a.ravel(), a)
    x, h0 = np.ones((2, 3, 4)), np.zeros((2, 5))
    Wx, Wh, b = np.ones((4, 20)), np.ones((5, 20)), np.zeros(20)
    with pytest.raises(TypeError, match="C-contiguous"):
        K.lstm_forward(np.asfortranarray(x), h0, h0, Wx, Wh, b, None, None, 1e-5)
    frozen = np.ones(3)
    frozen.setflags(write=False)
    with pytest.raises(TypeError, match="writeable"):
        K.adam_update(frozen, np.ones(3), np.zeros(3), np.zeros(3), 0.1, 0.9, 0.999, 1e-8, 1.0, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (64, 129), (2, 3, 1000)])
def test_sum_of_squares_matches_reference(dtype, shape):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype) * 10
    K = _backend._kernels
    assert K.sum_of_squares(x) == pytest.approx(_reference.sum_of_squares(x), rel=1e-12)
    big = np.full(4, np.finfo(dtype).max / 2, dtype)  # float64 sums: no overflow for float32
    assert np.isfinite(K.sum_of_squares(big)) == (dtype == np.float32)
    x.flat[-1] = np.nan
    assert np.isnan(K.sum_of_squares(x)) and np.isnan(_reference.sum_of_squares(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ln", [False, True])
def test_lstm_backward_without_dx_gives_the_same_other_gradients(dtype, ln):
    rng = np.random.default_rng(3)
    N, T, D, H = 3, 6, 5, 4
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(dtype)  # noqa: E731
    params = rnnreg.lstm_layer_norm_params(H, dtype) if ln else None
    for kernels in (_backend._kernels, _reference):
        cache = kernels.lstm_forward(
            f(N, T, D), f(N, H), f(N, H), f(D, 4 * H), f(H, 4 * H), f(4 * H), params, None, 1e-5
        )
        dh = f(N, T, H)
        full = kernels.lstm_backward(dh, None, cache)
        lean = kernels.lstm_backward(dh, None, cache, False)
        assert lean["dx"] is None and full["dx"] is not None
        for name in full:
            if name != "dx":
                np.testing.assert_array_equal(lean[name], full[name])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", [None, "first", "last"])
def test_fused_finiteness_flags_agree_with_the_twin(dtype, where):
    """report_finite: the kernels check their results as they write them (blocks, rows) and
    say whether all are finite; a NaN anywhere in the input must flip the flag — also where
    dropout drops it (NaN * 0 is NaN) and across the dropout kernel's 4096-element blocks."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 700)).astype(dtype)
    if where is not None:
        x.flat[0 if where == "first" else -1] = np.nan
    gamma, beta = np.ones(700, dtype), np.zeros(700, dtype)
    expected = where is None
    for kernels in (_backend._kernels, _reference):
        *_, finite = kernels.layer_norm_forward(x, gamma, beta, 1e-5, True)
        assert finite is expected
        _, xhat, rstd = kernels.layer_norm_forward(np.ones_like(x), gamma, beta, 1e-5)
        *_, finite = kernels.layer_norm_backward(x, xhat, rstd, gamma, True)
        assert finite is expected
        flat = x.reshape(-1)
        out, mask, finite = kernels.dropout_forward(flat, 0.5, np.random.default_rng(0), True)
        assert finite is expected
        plain = kernels.dropout_forward(flat, 0.5, np.random.default_rng(0))
        np.testing.assert_array_equal(plain[1], mask)  # the flag changes no draw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_into_callers_buffers(dtype):
    x = np.random.default_rng(2).standard_normal((3, 5000)).astype(dtype)
    expected_out, expected_mask = rnnreg.dropout_forward(x, 0.7, True, np.random.default_rng(5))
    out, mask = np.empty_like(x), np.empty_like(x)
    got_out, got_mask = rnnreg.dropout_forward(x, 0.7, True, np.random.default_rng(5), out=out, mask_out=mask)
    assert got_out is out and got_mask is mask
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(mask, expected_mask)
    inplace = x.copy()  # out may be x itself
    rnnreg.dropout_forward(inplace, 0.7, True, np.random.default_rng(5), out=inplace)
    np.testing.assert_array_equal(inplace, expected_out)
    with _backend.use_backend("numpy"):  # the twin honours the buffers too
        twin_out = np.empty_like(x)
        rnnreg.dropout_forward(x, 0.7, True, np.random.default_rng(5), out=twin_out)
        np.testing.assert_array_equal(twin_out, expected_out)
    for bad in (
        np.empty((3, 4999), dtype),
        np.empty((5000, 3), dtype).T,
        np.empty_like(x, dtype=np.float16),
        [0.0] * x.size,
    ):
        with pytest.raises(ValueError, match="out must be a writeable C-contiguous"):
            rnnreg.dropout_forward(x, 0.7, True, np.random.default_rng(5), out=bad)
    with pytest.raises(ValueError, match="overlaps"):
        rnnreg.dropout_forward(x, 0.7, True, np.random.default_rng(5), mask_out=x)


def test_dropout_kernel_checks_the_buffers_it_writes():
    K = _backend._kernels
    x = np.ones(100)
    gen = np.random.default_rng(0)
    read_only = np.empty(100)
    read_only.flags.writeable = False
    with pytest.raises(TypeError, match="out must be"):
        K.dropout_forward(x, 0.5, gen, False, read_only)
    with pytest.raises(ValueError, match="out has shape"):
        K.dropout_forward(x, 0.5, gen, False, np.empty(99))
    with pytest.raises(TypeError, match="mask must be"):
        K.dropout_forward(x, 0.5, gen, False, None, np.empty(100, np.float32))
    shared = np.empty(150)
    with pytest.raises(ValueError, match="out overlaps x"):
        K.dropout_forward(shared[:100], 0.5, gen, False, shared[50:])
    with pytest.raises(ValueError, match="mask overlaps x"):
        K.dropout_forward(x, 0.5, gen, False, None, x)
    out = np.empty(100)
    with pytest.raises(ValueError, match="mask overlaps out"):
        K.dropout_forward(x, 0.5, gen, False, out, out)
