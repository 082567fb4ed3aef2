"""Sequence data from files (the UCR/UEA .ts format, .npz, CSV), windows of a series that never
leak the future, the input standardization fitted on the training split only, and the real data
sets read from the aeon package's files."""

import importlib.util
import os

import numpy as np
import pytest

from rnnreg import RegularizedLSTM, load_model, save_model
from rnnreg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rnnreg.datasets import DataFileError, load_csv, load_npz, load_ts, windows
from rnnreg.sequences import Standardizer, sequence_set
from rnnreg.training import TrainConfig, fit

TS = """# a comment
@problemName tiny
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:down
7,8:9,10:up
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_ts_file_reads_as_sequences_of_their_own_lengths(tmp_path):
    X, y, names = load_ts(_write(tmp_path, "tiny.ts", TS))
    assert names == ("up", "down") and y.tolist() == [1, 0]
    assert [x.tolist() for x in X] == [[[1, 4], [2, 5], [3, 6]], [[7, 9], [8, 10]]]


def test_a_ts_file_of_regression_targets(tmp_path):
    text = "@problemName r\n@univariate true\n@targetLabel true\n@data\n1,2,3:0.5\n4,5:1.5\n"
    X, y, names = load_ts(_write(tmp_path, "r.ts", text))
    assert names == () and y.tolist() == [0.5, 1.5] and [x.shape for x in X] == [(3, 1), (2, 1)]


@pytest.mark.parametrize(
    "data, match",
    [
        ("1,2:3,4:5,6:up", "3 dimensions, the header says 2"),
        ("1,x:3,4:up", "'x' is not a number"),
        ("1,?:3,4:up", "'\\?' is not a number"),
        ("1,nan:3,4:up", "not a finite number"),
        ("1,2:3:up", "one length"),
        ("1,2:3,4:sideways", "class 'sideways'"),
    ],
)
def test_a_broken_ts_file_names_its_line(tmp_path, data, match):
    path = _write(tmp_path, "bad.ts", TS.split("@data")[0] + "@data\n" + data + "\n")
    with pytest.raises(DataFileError, match=match) as info:
        load_ts(path)
    assert "bad.ts, line 8" in str(info.value)


def test_a_ts_file_without_data_is_refused(tmp_path):
    with pytest.raises(DataFileError, match="no @data"):
        load_ts(_write(tmp_path, "empty.ts", "@problemName x\n@data\n"))


def test_npz_is_read_without_unpickling(tmp_path):
    path = str(tmp_path / "ok.npz")
    np.savez(path, X=np.ones((2, 3, 4)), y=np.array([0, 1]))
    X, y = load_npz(path)
    assert X.shape == (2, 3, 4) and y.tolist() == [0, 1]
    bad = str(tmp_path / "objects.npz")
    np.savez(bad, X=np.array([np.ones(2), np.ones(3)], dtype=object))
    with pytest.raises(DataFileError, match="plain arrays"):
        load_npz(bad)


def test_csv_takes_the_numeric_columns_and_names_a_bad_line(tmp_path):
    values, names = load_csv(_write(tmp_path, "s.csv", "when,a,b\n2020,1,2\n2021,3,4\n"))
    assert names == ("when", "a", "b") and values.tolist() == [[2020, 1, 2], [2021, 3, 4]]
    values, names = load_csv(_write(tmp_path, "m.csv", "month,a\n1949-01,1\n1949-02,2\n"))
    assert names == ("a",) and values[:, 0].tolist() == [1, 2]
    with pytest.raises(DataFileError, match="line 3: 1 fields"):
        load_csv(_write(tmp_path, "bad.csv", "a,b\n1,2\n3\n"))


def test_windows_never_put_a_later_part_in_an_earlier_parts_targets():
    series = np.arange(100.0)
    parts = windows(series, lookback=10, horizon=5, val=0.2, test=0.2)
    train_y, val_y, test_y = (parts[k][1] for k in ("train", "val", "test"))
    assert train_y.max() < 60 <= val_y.min() and val_y.max() < 80 <= test_y.min()
    X, y = parts["val"]
    assert np.array_equal(X[:, -1, 0] + 1, y[:, 0])  # each target follows its window


# ----------------------------------------------------------------------------- standardization
def _sequences(n, seed):
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((L, 3)) * [1, 10, 100] + [0, 5, -50] for L in rng.integers(3, 8, n)]
    return X, rng.integers(0, 2, n)


def _model():
    return RegularizedLSTM(input_size=3, hidden_size=6, output_size=2, task="classify", seed=0)


def test_standardization_is_fitted_on_the_training_split_only_and_saved(tmp_path):
    X, y = _sequences(40, 0)
    model = _model()
    fit(model, (X, y), 0.25, TrainConfig(epochs=1, standardize=True, progress=False), log=lambda line: None)
    steps = np.concatenate(X[:30])  # the training split: the validation fraction is the last 10
    np.testing.assert_allclose(model.standardizer.mean, steps.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.standardizer.scale, steps.std(axis=0), rtol=1e-12)
    loaded = load_model(save_model(model, str(tmp_path / "m.npz")))
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    # the model reads raw inputs: standardized inside it
    raw = _model()
    raw.load_state_dict(model.state_dict())
    standardized = [model.standardizer.apply(x) for x in X]
    assert np.allclose(raw.predict_proba(standardized), model.predict_proba(X), atol=1e-12)


def test_a_resumed_run_keeps_its_standardizer(tmp_path):
    X, y = _sequences(30, 1)
    path = str(tmp_path / "ck.npz")
    config = dict(standardize=True, progress=False, checkpoint_path=path, batch_size=4)
    whole = fit(_model(), (X, y), 0.2, TrainConfig(epochs=3, **config), log=lambda line: None)
    fit(_model(), (X, y), 0.2, TrainConfig(epochs=1, **config), log=lambda line: None)
    resumed = fit(
        _model(), (X, y), 0.2, TrainConfig(epochs=3, **config), resume_from=path, log=lambda line: None
    )
    assert resumed["val_loss"] == whole["val_loss"]


@pytest.mark.parametrize("bad", [{"mean": [0, 0], "scale": [1, 1]}, {"mean": [0, 0, 0], "scale": [1, 0, 1]}])
def test_a_file_with_a_broken_standardizer_is_refused(tmp_path, bad):
    model = _model()
    model.standardizer = Standardizer(np.zeros(3), np.ones(3))
    path = save_model(model, str(tmp_path / "m.npz"))
    payload = load_checkpoint(path)
    payload["standardizer"] = bad
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match="standardizer"):
        load_model(path)


def test_a_standardizer_for_token_inputs_is_refused():
    with pytest.raises(ValueError, match="token ids"):
        RegularizedLSTM(5, 4).standardizer = Standardizer(np.zeros(5), np.ones(5))
    X, y = _sequences(4, 0)
    assert sequence_set((X, y), "train", _model().model_config).inputs.shape[2] == 3


# ----------------------------------------------------------------------------- shipped data
needs_aeon = pytest.mark.skipif(
    importlib.util.find_spec("aeon") is None, reason="the data extra: pip install 'rnnreg[data]'"
)


@pytest.mark.extras
@needs_aeon
def test_japanese_vowels_is_the_archives_split():
    from rnnreg.datasets import japanese_vowels

    (X, y), (X_test, y_test), names = japanese_vowels()
    assert (len(X), len(X_test)) == (270, 370) and names == tuple(str(k) for k in range(1, 10))
    lengths = [len(x) for x in X + X_test]
    assert min(lengths) == 7 and max(lengths) == 29 and all(x.shape[1] == 12 for x in X)
    assert np.bincount(y).tolist() == [30] * 9


@pytest.mark.extras
@needs_aeon
def test_the_airline_series():
    from rnnreg.datasets import airline

    series = airline()
    assert series.shape == (144,) and series[0] == 112 and series[-1] == 432


def test_without_aeon_the_shipped_data_says_how_to_get_it(monkeypatch):
    from rnnreg import datasets

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"rnnreg\[data\]"):
        datasets.japanese_vowels()
    assert os.path.basename(datasets.__file__) == "datasets.py"


def test_a_classifiers_class_names_travel_with_it(tmp_path):
    model = _model()
    model.class_names = ("up", "down")
    loaded = load_model(save_model(model, str(tmp_path / "m.npz")))
    assert loaded.class_names == ("up", "down")
    payload = load_checkpoint(str(tmp_path / "m.npz"))
    payload["class_names"] = ["only one"]
    save_checkpoint(str(tmp_path / "m.npz"), payload)
    with pytest.raises(CheckpointError, match="class_names"):
        load_model(str(tmp_path / "m.npz"))
