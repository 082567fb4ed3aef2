"""The kernels' result memory: large result arrays come from a NumPy memory handler that keeps
freed blocks (up to a limit) and reuses one only for an array of exactly its size, read from the
block's own header. Ordinary arrays for everything else."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rnnreg._backend import _kernels as K

pytestmark = [pytest.mark.kernels, pytest.mark.skipif(K is None, reason="compiled kernels not built")]

BIG = (300, 256)  # 300 KB in float32: above the 64 KiB from which blocks are kept


@pytest.fixture(autouse=True)
def default_limit():
    previous = K._set_array_cache_limit(256 << 20)
    yield
    K._set_array_cache_limit(256 << 20)
    del previous


def _product(rng, dtype=np.float32):
    a = rng.standard_normal((BIG[0], 64)).astype(dtype)
    b = rng.standard_normal((64, BIG[1])).astype(dtype)
    return a, b


def test_a_freed_result_block_is_reused_for_the_next_result_of_its_size():
    rng = np.random.default_rng(0)
    a, b = _product(rng)
    first = K.matmul(a, b)
    address = first.__array_interface__["data"][0]
    assert first.flags.owndata and first.base is None  # an ordinary array
    del first
    kept, limit = K._array_cache_info()
    assert kept >= BIG[0] * BIG[1] * 4 and limit == 256 << 20
    second = K.matmul(a, b)
    assert second.__array_interface__["data"][0] == address
    np.testing.assert_allclose(second, a @ b, rtol=1e-4, atol=1e-4)


def test_kept_blocks_start_on_a_cache_line_even_after_a_resize():
    """An AVX-512 load from a line-aligned row touches one line: the kernels' results, and a
    result reallocated by resize, start on a 64-byte boundary (malloc promises 16)."""
    rng = np.random.default_rng(5)
    a, b = _product(rng)
    results = [K.matmul(a, b) for _ in range(3)]
    cache = K.lstm_forward(
        rng.standard_normal((8, 20, 30)),
        rng.standard_normal((8, 64)),
        None,
        rng.standard_normal((30, 256)),
        rng.standard_normal((64, 256)),
        rng.standard_normal(256),
        None,
        None,
        1e-5,
    )
    arrays = results + [cache.gates, cache.c, cache.h]
    assert all(x.__array_interface__["data"][0] % 64 == 0 for x in arrays)
    grown = results[0]
    grown.resize((BIG[0] * BIG[1] + 4096,), refcheck=False)
    assert grown.__array_interface__["data"][0] % 64 == 0
    np.testing.assert_allclose(grown[: BIG[0] * BIG[1]].reshape(BIG), a @ b, rtol=1e-4, atol=1e-4)


def test_small_results_and_other_sizes_do_not_take_a_kept_block():
    rng = np.random.default_rng(1)
    a, b = _product(rng)
    first = K.matmul(a, b)
    address = first.__array_interface__["data"][0]
    del first
    other = K.matmul(np.ascontiguousarray(a[:-1]), b)  # one row fewer: another size
    assert other.__array_interface__["data"][0] != address
    small = K.matmul(a[:2], np.ascontiguousarray(b[:, :2]))
    assert small.__array_interface__["data"][0] != address


def test_a_block_made_smaller_by_resize_is_never_given_out_for_its_old_size():
    rng = np.random.default_rng(2)
    a, b = _product(rng)
    arr = K.matmul(a, b)  # writeable result: resizable
    expected = arr.ravel()[:1000].copy()
    arr.resize((1000,), refcheck=False)  # the handler's realloc
    np.testing.assert_array_equal(arr, expected)
    shrunk = arr.__array_interface__["data"][0]
    del arr
    again = K.matmul(a, b)  # the old size must get a new block
    assert again.__array_interface__["data"][0] != shrunk
    np.testing.assert_allclose(again, a @ b, rtol=1e-4, atol=1e-4)


def test_the_limit_bounds_what_is_kept_and_zero_keeps_nothing():
    rng = np.random.default_rng(3)
    a, b = _product(rng)
    K._set_array_cache_limit(0)
    results = [K.matmul(a, b) for _ in range(3)]
    del results
    assert K._array_cache_info() == (0, 0)
    one_block = BIG[0] * BIG[1] * 4
    K._set_array_cache_limit(one_block)
    results = [K.matmul(a, b) for _ in range(3)]
    del results
    kept, limit = K._array_cache_info()
    assert kept == one_block and limit == one_block
    with pytest.raises(ValueError, match="limit must be >= 0"):
        K._set_array_cache_limit(-1)


def test_lstm_results_are_the_same_with_and_without_kept_blocks():
    rng = np.random.default_rng(4)
    N, T, D, H = 8, 20, 30, 64
    args = (
        rng.standard_normal((N, T, D)),
        rng.standard_normal((N, H)),
        None,
        rng.standard_normal((D, 4 * H)) / 5,
        rng.standard_normal((H, 4 * H)) / 8,
        rng.standard_normal(4 * H),
        None,
        None,
        1e-5,
    )
    dh = rng.standard_normal((N, T, H))
    runs = []
    for limit in (0, 256 << 20, 256 << 20):
        K._set_array_cache_limit(limit) if limit == 0 else None
        cache = K.lstm_forward(*args)
        grads = K.lstm_backward(dh, None, cache)
        runs.append((cache.h.copy(), {k: v.copy() for k, v in grads.items() if v is not None}))
        del cache, grads
        K._set_array_cache_limit(256 << 20)
    for h, grads in runs[1:]:
        np.testing.assert_array_equal(h, runs[0][0])
        for name in grads:
            np.testing.assert_array_equal(grads[name], runs[0][1][name], err_msg=name)


@pytest.mark.parametrize(
    "value,ok",
    [("0", True), ("64", True), ("x", False), ("-1", False), (str(2**43), False), (str(2**70), False)],
)
def test_the_environment_variable_sets_the_limit_at_import(value, ok, tmp_path):
    code = "from rnnreg._backend import _kernels as K\nprint(K._array_cache_info()[1] >> 20)\n"
    env = dict(os.environ, RNNREG_ARRAY_CACHE_MB=value)
    # Run outside the source tree, so that the installed (compiled) rnnreg is the one imported.
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    if ok:
        assert run.returncode == 0 and run.stdout.strip() == value, run.stderr
    else:  # ignored with one warning naming the variable (the import goes on with the default)
        assert run.returncode == 0 and run.stdout.strip() == "256", run.stderr
        assert f"RNNREG_ARRAY_CACHE_MB={value!r} is not an integer" in run.stderr
        assert "OverflowError" not in run.stderr and "Traceback" not in run.stderr


def test_blocks_of_sizes_no_longer_asked_for_make_way_for_new_ones():
    rng = np.random.default_rng(5)
    a, b = _product(rng)
    one_block = BIG[0] * BIG[1] * 4
    K._set_array_cache_limit(2 * one_block)
    old = [K.matmul(a, b) for _ in range(2)]
    del old  # two blocks of the old size fill the limit
    assert K._array_cache_info()[0] == 2 * one_block
    a2 = np.ascontiguousarray(a[: BIG[0] // 2])
    new = K.matmul(a2, b)  # half the size: a new block
    address = new.__array_interface__["data"][0]
    del new  # kept: the oldest block of the old size leaves
    kept, _ = K._array_cache_info()
    assert kept == one_block + one_block // 2
    again = K.matmul(a2, b)
    assert again.__array_interface__["data"][0] == address
    big = np.ones((1, (2 * one_block) // 4 + 16), np.float32)  # above the limit: never kept
    assert K._array_cache_info()[0] <= 2 * one_block
    del big
