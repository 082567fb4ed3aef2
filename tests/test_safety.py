"""Safe by construction, above the kernels: the model and the optimizers re-check what can
change between calls, checkpoints are hostile input, the command line never shows a user a
traceback, and the backend choice is per thread. Cases that used to crash the interpreter or
corrupt its heap run in a child process."""
import errno
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

import rnnreg
from rnnreg import RegularizedLSTM, _backend, generate_simple_dataset
from rnnreg import checkpoint as ckpt
from rnnreg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rnnreg.cli import main
from rnnreg.optim import SGD, Adam
from rnnreg.training import TrainConfig, TrainingError, evaluate, fit, load_model

pytestmark = pytest.mark.safety


def _task():
    return generate_simple_dataset(8, 10, 64, seed=1), generate_simple_dataset(8, 10, 32, seed=2)


def _child(code, tmp_path):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (f"child exited with {proc.returncode}\nstdout: {proc.stdout}"
                                  f"\nstderr: {proc.stderr}")
    return proc.stdout


# ----------------------------------------------------------------------------- the model
def test_a_parameter_of_the_wrong_shape_raises_before_any_kernel(tmp_path):
    out = _child("""
        import numpy as np
        from rnnreg import RegularizedLSTM, generate_simple_dataset
        x, y = generate_simple_dataset(5, 7, 4, seed=0)
        for name, bad in (("W0", np.zeros((3, 3))), ("W0", np.zeros((11, 16), np.float32)),
                          ("W0", np.zeros((16, 11)).T), ("Why", np.zeros((4, 2))),
                          ("b0", [0.0] * 16), ("ln0.gamma_c", np.ones(40))):
            model = RegularizedLSTM(7, 4, seed=0, use_layer_norm=True)
            model.params[name] = bad
            try:
                model.forward_batch(x, y)
            except ValueError as exc:
                assert name in str(exc), exc
            else:
                raise AssertionError(f"{name} accepted")
        model = RegularizedLSTM(7, 4, seed=0)
        model.forward_batch(x, y, training=True)
        model.params["Why"] = np.zeros((1, 1))     # replaced between forward and backward
        try:
            model.backward()
        except ValueError as exc:
            assert "Why" in str(exc)
        print("ok")
    """, tmp_path)
    assert out.strip() == "ok"


# ----------------------------------------------------------------------------- optimizers
def test_sgd_refuses_a_gradient_it_would_broadcast():
    params = {"w": np.ones((3, 4))}
    for bad in (np.ones(1), np.ones((4, 3)), np.ones((3, 4), np.float32), [[1.0] * 4] * 3):
        with pytest.raises(ValueError, match=r"grads\['w'\]"):
            SGD(params, lr=0.1).step({"w": bad})
        with pytest.raises(ValueError, match=r"grads\['w'\]"):
            Adam(params).step({"w": bad})
    assert (params["w"] == 1).all()   # nothing was updated


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0, -1.0, "0.1", None])
def test_an_optimizer_refuses_a_learning_rate_set_from_outside(lr):
    params = {"w": np.ones((2, 2))}
    for opt in (SGD(params), Adam(params)):
        opt.lr = lr
        with pytest.raises(ValueError, match="lr must be"):
            opt.step({"w": np.ones((2, 2))})
    assert (params["w"] == 1).all()


@pytest.mark.parametrize("bad_lr", [float("nan"), 0.0, -0.1, float("inf")])
def test_a_schedule_that_gives_a_bad_rate_stops_training_with_the_best_weights(bad_lr):
    train, val = _task()
    model = RegularizedLSTM(10, 8, seed=0)
    schedule = lambda epoch: 1e-2 if epoch < 3 else bad_lr
    with pytest.raises(TrainingError, match="learning-rate schedule gave") as info:
        fit(model, train, val, TrainConfig(epochs=6, batch_size=16, lr_schedule=schedule,
                                           patience=5, progress=False), log=None)
    assert "best weights were restored" in str(info.value)
    history = info.value.args[1]
    assert len(history["val_loss"]) == 3 and np.isfinite(model.params["W0"]).all()
    assert evaluate(model, val) == pytest.approx(history["best_val_loss"], rel=1e-9)


# ----------------------------------------------------------------------------- checkpoints
def _trained(tmp_path, **config):
    train, val = _task()
    path = str(tmp_path / "ck.npz")
    model = RegularizedLSTM(10, 8, seed=0)
    cfg = dict(epochs=2, batch_size=16, patience=4, progress=False, checkpoint_path=path)
    cfg.update(config)
    fit(model, train, val, TrainConfig(**cfg), log=None)
    return path, train, val, cfg


def _rewrite(path, edit):
    """Load a checkpoint, let edit() change its payload, and save it again — with a valid
    checksum, as anyone can with save_checkpoint."""
    payload = load_checkpoint(path)
    edit(payload)
    save_checkpoint(path, payload)


def test_optimizer_moments_of_the_wrong_size_are_refused_before_use(tmp_path):
    """Used to corrupt the heap ("corrupted double-linked list"): the moments were handed to the
    Adam kernel as they came."""
    path, *_ = _trained(tmp_path)
    _rewrite(path, lambda p: p["optimizer"]["state"]["m"].update(W0=np.zeros(3)))
    out = _child(f"""
        import numpy as np
        from rnnreg import RegularizedLSTM, generate_simple_dataset
        from rnnreg.checkpoint import CheckpointError
        from rnnreg.training import TrainConfig, fit
        train = generate_simple_dataset(8, 10, 64, seed=1)
        val = generate_simple_dataset(8, 10, 32, seed=2)
        model = RegularizedLSTM(10, 8, seed=0)
        before = model.state_dict()
        try:
            fit(model, train, val, TrainConfig(epochs=4, batch_size=16, patience=4,
                progress=False), resume_from={path!r}, log=None)
        except CheckpointError as exc:
            print("refused:", exc)
        for name, value in before.items():   # nothing was changed
            assert (model.params[name] == value).all()
    """, tmp_path)
    assert "refused:" in out and "optimizer/state/m/W0" in out


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["optimizer"]["state"]["v"].update(by=np.zeros(10, np.float32)), "dtype"),
    (lambda p: p["optimizer"].update(step_count=-3), "step_count"),
    (lambda p: p["optimizer"].update(lr=float("nan")), "'lr'"),
    (lambda p: p["optimizer"]["state"].pop("v"), "'state'"),
    (lambda p: p["monitor"].update(best_weights={"W0": np.zeros(2)}), "best_weights"),
    (lambda p: p["monitor"].update(wait="3"), "'wait'"),
    (lambda p: p.update(model_rng={"bit_generator": "MT19937", "state": 1}), "model_rng"),
    (lambda p: p["trainer_rng"].update(state={"state": "x", "inc": 1}), "trainer_rng"),
    (lambda p: p["history"].update(val_loss="oops"), "val_loss"),
    (lambda p: p.update(epoch="1"), "epoch"),
    (lambda p: p["model"].update(extra=np.zeros(2)), "extra"),
    (lambda p: p["model"].update(W0=p["model"]["W0"].astype(">f8")), "W0"),
    (lambda p: p["train_config"].update(lr=0.5), "lr (checkpoint 0.5"),
    (lambda p: p["train_config"].update(bptt=7), "bptt"),
])
def test_a_checkpoint_that_does_not_fit_is_refused_naming_what(tmp_path, edit, message):
    path, train, val, cfg = _trained(tmp_path)
    _rewrite(path, edit)
    model = RegularizedLSTM(10, 8, seed=0)
    before = model.state_dict()
    with pytest.raises(CheckpointError) as info:
        fit(model, train, val, TrainConfig(**{**cfg, "epochs": 4}), resume_from=path, log=None)
    assert message in str(info.value)
    for name, value in before.items():
        np.testing.assert_array_equal(model.params[name], value)


def test_resume_may_change_only_length_output_and_progress(tmp_path):
    path, train, val, cfg = _trained(tmp_path)
    model = RegularizedLSTM(10, 8, seed=0)
    history = fit(model, train, val, TrainConfig(**{**cfg, "epochs": 3, "progress": False}),
                  resume_from=path, log=None)
    assert history["epoch"] == [0, 1, 2]


def _write_npz(path, members, meta):
    """An .npz of the given arrays plus a meta.json of our choosing (bytes or a JSON value)."""
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    buffer = io.BytesIO()
    np.savez(buffer, **members, **{"meta.json": np.frombuffer(raw, np.uint8)})
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


GOOD_SHA = "0" * 64


@pytest.mark.parametrize("meta, field", [
    (b"[1, 2", "meta.json is corrupted"),
    ([1, 2], "must hold an object"),
    ({"format_version": 1, "arrays": [], "sha256": GOOD_SHA, "payload": {}}, "'arrays'"),
    ({"format_version": 1, "arrays": {}, "sha256": 5, "payload": {}}, "'sha256'"),
    ({"format_version": 1, "arrays": {}, "sha256": "xyz", "payload": {}}, "'sha256'"),
    ({"format_version": 1, "arrays": {}, "sha256": GOOD_SHA}, "'payload'"),
    ({"format_version": "1", "arrays": {}, "sha256": GOOD_SHA, "payload": {}}, "format version"),
    ({"format_version": 1, "arrays": {"/a": {"shape": [-1], "dtype": "<f8"}}, "sha256": GOOD_SHA,
      "payload": {}}, "['shape']"),
    ({"format_version": 1, "arrays": {"/a": {"shape": [2], "dtype": "|O"}}, "sha256": GOOD_SHA,
      "payload": {}}, "['dtype']"),
    ({"format_version": 1, "arrays": {"/a": {"shape": [2]}}, "sha256": GOOD_SHA, "payload": {}},
     "'arrays'['/a']"),
    ({"format_version": 1, "arrays": {"/../a": {"shape": [2], "dtype": "<f8"}},
      "sha256": GOOD_SHA, "payload": {}}, "not an array name"),
    ({"format_version": 1, "arrays": {"/b": {"shape": [2], "dtype": "<f8"}}, "sha256": GOOD_SHA,
      "payload": {}}, "differ from those listed"),
])
def test_a_malformed_meta_json_raises_checkpoint_error_naming_the_field(tmp_path, meta, field):
    path = str(tmp_path / "bad.npz")
    _write_npz(path, {"a": np.zeros(2)}, meta)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert field in str(info.value)


def test_an_object_array_is_never_unpickled(tmp_path):
    path = str(tmp_path / "pickle.npz")
    buffer = io.BytesIO()
    np.savez(buffer, a=np.array([{"x": 1}], dtype=object),
             **{"meta.json": np.frombuffer(json.dumps({
                 "format_version": 1, "arrays": {"/a": {"shape": [1], "dtype": "<f8"}},
                 "sha256": GOOD_SHA, "payload": {}}).encode(), np.uint8)})
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    with pytest.raises(CheckpointError, match="holds"):
        load_checkpoint(path)


@pytest.mark.slow
def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    """A small file whose member inflates to 400 MB: refused from the sizes in the zip directory
    and meta.json, before anything is decompressed (memory stays flat)."""
    path, *_ = _trained(tmp_path)
    bomb = str(tmp_path / "bomb.npz")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == "model/W0.npy":
                big = io.BytesIO()
                np.lib.format.write_array(big, np.zeros(50_000_000))
                dst.writestr("model/W0.npy", big.getvalue())
            else:
                dst.writestr(info, src.read(info))
    assert os.path.getsize(bomb) < 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="refused before decompressing"):
            load_checkpoint(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    # the same bomb declared honestly in meta.json: refused because the model is smaller
    meta = ckpt.read_meta(path)
    meta["arrays"]["/model/W0"]["shape"] = [50_000_000]
    meta_path = str(tmp_path / "declared.npz")
    with zipfile.ZipFile(bomb) as src, zipfile.ZipFile(meta_path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info) if info.filename != "meta.json.npy" else None
            if data is None:
                raw = io.BytesIO()
                np.lib.format.write_array(raw, np.frombuffer(json.dumps(meta).encode(), np.uint8))
                data = raw.getvalue()
            dst.writestr(info.filename, data)
    with pytest.raises(CheckpointError, match="the model's W0"):
        load_model(meta_path)


def test_load_model_checks_the_model_config(tmp_path):
    path, *_ = _trained(tmp_path)
    _rewrite(path, lambda p: p["model_config"].update(hidden_size=-5))
    with pytest.raises(CheckpointError, match="model_config"):
        load_model(path)


# ----------------------------------------------------------------------------- command line
TRAIN = ["train", "--data", "synthetic", "--train-size", "60", "--hidden", "8", "--no-progress"]


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    rc = main(TRAIN + ["--epochs", "2", "--out", str(tmp_path / "none"), "--resume"])
    err = capsys.readouterr().err
    assert rc == 2 and "no checkpoint" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_unusable_output_folder_is_reported_before_the_first_epoch(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc = main(TRAIN + ["--epochs", "2", "--out", str(blocker / "run")])
    captured = capsys.readouterr()
    assert rc == 1 and "epoch" not in captured.out
    assert "error:" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_a_read_only_folder_and_a_full_disk_give_one_line(tmp_path, capsys, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    rc = main(TRAIN + ["--epochs", "2", "--out", str(tmp_path / "ro")])
    err = capsys.readouterr().err
    assert rc == 1 and "Read-only file system" in err and "Traceback" not in err
    monkeypatch.undo()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ckpt.os, "fsync", disk_full)
    rc = main(TRAIN + ["--epochs", "2", "--out", str(tmp_path / "full")])
    err = capsys.readouterr().err
    assert rc == 1 and "No space left on device" in err and len(err.strip().splitlines()) == 1


def test_a_bad_checkpoint_and_a_diverging_run_give_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(TRAIN + ["--epochs", "1", "--out", str(out), "--quiet"]) == 0
    (out / "train.checkpoint.npz").write_bytes(b"garbage")
    rc = main(TRAIN + ["--epochs", "2", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a readable checkpoint" in err and "Traceback" not in err
    diverge = ["--epochs", "3", "--lr", "1e38", "--clip", "0", "--optimizer", "sgd", "--quiet"]
    rc = main(TRAIN + diverge + ["--out", str(tmp_path / "diverge")])
    err = capsys.readouterr().err
    assert rc == 1 and "non-finite" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(TrainingError):   # --debug keeps the traceback for developers
        main(TRAIN + diverge + ["--out", str(tmp_path / "diverge2"), "--debug"])


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "rnnreg", "train", "--data", "synthetic", "--hidden", "64",
            "--train-size", "400", "--epochs", "500", "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for line in proc.stdout:      # wait until an epoch (and its checkpoint) is done
            if "epoch   1" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert str(out / "train.checkpoint.npz") in err and "--resume" in err
    epoch = load_checkpoint(str(out / "train.checkpoint.npz"))["epoch"]
    assert f"last completed epoch ({epoch})" in err


# ----------------------------------------------------------------------------- backend per thread
def test_use_backend_in_one_thread_does_not_change_another():
    inside, release = threading.Event(), threading.Event()
    seen = {}

    def switcher():
        with rnnreg.use_backend("numpy"):
            seen["switcher"] = (rnnreg.get_backend(), _backend.kernels().__name__)
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=switcher)
    thread.start()
    assert inside.wait(10)
    seen["main"] = (rnnreg.get_backend(), _backend.kernels().__name__)
    release.set()
    thread.join()
    assert seen["switcher"] == ("numpy", "rnnreg._reference")
    assert seen["main"][0] == "compiled" and seen["main"][1].startswith("rnnreg._kernels")
    rnnreg.set_backend("numpy")        # also per thread
    try:
        other = []
        t = threading.Thread(target=lambda: other.append(rnnreg.get_backend()))
        t.start()
        t.join()
        assert other == ["compiled"]
    finally:
        rnnreg.set_backend("compiled")
