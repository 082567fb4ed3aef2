"""Refactors keep every seeded result bit for bit, and files of the previous release still load.

``tests/fixtures/seeded_results.json`` holds, as exact float hex strings, the losses, gradient
norms and a checksum of the final weights of short seeded runs of every named setting of
``rnnreg compare`` and of the regularizers those leave off (recorded by
``tests/fixtures/record_seeded_results.py`` before the model was rebuilt from parts). A change
that moves one bit of any of them fails here.
"""

import importlib.util
import json
import os

import numpy as np
import pytest

import rnnreg
from rnnreg import TrainConfig, fit, load_model
from rnnreg.checkpoint import CheckpointError

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def _recorder():
    spec = importlib.util.spec_from_file_location(
        "record_seeded_results", os.path.join(FIXTURES, "record_seeded_results.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECORDER = _recorder()
with open(RECORDER.RECORD) as f:
    RECORDED = json.load(f)
# The bits depend on the BLAS the kernels call too: exact where it is the recording's, and
# within rounding elsewhere (the sdist job's oldest SciPy, another CPU's kernels).
RECORDED_ENVIRONMENT = RECORDED.pop("environment")
SAME_ENVIRONMENT = RECORDER.environment() == RECORDED_ENVIRONMENT


@pytest.fixture(scope="module")
def base_data():
    return RECORDER.load_base_data()


def test_every_named_setting_is_recorded():
    """A setting added to compare (or a case to the recorder) needs its record."""
    assert set(RECORDER.cases()) == set(RECORDED)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_seeded_results_are_bit_identical(name, base_data):
    settings, overrides = RECORDER.cases()[name]
    got = RECORDER.run_case(settings, overrides, data=base_data)
    if SAME_ENVIRONMENT:
        assert got == RECORDED[name]
        return
    # another BLAS: every figure within rounding of two epochs (float32 runs a little wider)
    tolerance = 1e-3 if "float32" in name else 1e-8
    for key in ("train_loss", "val_loss", "grad_norm"):
        np.testing.assert_allclose(
            [float.fromhex(x) for x in got[key]],
            [float.fromhex(x) for x in RECORDED[name][key]],
            rtol=tolerance,
        )
    assert float.fromhex(got["test_loss"]) == pytest.approx(
        float.fromhex(RECORDED[name]["test_loss"]), rel=tolerance
    )


@pytest.mark.parametrize("name", ["none", "awd"])
def test_seeded_results_do_not_depend_on_the_backend(name, base_data):
    """The NumPy twins reach the same validation losses as the kernels on these runs (float64;
    they are bit-equal today, and a summation order may change that, but not beyond 1e-12)."""
    settings, overrides = RECORDER.cases()[name]
    with rnnreg.use_backend("numpy"):
        got = RECORDER.run_case(settings, overrides, data=base_data)
    np.testing.assert_allclose(
        [float.fromhex(x) for x in got["val_loss"]],
        [float.fromhex(x) for x in RECORDED[name]["val_loss"]],
        rtol=1e-12,
    )


# ----------------------------------------------------------------------------- release 0.1.0
def test_a_model_file_of_release_0_1_0_loads_and_gives_the_same_logits():
    model = load_model(os.path.join(FIXTURES, "release-0.1.0-model.npz"))
    assert model.num_layers == 2 and model.tie_weights and model.use_layer_norm
    logits = model.logits(model.vocabulary.encode("the cat"))[0]
    np.testing.assert_array_equal(logits, np.load(os.path.join(FIXTURES, "release-0.1.0-logits.npy")))


def test_a_checkpoint_of_release_0_1_0_resumes(tmp_path):
    """The checkpoint of a two-epoch run of 0.1.0 continues for a third epoch."""
    from rnnreg import CharCorpus

    path = str(tmp_path / "checkpoint.npz")
    with open(os.path.join(FIXTURES, "release-0.1.0-checkpoint.npz"), "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    model = load_model(path)
    text = "the cat sat on the mat. the dog sat on the log. " * 10
    corpus = CharCorpus(text, "the rat sat.", "a cat on a mat.", name="toy")
    fresh = rnnreg.RegularizedLSTM(**model.config())
    history = fit(
        fresh,
        corpus.train,
        corpus.val,
        TrainConfig(epochs=3, patience=3, progress=False, checkpoint_path=path),
        resume_from=path,
        log=lambda line: None,
    )
    assert history["epoch"] == [0, 1, 2]


def test_a_file_of_an_unknown_format_version_is_refused_naming_it(tmp_path):
    from rnnreg.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint

    path = str(tmp_path / "future.npz")
    save_checkpoint(path, {"x": np.zeros(2)})
    import zipfile

    with zipfile.ZipFile(path) as archive:
        meta = json.loads(np.lib.format.read_array(archive.open("meta.json.npy")).tobytes())
    meta["format_version"] = FORMAT_VERSION + 1
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("x.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(2))
        with archive.open("meta.json.npy", "w") as member:
            np.lib.format.write_array(member, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}"):
        load_checkpoint(path)
