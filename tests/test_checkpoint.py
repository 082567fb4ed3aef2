"""Checkpoints and model files (rnnreg.checkpoint): written atomically, read back exactly, and
checked as hostile input before anything in them is used."""

import contextlib
import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset, load_model, save_model
from rnnreg import checkpoint as ckpt
from rnnreg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _task():
    return generate_simple_dataset(10, 12, 96, seed=1), generate_simple_dataset(10, 12, 32, seed=2)


def test_a_failed_write_leaves_the_previous_checkpoint_usable(tmp_path, monkeypatch):
    path = str(tmp_path / "ck.npz")
    save_checkpoint(path, {"epoch": 1, "model": {"W": np.ones(3)}})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "model": {"W": np.zeros(3)}})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_checkpoint_holds_what_resuming_needs(tmp_path):
    train, val = _task()
    path = str(tmp_path / "ck.npz")
    model = RegularizedLSTM(12, 8, seed=0, dropout_keep_prob=0.8)
    fit(
        model,
        train,
        val,
        TrainConfig(epochs=2, batch_size=16, patience=3, progress=False, checkpoint_path=path),
        log=None,
    )
    payload = load_checkpoint(path)
    assert {
        "model",
        "optimizer",
        "monitor",
        "model_rng",
        "trainer_rng",
        "history",
        "model_config",
        "epoch",
    } <= set(payload)
    assert set(payload["optimizer"]["state"]["m"]) == set(model.params)
    assert payload["monitor"]["patience"] == 3


def test_a_checkpoint_of_another_format_version_is_refused(tmp_path, monkeypatch):
    path = str(tmp_path / "ck.npz")
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 99)
    save_checkpoint(path, {"epoch": 1})
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- checkpoints
def _trained(tmp_path, **config):
    """A 2-epoch run with early stopping on a task of 10 symbols; its checkpoint's path."""
    train = generate_simple_dataset(8, 10, 64, seed=1)
    val = generate_simple_dataset(8, 10, 32, seed=2)
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


def _write_npz(path, members, meta):
    """An .npz of the given arrays plus a meta.json of our choosing (bytes or a JSON value)."""
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    buffer = io.BytesIO()
    np.savez(buffer, **members, **{"meta.json": np.frombuffer(raw, np.uint8)})
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


GOOD_SHA = "0" * 64


@pytest.mark.parametrize(
    "edit, message",
    [
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
    ],
)
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
    history = fit(
        model, train, val, TrainConfig(**{**cfg, "epochs": 3, "progress": False}), resume_from=path, log=None
    )
    assert history["epoch"] == [0, 1, 2]


@pytest.mark.parametrize(
    "meta, field",
    [
        (b"[1, 2", "meta.json is corrupted"),
        ([1, 2], "must hold an object"),
        ({"format_version": 1, "arrays": [], "sha256": GOOD_SHA, "payload": {}}, "'arrays'"),
        ({"format_version": 1, "arrays": {}, "sha256": 5, "payload": {}}, "'sha256'"),
        ({"format_version": 1, "arrays": {}, "sha256": "xyz", "payload": {}}, "'sha256'"),
        ({"format_version": 1, "arrays": {}, "sha256": GOOD_SHA}, "'payload'"),
        ({"format_version": "1", "arrays": {}, "sha256": GOOD_SHA, "payload": {}}, "format version"),
        (
            {
                "format_version": 1,
                "arrays": {"/a": {"shape": [-1], "dtype": "<f8"}},
                "sha256": GOOD_SHA,
                "payload": {},
            },
            "['shape']",
        ),
        (
            {
                "format_version": 1,
                "arrays": {"/a": {"shape": [2], "dtype": "|O"}},
                "sha256": GOOD_SHA,
                "payload": {},
            },
            "['dtype']",
        ),
        (
            {"format_version": 1, "arrays": {"/a": {"shape": [2]}}, "sha256": GOOD_SHA, "payload": {}},
            "'arrays'['/a']",
        ),
        (
            {
                "format_version": 1,
                "arrays": {"/../a": {"shape": [2], "dtype": "<f8"}},
                "sha256": GOOD_SHA,
                "payload": {},
            },
            "not an array name",
        ),
        (
            {
                "format_version": 1,
                "arrays": {"/b": {"shape": [2], "dtype": "<f8"}},
                "sha256": GOOD_SHA,
                "payload": {},
            },
            "differ from those listed",
        ),
    ],
)
def test_a_malformed_meta_json_raises_checkpoint_error_naming_the_field(tmp_path, meta, field):
    path = str(tmp_path / "bad.npz")
    _write_npz(path, {"a": np.zeros(2)}, meta)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert field in str(info.value)


def test_load_model_checks_the_model_config(tmp_path):
    path, *_ = _trained(tmp_path)
    _rewrite(path, lambda p: p["model_config"].update(hidden_size=-5))
    with pytest.raises(CheckpointError, match="model_config"):
        load_model(path)


def _small_task(seed=1):
    train = generate_simple_dataset(10, 12, 120, seed=seed)
    val = generate_simple_dataset(10, 12, 40, seed=seed + 100)
    return train, val


def test_checkpoint_round_trip(tmp_path):
    train, val = _small_task()
    model = RegularizedLSTM(12, 16, seed=0, use_layer_norm=True, num_layers=2, embedding_size=5)
    path = tmp_path / "run.npz"
    fit(
        model,
        train,
        val,
        TrainConfig(epochs=2, batch_size=16, patience=2, progress=False, checkpoint_path=str(path)),
        log=None,
    )
    payload = load_checkpoint(path)
    assert payload["epoch"] == 1
    restored = load_model(path)
    for name, value in model.state_dict().items():
        # restore_best_weights may have rolled `model` back; the checkpoint holds the last epoch
        assert restored.params[name].shape == value.shape
    assert restored.config() == model.config()


def test_resume_is_bit_identical(tmp_path):
    train, val = _small_task()
    config = dict(epochs=4, batch_size=16, seed=7, progress=False, patience=10)
    straight = RegularizedLSTM(12, 16, seed=1, dropout_keep_prob=0.8)
    h_straight = fit(straight, train, val, TrainConfig(**config), log=None)

    path = str(tmp_path / "ck.npz")
    first = RegularizedLSTM(12, 16, seed=1, dropout_keep_prob=0.8)
    fit(first, train, val, TrainConfig(**{**config, "epochs": 2}, checkpoint_path=path), log=None)
    resumed = RegularizedLSTM(12, 16, seed=999, dropout_keep_prob=0.8)  # state comes from the file
    h_resumed = fit(resumed, train, val, TrainConfig(**config), resume_from=path, log=None)
    assert h_resumed["train_loss"] == h_straight["train_loss"]
    assert h_resumed["val_loss"] == h_straight["val_loss"]
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.params[name], value)


def test_corrupted_checkpoint_is_refused_clearly(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(str(path), {"model": {"W": np.arange(6.0).reshape(2, 3)}, "epoch": 3})
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(str(path))
    # flip bytes inside the array data: the checksum catches it
    data = bytearray(good)
    idx = data.find(np.arange(6.0).tobytes())
    assert idx > 0
    data[idx + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(str(path))


def test_model_files_and_checkpoints_carry_the_vocabulary(tmp_path, train_toy_model):
    model, corpus, ckpt = train_toy_model(tmp_path / "ck.npz")
    path = str(tmp_path / "model.npz")
    save_model(model, path)
    for source in (path, ckpt):
        loaded = load_model(source)
        assert loaded.vocabulary == corpus.vocabulary
    loaded = load_model(path)
    for name, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
    assert loaded.generate("the ", 30, rng=5) == model.generate("the ", 30, rng=5)
    assert "optimizer" not in load_checkpoint(path)
    payload = load_checkpoint(path)
    payload["vocabulary"] = payload["vocabulary"][:-1]  # one symbol short of the model
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_model(path)


def _stream(n=600, seed=0, V=9):
    rng = np.random.default_rng(seed)
    return (np.arange(n) + rng.integers(0, 2, n)) % V


# ----------------------------------------------------------------------------- where users meet them
def test_model_files_and_checkpoints_carry_every_regularizer(tmp_path):
    kwargs = dict(
        zoneout_hidden=0.1,
        zoneout_cell=0.5,
        embedding_keep_prob=0.9,
        activation_reg=2.0,
        temporal_activation_reg=1.0,
        tie_weights=True,
    )
    model = RegularizedLSTM(9, 6, seed=0, **kwargs)
    loaded = load_model(save_model(model, str(tmp_path / "m.npz")))
    assert loaded.config() == model.config()
    tokens = np.arange(6)[None]
    assert np.array_equal(loaded.logits(tokens)[0], model.logits(tokens)[0])


def test_nt_asgd_resume_is_exact(tmp_path):
    train, val = _stream(800), _stream(300, 1)
    # lr 10: validation gets worse at epoch 3, so averaging starts before the checkpoint of
    # epoch 3 and its average has to travel through the file.
    config = dict(optimizer="nt-asgd", lr=10.0, nonmono=1, progress=False, variable_bptt=True, bptt=12)
    whole_model = RegularizedLSTM(9, 8, seed=0, zoneout_cell=0.3, activation_reg=1.0)
    whole = fit(whole_model, train, val, TrainConfig(epochs=6, **config), log=lambda _: None)
    path = str(tmp_path / "run.npz")
    first = RegularizedLSTM(9, 8, seed=0, zoneout_cell=0.3, activation_reg=1.0)
    lines = []
    fit(first, train, val, TrainConfig(epochs=4, checkpoint_path=path, **config), log=lines.append)
    assert "averaging" in lines[3]
    resumed_model = RegularizedLSTM(9, 8, seed=0, zoneout_cell=0.3, activation_reg=1.0)
    resumed = fit(
        resumed_model,
        train,
        val,
        TrainConfig(epochs=6, checkpoint_path=path, **config),
        resume_from=path,
        log=lambda _: None,
    )
    assert resumed["val_loss"] == whole["val_loss"]
    for name in whole_model.params:
        assert np.array_equal(whole_model.params[name], resumed_model.params[name]), name


def test_optimizer_moments_of_the_wrong_size_are_refused_before_use(tmp_path, run_python):
    """Used to corrupt the heap ("corrupted double-linked list"): the moments were handed to the
    Adam kernel as they came."""
    path, *_ = _trained(tmp_path)
    _rewrite(path, lambda p: p["optimizer"]["state"]["m"].update(W0=np.zeros(3)))
    out = run_python(f"""
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
    """)
    assert "refused:" in out and "optimizer/state/m/W0" in out


def test_an_object_array_is_never_unpickled(tmp_path):
    path = str(tmp_path / "pickle.npz")
    buffer = io.BytesIO()
    np.savez(
        buffer,
        a=np.array([{"x": 1}], dtype=object),
        **{
            "meta.json": np.frombuffer(
                json.dumps(
                    {
                        "format_version": 1,
                        "arrays": {"/a": {"shape": [1], "dtype": "<f8"}},
                        "sha256": GOOD_SHA,
                        "payload": {},
                    }
                ).encode(),
                np.uint8,
            )
        },
    )
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
    with _traced_peak() as traced, pytest.raises(CheckpointError, match="refused before decompressing"):
        load_checkpoint(bomb)
    assert traced["peak"] < 20_000_000
    # the same bomb declared honestly in meta.json: refused because the model is smaller
    meta = ckpt.read_meta(path)
    meta["arrays"]["/model/W0"]["shape"] = [50_000_000]
    meta_path = str(tmp_path / "declared.npz")
    with zipfile.ZipFile(bomb) as src, zipfile.ZipFile(meta_path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info) if info.filename != "meta.json.npy" else _meta_member(meta)
            dst.writestr(info.filename, data)
    with pytest.raises(CheckpointError, match="W0"):
        load_model(meta_path)


# ----------------------------------------------------------------------------- wrong and crafted files
@contextlib.contextmanager
def _traced_peak():
    """The peak of memory traced (tracemalloc) while the block runs, as ``traced["peak"]``."""
    traced = {}
    tracemalloc.start()
    try:
        yield traced
        traced["peak"] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _meta_member(meta):
    """The bytes of a file's meta.json.npy member holding ``meta``."""
    raw = io.BytesIO()
    np.lib.format.write_array(raw, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return raw.getvalue()


def _crafted_model_file(path, hidden):
    """A tiny model file whose model_config declares a model of ``hidden`` units (~700 bytes):
    a hostile file claiming a huge model."""
    meta = {
        "format_version": ckpt.FORMAT_VERSION,
        "arrays": {},
        "sha256": "0" * 64,
        "payload": {"model_config": {"vocab_size": 50, "hidden_size": hidden}},
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json.npy", _meta_member(meta))
    return path


@pytest.mark.parametrize("hidden", [20_000, 2**30])
def test_a_small_file_declaring_a_huge_model_is_refused_at_once(tmp_path, hidden, monkeypatch):
    """Refused before any model is built (building one was what took gigabytes and up to 46 s):
    no RegularizedLSTM is constructed, and the peak of traced memory stays small. (How long the
    refusal takes is a benchmark figure, not asserted here: this machine is shared.)"""
    path = _crafted_model_file(str(tmp_path / "crafted.npz"), hidden)
    assert os.path.getsize(path) < 1000
    built = []
    original = RegularizedLSTM.__init__
    monkeypatch.setattr(
        RegularizedLSTM, "__init__", lambda self, *a, **k: built.append(k) or original(self, *a, **k)
    )
    with _traced_peak() as traced, pytest.raises(CheckpointError, match="not those of the model"):
        load_model(path)
    assert built == []
    assert traced["peak"] < 50_000_000


def test_members_claiming_more_than_the_file_can_hold_are_refused(tmp_path):
    model = RegularizedLSTM(10, 8, seed=0)
    path = save_model(model, str(tmp_path / "m.npz"))
    data = bytearray(open(path, "rb").read())
    # the central directory's uncompressed size of the first member: claim 2 GB
    directory = data.rfind(b"PK\x01\x02")
    data[directory + 24 : directory + 28] = (2**31 - 1).to_bytes(4, "little")
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointError, match="refused before decompressing|corrupted"):
        load_model(path)


@pytest.mark.parametrize("kind", ["folder", "json", "other", "dev-zero"])
def test_the_wrong_kind_of_file_is_named_as_such(tmp_path, kind):
    if kind == "folder":
        path, message = str(tmp_path), "is a folder"
    elif kind == "json":
        path, message = str(tmp_path / "history.json"), "JSON file"
        open(path, "w").write('{"epoch": [0]}')
    elif kind == "other":
        path, message = str(tmp_path / "notes.txt"), "not a zip archive"
        open(path, "w").write("some notes")
    else:
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        path, message = "/dev/zero", "not a regular file"
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_a_corrupted_member_is_a_checkpoint_error_not_a_zlib_error(tmp_path):
    model = RegularizedLSTM(10, 8, seed=0)
    path = str(tmp_path / "m.npz")
    with (
        zipfile.ZipFile(save_model(model, str(tmp_path / "plain.npz"))) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    data = bytearray(open(path, "rb").read())
    start = data.find(b"PK\x03\x04", 10)  # the second member's local header
    name_length = int.from_bytes(data[start + 26 : start + 28], "little")
    body = start + 30 + name_length
    for k in range(body + 40, body + 80):  # scramble its deflate stream
        data[k] ^= 0x5A
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointError):
        load_model(path)


@pytest.mark.parametrize("member", ["meta.json.npy", "model/W0.npy"])
@pytest.mark.parametrize(
    "header",
    [
        b"{'descr': '|u1', 'fortran_order': False, 'shape': (1072, }",  # a bracket left open
        b"{'descr': '''|u1', 'fortran_order': False, 'shape': (1072,), }",  # a string left open
    ],
)
def test_a_npy_header_that_does_not_parse_is_a_checkpoint_error_in_one_line(tmp_path, capsys, member, header):
    from rnnreg.cli import main

    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    save_model(RegularizedLSTM(5, 8, seed=0), str(good))
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == member:  # the same header length, its text cut where NumPy's parser chokes
                length = int.from_bytes(data[8:10], "little")
                data = data[:10] + header.ljust(length - 1) + b"\n" + data[10 + length :]
            target.writestr(name, data)
    with pytest.raises(CheckpointError):
        load_model(str(bad))
    assert main(["sample", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
