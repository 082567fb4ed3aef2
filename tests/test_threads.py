"""Threads: the compiled kernels share their work among OpenMP threads, and the number of
threads never changes a result (bit for bit), whatever limits it: rnnreg.set_num_threads,
threadpoolctl (OpenMP or BLAS), or the environment."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import rnnreg
from rnnreg import (
    RegularizedLSTM,
    TrainConfig,
    fit,
    get_num_threads,
    lstm_backward,
    lstm_forward,
    lstm_layer_norm_params,
    matmul,
    set_num_threads,
)
from rnnreg._backend import _kernels

pytestmark = [pytest.mark.kernels, pytest.mark.skipif(_kernels is None, reason="compiled kernels not built")]

INFO = _kernels._thread_info() if _kernels is not None else {}
# On a machine with two cores and an OpenMP build the "several threads" runs below really use
# several; elsewhere they are still run and must agree, but prove less.
SEVERAL = min(os.cpu_count() or 1, 4)


@pytest.fixture(autouse=True)
def no_thread_limit():
    set_num_threads(None)
    yield
    set_num_threads(None)


def test_an_unlimited_call_uses_every_core_on_an_openmp_build():
    if not INFO["openmp"] or (os.cpu_count() or 1) < 2:
        pytest.skip("a single core or a build without OpenMP")
    assert get_num_threads() >= 2


@pytest.mark.parametrize("limit", ["rnnreg", "threadpoolctl", "threadpoolctl-blas", "threadpoolctl-openmp"])
def test_every_kind_of_limit_is_honoured(limit):
    if limit == "rnnreg":
        set_num_threads(1)
        assert get_num_threads() == 1
        return
    user_api = {"threadpoolctl": None, "threadpoolctl-blas": "blas", "threadpoolctl-openmp": "openmp"}[limit]
    if user_api == "blas" and not INFO["blas_threads_known"]:
        pytest.skip("this BLAS's thread setting is not one rnnreg reads")
    if user_api == "openmp" and not INFO["openmp"]:
        pytest.skip("a build without OpenMP uses one thread anyway")
    with threadpool_limits(1, user_api=user_api):
        assert get_num_threads() == 1


def _blas_threads():
    return sorted(
        (lib["filepath"], lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"
    )


def _lstm_arrays(rng, N, T, D, H, dtype, layer_norm, masked):
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = rng.standard_normal((N, H)).astype(dtype)
    Wx = (rng.standard_normal((D, 4 * H)) / np.sqrt(D)).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype)
    b = rng.standard_normal(4 * H).astype(dtype)
    ln = None
    if layer_norm:
        ln = {
            k: (v + 0.1 * rng.standard_normal(v.shape)).astype(dtype)
            for k, v in lstm_layer_norm_params(H, dtype=dtype).items()
        }
    mask = (rng.random((N, H)) < 0.8).astype(dtype) / dtype(0.8) if masked else None
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    return x, h0, Wx, Wh, b, ln, mask, dh


def _lstm_run(arrays):
    x, h0, Wx, Wh, b, ln, mask, dh = arrays
    h, cache = lstm_forward(x, h0, Wx, Wh, b, layer_norm=ln, recurrent_mask=mask)
    grads = lstm_backward(dh, cache)._asdict()
    ln_grads = grads.pop("layer_norm") or {}
    return {"h": h, **grads, **{"d" + name: value for name, value in ln_grads.items()}}


# Batches that split among threads by rows (N > 4) and by hidden units (N <= 4, H a multiple of
# 32 from 128: 160 in unequal parts), and one that does not split; hidden sizes whose products
# split into column blocks (4H >= 512) and one that does not; N*T >= 512 splits dx by rows.
SHAPES = [
    (8, 35, 81, 256),
    (16, 35, 20, 128),
    (5, 7, 6, 8),
    (3, 4, 5, 6),
    (9, 60, 40, 64),
    (1, 35, 81, 256),
    (3, 9, 5, 160),
    (4, 6, 7, 128),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layer_norm,masked", [(False, False), (True, False), (False, True), (True, True)])
def test_lstm_results_are_the_same_bit_for_bit_with_any_number_of_threads(dtype, shape, layer_norm, masked):
    arrays = _lstm_arrays(np.random.default_rng(sum(shape)), *shape, dtype, layer_norm, masked)
    set_num_threads(1)
    one = _lstm_run(arrays)
    set_num_threads(None)
    several = _lstm_run(arrays)
    with threadpool_limits(1):
        limited = _lstm_run(arrays)
    for name in one:
        np.testing.assert_array_equal(several[name], one[name], err_msg=name)
        np.testing.assert_array_equal(limited[name], one[name], err_msg=name)


def test_small_batches_share_their_hidden_units_among_threads_where_rows_are_too_few():
    """The rule the LSTM loops follow (measured: benchmarks/results/2026-12-04-step-split.md)."""
    if not INFO["openmp"]:
        assert _kernels._threads_by_units(1, 256, False, 2) == 1
        return
    assert _kernels._threads_by_units(1, 256, False, 2) == 2
    assert _kernels._threads_by_units(4, 1024, False, 2) == 2
    assert _kernels._threads_by_units(4, 128, False, 8) == 4  # blocks of 32 units at least
    assert _kernels._threads_by_units(5, 256, False, 2) == 1  # enough rows: split by rows
    assert _kernels._threads_by_units(1, 256, True, 2) == 1  # layer norm needs whole rows
    assert _kernels._threads_by_units(1, 96, False, 2) == 1  # a step too short for a barrier
    assert _kernels._threads_by_units(1, 260, False, 2) == 1  # not a multiple of 32
    assert _kernels._threads_by_units(1, 256, False, 1) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,H", [(1, 256), (2, 128), (4, 160)])
def test_zoneout_and_token_ids_in_a_small_batch_are_the_same_bit_for_bit_on_any_threads(dtype, N, H):
    """The loops split by hidden units with every input they take: token ids (the input row
    picked from Wx), a recurrent mask, zoneout on h and c, a final cell-state gradient."""
    rng = np.random.default_rng(N * H)
    T, D = 11, 9
    ids = rng.integers(0, D, (N, T))
    Wx = (rng.standard_normal((D, 4 * H)) * 0.5).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype)
    b, h0, c0 = (rng.standard_normal(shape).astype(dtype) for shape in (4 * H, (N, H), (N, H)))
    mask = (rng.random((N, H)) < 0.8).astype(dtype) / dtype(0.8)
    zone_h, zone_c = (rng.random((N, T, H)).astype(dtype) for _ in range(2))
    dh, dc = rng.standard_normal((N, T, H)).astype(dtype), rng.standard_normal((N, H)).astype(dtype)

    def run():
        cache = _kernels.lstm_forward(ids, h0, c0, Wx, Wh, b, None, mask, 1e-5, zone_h, zone_c)
        grads = _kernels.lstm_backward(dh, dc, cache, False)
        return {"h": cache.h, "c": cache.c, **{k: v for k, v in grads.items() if v is not None}}

    set_num_threads(1)
    one = run()
    set_num_threads(None)
    several = run()
    for name in one:
        np.testing.assert_array_equal(several[name], one[name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H", [256, 40])
@pytest.mark.parametrize("T", [5, 8])
def test_a_row_of_a_batch_runs_forward_exactly_as_it_would_alone(dtype, H, T):
    """The step product makes every entry the same way (a sum in order, one multiply-add at a
    time), whether the weights are packed (8 steps or more) or read as stored, whatever rows
    share the call — blocks of four, the one to three left, or a row alone — and whatever
    columns (H = 40: a last panel part-filled)."""
    rng = np.random.default_rng(H + T)
    N, D = 7, 9
    ids = rng.integers(0, D, (N, T))
    Wx = (rng.standard_normal((D, 4 * H)) * 0.5).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype)
    b, h0, c0 = (rng.standard_normal(shape).astype(dtype) for shape in (4 * H, (N, H), (N, H)))
    set_num_threads(1)
    batch = _kernels.lstm_forward(ids, h0, c0, Wx, Wh, b, None, None, 1e-5)
    for rows in ([0], [1, 2], [3, 4, 5], [6]):
        part = _kernels.lstm_forward(ids[rows], h0[rows], c0[rows], Wx, Wh, b, None, None, 1e-5)
        np.testing.assert_array_equal(part.h, batch.h[rows])
        np.testing.assert_array_equal(part.c, batch.c[rows])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_token_id_inputs_are_the_same_bit_for_bit_with_any_number_of_threads(dtype, layer_norm):
    rng = np.random.default_rng(7)
    x, h0, Wx, Wh, b, ln, mask, dh = _lstm_arrays(rng, 8, 35, 81, 256, dtype, layer_norm, True)
    ids = rng.integers(0, 81, (8, 35))
    arrays = (ids, h0, Wx, Wh, b, ln, mask, dh)
    set_num_threads(1)
    one = _lstm_run(arrays)
    set_num_threads(None)
    several = _lstm_run(arrays)
    for name in one:
        if one[name] is None:
            assert several[name] is None
        else:
            np.testing.assert_array_equal(several[name], one[name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "m,k,n,trans_a,trans_b",
    [
        (600, 70, 1030, False, False),
        (1100, 256, 81, False, False),
        (81, 560, 1024, True, False),
        (560, 1024, 81, False, True),
        (700, 64, 600, True, True),
    ],
)
def test_matmul_is_the_same_bit_for_bit_with_any_number_of_threads(dtype, m, k, n, trans_a, trans_b):
    rng = np.random.default_rng(m + n)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    set_num_threads(1)
    one = matmul(a, b, trans_a, trans_b)
    set_num_threads(None)
    several = matmul(a, b, trans_a, trans_b)
    np.testing.assert_array_equal(several, one)
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
    np.testing.assert_allclose(
        one,
        expected,
        rtol=1e-4 if dtype == np.float32 else 1e-10,
        atol=1e-3 if dtype == np.float32 else 1e-10,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_gives_the_same_model_with_one_thread_or_several(dtype):
    text = "the quick brown fox jumps over the lazy dog.\n" * 60
    corpus = rnnreg.CharCorpus.from_text(text)

    def train():
        model = RegularizedLSTM(
            corpus.vocab_size,
            64,
            dropout_keep_prob=0.8,
            use_layer_norm=True,
            num_layers=2,
            recurrent_keep_prob=0.9,
            seed=3,
            dtype=dtype,
        )
        config = TrainConfig(epochs=2, batch_size=8, bptt=20, progress=False, seed=3)
        history = fit(model, corpus.train, corpus.val, config, log=lambda line: None)
        return model, history

    set_num_threads(1)
    model_one, history_one = train()
    set_num_threads(None)
    model_several, history_several = train()
    assert history_one["val_loss"] == history_several["val_loss"]
    for name, value in model_one.params.items():
        np.testing.assert_array_equal(model_several.params[name], value, err_msg=name)


def test_blas_gets_its_own_setting_back_after_every_call():
    before = _blas_threads()
    arrays = _lstm_arrays(np.random.default_rng(0), 8, 10, 30, 128, np.float64, True, True)
    _lstm_run(arrays)
    matmul(np.ones((600, 40)), np.ones((40, 600)))
    assert _blas_threads() == before
    with threadpool_limits(1, user_api="blas"):
        _lstm_run(arrays)
        assert all(n == 1 for _, n in _blas_threads())
    assert _blas_threads() == before


def test_calls_from_several_python_threads_agree_and_restore_blas():
    before = _blas_threads()
    arrays = _lstm_arrays(np.random.default_rng(1), 8, 20, 30, 128, np.float32, True, False)
    expected = _lstm_run(arrays)
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(_lstm_run(arrays))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert len(results) == 9
    for result in results:
        for name in expected:
            np.testing.assert_array_equal(result[name], expected[name], err_msg=name)
    assert _blas_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_refuses_what_is_not_a_thread_count(bad):
    with pytest.raises(ValueError, match="n must be an integer >= 1 or None"):
        set_num_threads(bad)


def test_the_kernel_setter_refuses_a_negative_limit():
    with pytest.raises(ValueError, match="limit must be >= 0"):
        _kernels._set_thread_limit(-1)


@pytest.mark.parametrize(
    "value,expected", [("1", "1"), ("", "ok"), ("0", "ok"), ("x", "RNNREG_NUM_THREADS='x' is not an integer")]
)
def test_the_environment_variable_limits_threads_at_import(value, expected, tmp_path):
    code = f"import rnnreg\nn = rnnreg.get_num_threads()\nprint(n if n == 1 and {value!r} == '1' else 'ok')\n"
    env = dict(os.environ, RNNREG_NUM_THREADS=value)
    # Run outside the source tree, so that the installed (compiled) rnnreg is the one imported.
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert expected in (run.stdout + run.stderr)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4096, 64), (700, 300), (257, 1024), (3, 32)])
def test_layer_norm_is_the_same_bit_for_bit_with_any_number_of_threads(dtype, shape):
    from rnnreg import layer_norm_backward, layer_norm_forward

    rng = np.random.default_rng(shape[0])
    x = rng.standard_normal(shape).astype(dtype)
    gamma = (1 + rng.standard_normal(shape[1]) / 10).astype(dtype)
    beta = rng.standard_normal(shape[1]).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    results = []
    for limit in (1, None):
        set_num_threads(limit)
        out, cache = layer_norm_forward(x, gamma, beta)
        results.append((out, *layer_norm_backward(dout, cache)))
    for one, several in zip(*results):
        np.testing.assert_array_equal(several, one)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(337, 1024), (300_007,), (1000,)])
def test_adam_update_is_the_same_bit_for_bit_with_any_number_of_threads(dtype, size):
    # (337, 1024) and 300,007 values are shared among threads (an odd count splits unevenly);
    # 1,000 stay on one.
    rng = np.random.default_rng(7)
    start = [rng.standard_normal(size).astype(dtype) for _ in range(3)]
    g = rng.standard_normal(size).astype(dtype)
    results = []
    for limit in (1, None):
        set_num_threads(limit)
        p, m, v = (a.copy() for a in start)
        v = np.abs(v)
        for _ in range(3):
            _kernels.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.999, 1e-4)
        results.append((p, m, v))
    set_num_threads(None)
    for one, several in zip(*results):
        np.testing.assert_array_equal(several, one)


FORK_SCRIPT = """
import multiprocessing as mp
import numpy as np
import rnnreg
from rnnreg import lstm_forward, layer_norm_forward, matmul

def work(_):
    rng = np.random.default_rng(0)
    h, _ = lstm_forward(rng.standard_normal((8, 35, 81)), np.zeros((8, 256)),
                        rng.standard_normal((81, 1024)) / 9, rng.standard_normal((256, 1024)) / 16,
                        np.zeros(1024))
    out, _ = layer_norm_forward(rng.standard_normal((600, 1024)), np.ones(1024), np.zeros(1024))
    p = matmul(rng.standard_normal((600, 300)), rng.standard_normal((300, 1100)))
    return float(h.sum()), float(out.sum()), float(p.sum()), rnnreg.get_num_threads()

if __name__ == "__main__":
    parent = work(0)            # the parent's OpenMP thread pool is started here
    with mp.get_context("fork").Pool(2) as pool:
        children = pool.map(work, range(2))
    assert all(c[:3] == parent[:3] for c in children), (parent, children)
    assert all(c[3] == 1 for c in children), children
    print("ok", parent[3])
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_on_one_thread_with_the_same_results(tmp_path):
    """GNU OpenMP's pool does not survive fork: without rnnreg's at-fork hook a child that used
    the kernels after its parent had would wait forever. The script runs in its own process with
    a timeout, so a hang fails the test instead of stopping the run."""
    script = tmp_path / "fork_after_threads.py"
    script.write_text(FORK_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok")


def test_a_limit_set_in_another_thread_while_a_kernel_runs_is_not_undone():
    """A user sets BLAS's threads (threadpoolctl, another Python thread) while a long kernel
    call runs: when the call ends, rnnreg gives BLAS its own setting back only if it still holds
    rnnreg's pin — the user's new limit stays."""
    import time

    from threadpoolctl import ThreadpoolController

    if not _kernels._thread_info()["blas_threads_known"]:
        pytest.skip("needs a BLAS whose thread setting rnnreg knows")

    # The OpenBLAS rnnreg's kernels call: SciPy's, in scipy.libs — not NumPy's own, which is
    # named libscipy_openblas64_ too. Looked up once: polling must be quick.
    libs = [
        lib
        for lib in ThreadpoolController().select(user_api="blas").lib_controllers
        if f"{os.sep}scipy.libs{os.sep}" in lib.filepath
    ]
    if not libs:
        pytest.skip("no SciPy OpenBLAS")
    blas = libs[0]
    original = blas.get_num_threads()
    if original < 2:
        pytest.skip("needs a BLAS allowed 2 threads or more")
    arrays = _lstm_arrays(np.random.default_rng(2), 32, 60, 64, 256, np.float64, True, True)
    changed = threading.Event()

    def calls_until_changed():  # kernel calls, one after another, until the limit is set
        deadline = time.monotonic() + 60
        while not changed.is_set() and time.monotonic() < deadline:
            _lstm_run(arrays)

    wanted = original + 1
    try:
        worker = threading.Thread(target=calls_until_changed)
        worker.start()
        deadline = time.monotonic() + 30
        while blas.get_num_threads() != 1 and time.monotonic() < deadline:
            time.sleep(0.0005)  # until a kernel call has pinned BLAS: a call is in flight
        seen_in_flight = blas.get_num_threads() == 1
        if seen_in_flight:
            blas.set_num_threads(wanted)
        changed.set()
        worker.join()
        if not seen_in_flight:
            pytest.skip("no kernel call was seen in flight")
        assert blas.get_num_threads() == wanted
    finally:
        blas.set_num_threads(original)


FORK_IN_FLIGHT_SCRIPT = """
import os, sys, threading, time
import numpy as np
from threadpoolctl import ThreadpoolController
from rnnreg import _backend, lstm_forward

libs = [lib for lib in ThreadpoolController().select(user_api="blas").lib_controllers
        if os.sep + "scipy.libs" + os.sep in lib.filepath]
if not libs or libs[0].get_num_threads() < 2 or not _backend.kernels()._thread_info()["blas_threads_known"]:
    print("skip")
    sys.exit(0)
blas = libs[0]
original = blas.get_num_threads()
rng = np.random.default_rng(0)
x, h0 = rng.standard_normal((32, 200, 64)), rng.standard_normal((32, 256))
Wx, Wh, b = rng.standard_normal((64, 1024)) * 0.1, rng.standard_normal((256, 1024)) * 0.05, np.zeros(1024)
stop = threading.Event()

def calls():  # kernel calls one after another: BLAS pinned to 1 while each runs
    while not stop.is_set():
        lstm_forward(x, h0, Wx, Wh, b)

worker = threading.Thread(target=calls)
worker.start()
deadline = time.monotonic() + 60
while blas.get_num_threads() != 1 and time.monotonic() < deadline:
    time.sleep(0.0005)
if blas.get_num_threads() != 1:
    stop.set(); worker.join(); print("skip"); sys.exit(0)
pid = os.fork()  # while the other thread's call is in flight
if pid == 0:
    os._exit(0 if blas.get_num_threads() == original else 3)
stop.set()
worker.join()
_, status = os.waitpid(pid, 0)
print("ok" if os.waitstatus_to_exitcode(status) == 0 else "child pinned", original)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_fork_during_another_threads_kernel_call_leaves_the_child_blas_its_setting(tmp_path):
    """The fork copies the pin of BLAS to one thread that the call in flight holds, but not the
    call that would lift it: the child must get BLAS's setting back."""
    script = tmp_path / "fork_in_flight.py"
    script.write_text(FORK_IN_FLIGHT_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    if run.stdout.startswith("skip"):
        pytest.skip("needs SciPy's OpenBLAS allowed 2 threads or more, and a kernel call seen in flight")
    assert run.stdout.startswith("ok"), run.stdout
