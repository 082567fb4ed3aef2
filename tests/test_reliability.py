"""Faults lose nothing; results are reproducible; kernels release the GIL and keep no state."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import rnnreg
from rnnreg import RegularizedLSTM, generate_simple_dataset
from rnnreg.checkpoint import load_checkpoint
from rnnreg.gradcheck import relative_error
from rnnreg.training import TrainConfig, evaluate, fit


def _task():
    return generate_simple_dataset(10, 12, 96, seed=1), generate_simple_dataset(10, 12, 32, seed=2)


# ----------------------------------------------------------------------------- checkpoints
WRITER = textwrap.dedent("""
    import sys, numpy as np
    from rnnreg.checkpoint import save_checkpoint
    path = sys.argv[1]
    rng = np.random.default_rng(0)
    big = rng.standard_normal((400, 400))        # ~1.3 MB per checkpoint: writes take a while
    epoch = 0
    while True:
        epoch += 1
        save_checkpoint(path, {"epoch": epoch, "model": {"W": big, "stamp": np.full(1000, epoch)}})
        print(epoch, flush=True)
""")


@pytest.mark.slow
def test_a_process_killed_while_writing_loses_nothing_saved_before(tmp_path):
    """SIGKILL a process that rewrites its checkpoint in a loop, at arbitrary moments: the file
    on disk is always a complete checkpoint, at least as new as the last write it reported."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = tmp_path / "ck.npz"
    rng = np.random.default_rng(0)
    for _trial in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        reported = 0
        target = 2 + int(rng.integers(0, 4))
        for line in proc.stdout:  # wait until a few checkpoints are known to be written
            reported = int(line)
            if reported >= target:
                break
        time.sleep(float(rng.uniform(0, 0.05)))  # then kill it, most likely mid-write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        payload = load_checkpoint(str(path))
        assert payload["epoch"] >= reported
        np.testing.assert_array_equal(
            payload["model"]["W"], np.random.default_rng(0).standard_normal((400, 400))
        )
        assert (payload["model"]["stamp"] == payload["epoch"]).all()  # one consistent write
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    assert len(leftovers) <= 6  # a killed writer may leave its temporary file, never a torn target


# ----------------------------------------------------------------------------- exploding gradients
def test_clipping_rescues_a_run_that_diverges_without_it():
    """A confidently wrong output layer (Why x 300) gives gradient norms near 100: plain SGD at
    lr 1 then blows the loss up, while the same run with the global norm clipped to 0.1 learns."""
    train, val = _task()
    curves = {}
    for clip in (None, 0.1):
        model = RegularizedLSTM(12, 32, seed=0, forget_bias=1.0)  # the weights it was tuned on
        model.params["Why"] *= 300
        start = evaluate(model, val)
        cfg = TrainConfig(
            epochs=10, batch_size=16, optimizer="sgd", lr=1.0, momentum=0.0, clip_norm=clip, progress=False
        )
        history = fit(model, train, val, cfg, log=None)
        curves[clip] = np.array(history["val_loss"]) / start
        assert max(history["grad_norm"]) > 40  # the gradients do explode in both runs
    assert curves[None].max() > 3  # unclipped: the loss blows up
    assert curves[0.1][-1] < 0.4  # clipped: steady progress
    assert np.all(curves[0.1] < 1)


# ----------------------------------------------------------------------------- reproducibility
def test_backends_agree_on_losses_and_draw_the_same_masks():
    train, val = _task()
    histories = {}
    for backend in ("compiled", "numpy"):
        with rnnreg.use_backend(backend):
            model = RegularizedLSTM(
                12,
                8,
                seed=0,
                dropout_keep_prob=0.7,
                recurrent_keep_prob=0.8,
                weight_keep_prob=0.9,
                use_layer_norm=True,
            )
            histories[backend] = fit(
                model, train, val, TrainConfig(epochs=3, batch_size=16, progress=False), log=None
            )
    for key in ("train_loss", "val_loss"):
        assert relative_error(histories["compiled"][key], histories["numpy"][key]) < 1e-9
    for backend in ("compiled", "numpy"):
        with rnnreg.use_backend(backend):
            histories[backend]["mask"] = rnnreg.dropout_mask((50, 40), 0.5, rng=123)
    np.testing.assert_array_equal(histories["compiled"]["mask"], histories["numpy"]["mask"])


def _train_once(seed, out, key):
    train, val = _task()
    model = RegularizedLSTM(12, 16, seed=seed, dropout_keep_prob=0.8)
    history = fit(model, train, val, TrainConfig(epochs=3, batch_size=8, seed=seed, progress=False), log=None)
    out[key] = (history["train_loss"], model.state_dict())


def test_two_models_in_two_threads_equal_one_after_the_other():
    sequential, threaded = {}, {}
    _train_once(1, sequential, "a")
    _train_once(2, sequential, "b")
    threads = [threading.Thread(target=_train_once, args=(s, threaded, k)) for s, k in ((1, "a"), (2, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key in ("a", "b"):
        assert threaded[key][0] == sequential[key][0]
        for name, value in sequential[key][1].items():
            np.testing.assert_array_equal(threaded[key][1][name], value)


def test_kernels_release_the_gil():
    """While one thread runs a long kernel, another thread keeps running Python code."""
    from rnnreg import _backend

    K = _backend._kernels
    rng = np.random.default_rng(0)
    N, T, D, H = 8, 2000, 8, 64
    x = rng.standard_normal((N, T, D))
    h0 = np.zeros((N, H))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)) * 0.1, rng.standard_normal((H, 4 * H)) * 0.1, np.zeros(4 * H)
    started = threading.Event()

    def work():
        started.set()
        K.lstm_forward(x, h0, h0, Wx, Wh, b, None, None, 1e-5)

    progress = 0
    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    while worker.is_alive():
        progress += 1
    worker.join()
    # A kernel holding the GIL would leave this loop a handful of iterations at most.
    assert progress > 1000


def test_resident_memory_stays_flat_over_100000_kernel_calls():
    def rss_bytes():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 4))
    h0 = np.zeros((1, 5))
    Wx, Wh, b = rng.standard_normal((4, 20)), rng.standard_normal((5, 20)), np.zeros(20)
    ln = rnnreg.lstm_layer_norm_params(5)
    dh = np.ones((1, 3, 5))
    v = rng.standard_normal((4, 6))
    gamma, beta = np.ones(6), np.zeros(6)
    gen = np.random.default_rng(1)

    def calls(n):
        for _ in range(n):
            _, cache = rnnreg.lstm_forward(x, h0, Wx, Wh, b, layer_norm=ln)
            rnnreg.lstm_backward(dh, cache)
            out, lcache = rnnreg.layer_norm_forward(v, gamma, beta)
            rnnreg.layer_norm_backward(out, lcache)
            rnnreg.dropout_forward(v, 0.5, True, gen)

    calls(5000)  # warm up allocator pools
    before = rss_bytes()
    calls(20000)  # 5 kernels a round: 100,000 kernel calls
    growth = rss_bytes() - before
    assert growth < 8 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB"
