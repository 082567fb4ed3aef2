"""Hooks into fit (rnnreg.callbacks): structured events, stopping, and the callbacks built on
them — the CSV log, reduce-on-plateau, samples."""

import csv
import json
import types

import numpy as np
import pytest

from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset
from rnnreg.callbacks import BatchEnd, Callback, CSVLogger, EpochEnd, ReduceLROnPlateau, SampleText
from rnnreg.cli import main


def _task():
    return generate_simple_dataset(8, 12, 64, seed=1), generate_simple_dataset(8, 12, 32, seed=2)


class Recorder(Callback):
    def __init__(self, stop_after=None):
        self.batches, self.epochs, self.stop_after = [], [], stop_after

    def on_batch_end(self, event):
        self.batches.append(event)

    def on_epoch_end(self, event):
        self.epochs.append(event)
        if self.stop_after is not None and event.epoch >= self.stop_after:
            return False
        return None


def test_events_carry_what_the_history_records():
    train, val = _task()
    recorder = Recorder()
    history = fit(
        RegularizedLSTM(12, 8, seed=0),
        train,
        val,
        TrainConfig(epochs=3, batch_size=16),
        callbacks=[recorder],
        verbose=0,
    )
    assert [e.epoch for e in recorder.epochs] == [0, 1, 2]
    assert all(isinstance(e, EpochEnd) and e.epochs == 3 for e in recorder.epochs)
    assert [e.val_loss for e in recorder.epochs] == history["val_loss"]
    assert [e.train_loss for e in recorder.epochs] == history["train_loss"]
    assert len(recorder.batches) == 3 * 4 and all(isinstance(b, BatchEnd) for b in recorder.batches)
    assert [b.batch for b in recorder.batches[:4]] == [0, 1, 2, 3]


def test_a_callback_can_stop_training_and_is_named():
    train, val = _task()
    history = fit(
        RegularizedLSTM(12, 8, seed=0),
        train,
        val,
        TrainConfig(epochs=10),
        callbacks=[Recorder(stop_after=1)],
        verbose=0,
    )
    assert len(history["epoch"]) == 2 and history["stopped_epoch"] == 1
    assert history["stop_reason"] == "Recorder stopped training"


def test_the_csv_log_has_a_row_per_epoch_as_it_goes(tmp_path):
    train, val = _task()
    path = tmp_path / "log.csv"
    seen = []

    class Peek(Callback):  # after the CSV logger: the row of this epoch is already on disk
        def on_epoch_end(self, event):
            seen.append(len(path.read_text().splitlines()))

    history = fit(
        RegularizedLSTM(12, 8, seed=0),
        train,
        val,
        TrainConfig(epochs=3),
        callbacks=[CSVLogger(path), Peek()],
        verbose=0,
    )
    assert seen == [2, 3, 4]
    rows = list(csv.DictReader(path.open()))
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(history["val_loss"])


def test_reduce_on_plateau_halves_after_patience_epochs_without_improvement():
    trainer = types.SimpleNamespace(lr_scale=1.0)
    plateau = ReduceLROnPlateau(factor=0.5, patience=2)

    def epoch(k, val):
        return EpochEnd(
            k, 10, 1.0, 1.0, val, 0.1 * trainer.lr_scale, 1.0, None, 0.1, {}, None, trainer=trainer
        )

    for k, val in enumerate([2.0, 1.5, 1.6, 1.7, 1.4, 1.45, 1.5]):
        plateau.on_epoch_end(epoch(k, val))
    assert trainer.lr_scale == 0.25  # after 1.6, 1.7; after 1.45, 1.5


def test_reduce_on_plateau_stops_at_min_lr_and_does_not_skip_the_last_cut():
    """Keras's rule: the new rate is max(lr * factor, min_lr) — a cut that would go below
    min_lr lands on it (it used to be skipped, leaving the rate above min_lr for good)."""
    trainer = types.SimpleNamespace(lr_scale=1.0)
    plateau = ReduceLROnPlateau(factor=0.5, patience=1, min_lr=0.03)

    def flat_epoch(k):
        return EpochEnd(
            k,
            10,
            1.0,
            1.0,
            2.0 if k else 1.0,
            0.1 * trainer.lr_scale,
            1.0,
            None,
            0.1,
            {},
            None,
            trainer=trainer,
        )

    rates = []
    for k in range(5):
        plateau.on_epoch_end(flat_epoch(k))
        rates.append(0.1 * trainer.lr_scale)
    assert rates == pytest.approx([0.1, 0.05, 0.03, 0.03, 0.03])


@pytest.mark.parametrize(
    "bad, error",
    [
        (dict(min_lr=-1.0), ValueError),
        (dict(min_lr=float("nan")), ValueError),
        (dict(min_delta=-0.1), ValueError),
        (dict(min_lr=True), TypeError),
    ],
)
def test_reduce_on_plateau_refuses_bad_bounds(bad, error):
    """By the package's one rule for such numbers (_validation.non_negative_float): a bool is a
    TypeError, a negative or non-finite number a ValueError, each naming the argument."""
    with pytest.raises(error, match=next(iter(bad))):
        ReduceLROnPlateau(**bad)


def test_a_plateau_run_resumed_from_its_checkpoint_equals_the_uninterrupted_run(tmp_path):
    """The plateau rule's state (its best loss, how long it has waited, the scale it has
    applied) travels in fit's checkpoint: resuming after a cut gives the same rates, losses and
    weights as the run that never stopped."""
    import numpy as np

    train, val = _task()
    config = dict(lr=0.05, lr_schedule="plateau")
    whole_model = RegularizedLSTM(12, 16, seed=0)
    whole = fit(whole_model, train, val, TrainConfig(epochs=15, **config), verbose=0)
    cut = next(k for k, lr in enumerate(whole["lr"]) if lr < 0.05)
    assert cut < 12, "the rate must be cut before the checkpoint for this test to prove anything"
    path = str(tmp_path / "run.npz")
    fit(
        RegularizedLSTM(12, 16, seed=0),
        train,
        val,
        TrainConfig(epochs=cut + 2, checkpoint_path=path, **config),
        verbose=0,
    )
    resumed_model = RegularizedLSTM(12, 16, seed=0)
    resumed = fit(
        resumed_model,
        train,
        val,
        TrainConfig(epochs=15, checkpoint_path=path, **config),
        resume_from=path,
        verbose=0,
    )
    assert resumed["lr"] == whole["lr"] and resumed["val_loss"] == whole["val_loss"]
    for name, value in whole_model.params.items():
        assert np.array_equal(resumed_model.params[name], value), name


def test_a_checkpoint_with_a_broken_schedule_state_is_refused_before_anything_changes(tmp_path):
    from rnnreg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    train, val = _task()
    path = str(tmp_path / "run.npz")
    config = TrainConfig(epochs=2, lr=0.05, lr_schedule="plateau", checkpoint_path=path)
    fit(RegularizedLSTM(12, 16, seed=0), train, val, config, verbose=0)
    payload = load_checkpoint(path)
    payload["schedule"]["lr_scale"] = 7.0
    save_checkpoint(path, payload)
    model = RegularizedLSTM(12, 16, seed=0)
    before = {name: value.copy() for name, value in model.params.items()}
    with pytest.raises(CheckpointError, match="lr_scale"):
        fit(
            model,
            train,
            val,
            TrainConfig(epochs=4, lr=0.05, lr_schedule="plateau", checkpoint_path=path),
            resume_from=path,
            verbose=0,
        )
    assert all((model.params[name] == value).all() for name, value in before.items())


def test_the_plateau_schedule_lowers_the_rate_in_fit():
    train, val = _task()
    history = fit(
        RegularizedLSTM(12, 16, seed=0),
        train,
        val,
        TrainConfig(epochs=15, lr=0.05, lr_schedule="plateau"),
        verbose=0,
    )
    lrs, val_losses = history["lr"], history["val_loss"]
    assert lrs[0] == 0.05 and min(lrs) < 0.05 and all(b <= a for a, b in zip(lrs, lrs[1:]))
    first_cut = next(k for k, lr in enumerate(lrs) if lr < 0.05)
    best_before = min(val_losses[: first_cut - 2])
    assert all(x >= best_before for x in val_losses[first_cut - 2 : first_cut])  # 2 flat epochs


def test_samples_are_logged_every_few_epochs():
    from rnnreg import CharCorpus

    corpus = CharCorpus.from_text("the cat sat.\n" * 40)
    lines = []
    fit(
        RegularizedLSTM(corpus.vocab_size, 8, seed=0),
        corpus,
        None,
        TrainConfig(epochs=4),
        callbacks=[SampleText("the ", 10, every=2, log=lines.append)],
        verbose=0,
    )
    assert len(lines) == 2 and lines[0].startswith("epoch 1 sample: 'the ")


def test_cli_writes_a_csv_and_a_history_that_says_what_made_it(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "--data",
        "synthetic",
        "--train-size",
        "40",
        "--eval-size",
        "20",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--quiet",
        "--no-progress",
        "--out",
        str(out),
        "--csv",
        str(tmp_path / "log.csv"),
        "--lr-schedule",
        "plateau",
    ]
    assert main(argv) == 0
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 3
    history = json.loads((out / "history.json").read_text())
    assert history["data"] == "synthetic" and history["seed"] == 0
    assert history["rnnreg_version"] and history["command"].startswith("rnnreg train --data")
    assert np.isfinite(history["test_loss"])


@pytest.mark.slow
def test_the_optuna_recipe_in_the_docs_runs():
    """docs/recipes.rst's Optuna recipe, run as written (when optuna is installed; CI installs
    it): some trials are pruned through the callback, the study finds a best value."""
    pytest.importorskip("optuna")
    import pathlib
    import re

    recipes = pathlib.Path(__file__).resolve().parents[1] / "docs" / "recipes.rst"
    if not recipes.exists():
        pytest.skip("docs/ is not beside the tests")
    block = re.search(r"\.\. code-block:: python\n\n(.*?)(?:\n\S|\Z)", recipes.read_text(), re.S).group(1)
    code = "\n".join(line[3:] for line in block.splitlines())
    scope = {"__name__": "recipe"}
    exec(compile(code, "docs/recipes.rst", "exec"), scope)
    study = scope["study"]
    import optuna

    states = [t.state for t in study.trials]
    assert len(states) == 8 and optuna.trial.TrialState.PRUNED in states
    assert np.isfinite(study.best_value)


def test_early_stopping_as_a_callback_decides_as_the_trainer_does():
    train, val = _task()
    from rnnreg.callbacks import EarlyStopping

    a = RegularizedLSTM(12, 8, seed=0)
    by_config = fit(a, train, val, TrainConfig(epochs=30, lr=0.05, patience=2), verbose=0)
    b = RegularizedLSTM(12, 8, seed=0)
    stop = EarlyStopping(patience=2)
    by_callback = fit(b, train, val, TrainConfig(epochs=30, lr=0.05), callbacks=[stop], verbose=0)
    assert by_callback["val_loss"] == by_config["val_loss"]
    assert stop.monitor.best_epoch == by_config["best_epoch"]
    for name in a.params:  # both restored the best epoch's weights
        assert np.array_equal(a.params[name], b.params[name]), name


# ----------------------------------------------------------------------------- the run's safety
class Crash(Callback):
    """Ends the process's run at an epoch's end, after the CSV row and before the checkpoint."""

    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, event):
        if event.epoch == self.at:
            raise KeyboardInterrupt


def test_a_resumed_csv_log_matches_its_checkpoint_after_a_crash_between_them(tmp_path):
    train, val = _task()
    log, checkpoint = tmp_path / "log.csv", str(tmp_path / "run.npz")
    config = TrainConfig(epochs=4, checkpoint_path=checkpoint)
    with pytest.raises(KeyboardInterrupt):
        fit(
            RegularizedLSTM(12, 8, seed=0),
            train,
            val,
            config,
            callbacks=[CSVLogger(log), Crash(2)],
            verbose=0,
        )
    assert [r["epoch"] for r in csv.DictReader(log.open())] == ["0", "1", "2"]  # 2: not checkpointed
    history = fit(
        RegularizedLSTM(12, 8, seed=0),
        train,
        val,
        config,
        resume_from=checkpoint,
        callbacks=[CSVLogger(log, append=True)],
        verbose=0,
    )
    rows = list(csv.DictReader(log.open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(history["val_loss"])


def test_a_csv_log_that_cannot_be_written_stops_the_run_before_its_first_epoch(tmp_path):
    train, val = _task()
    batches = []

    class Count(Callback):
        def on_batch_end(self, event):
            batches.append(event.batch)

    for path, error in (
        (tmp_path / "missing" / "log.csv", FileNotFoundError),
        (tmp_path, IsADirectoryError),
        ("/dev/full", OSError),
    ):
        with pytest.raises(error):
            fit(RegularizedLSTM(12, 8, seed=0), train, val, TrainConfig(epochs=2),
                callbacks=[CSVLogger(path), Count()], verbose=0)  # fmt: skip
    assert batches == []


def test_a_resumed_log_refuses_a_file_that_is_not_a_log(tmp_path):
    train, val = _task()
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own,table\n1,2,3\n")
    with pytest.raises(ValueError, match="not a CSV log of rnnreg"):
        fit(RegularizedLSTM(12, 8, seed=0), train, val, TrainConfig(epochs=1),
            callbacks=[CSVLogger(notes, append=True)], verbose=0)  # fmt: skip
    assert notes.read_text() == "my,own,table\n1,2,3\n"


@pytest.mark.parametrize("name", ["history.json", "best.npz", "train.checkpoint.npz", "."])
def test_the_cli_refuses_a_csv_log_over_the_runs_own_files(tmp_path, capsys, name):
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic", "--train-size", "40", "--eval-size", "20", "--epochs", "1",
            "--hidden", "8", "--quiet", "--no-progress", "--out", str(out)]  # fmt: skip
    argv += ["--csv", str(out / name)]
    assert main(argv) == 2
    assert "give the log another name" in capsys.readouterr().err
    assert not (out / "history.json").exists()


def test_a_callback_that_replaces_the_parameter_arrays_stops_the_run_with_the_rule():
    from rnnreg.training import TrainingError

    train, val = _task()

    class Replace(Callback):
        def on_batch_end(self, event):
            # (a batch event carries no model: this callback reaches it through its closure)
            model.params = {name: p.copy() for name, p in model.params.items()}

    model = RegularizedLSTM(12, 8, seed=0)
    with pytest.raises(TrainingError, match=r"replaced the model's parameter arrays.*in place"):
        fit(model, train, val, TrainConfig(epochs=2), callbacks=[Replace()], verbose=0)


def test_a_callback_that_leaves_nan_weights_never_overwrites_the_good_checkpoint(tmp_path):
    from rnnreg.checkpoint import read_meta
    from rnnreg.training import TrainingError

    train, val = _task()
    checkpoint = str(tmp_path / "run.npz")

    class Poison(Callback):
        def on_epoch_end(self, event):
            if event.epoch == 1:
                event.model.params["W0"][0, 0] = np.nan

    with pytest.raises(TrainingError, match="keeps the last good epoch"):
        fit(RegularizedLSTM(12, 8, seed=0), train, val, TrainConfig(epochs=3, checkpoint_path=checkpoint),
            callbacks=[Poison()], verbose=0)  # fmt: skip
    assert read_meta(checkpoint)["payload"]["epoch"] == 0
    resumed = RegularizedLSTM(12, 8, seed=0)
    fit(
        resumed,
        train,
        val,
        TrainConfig(epochs=3, checkpoint_path=checkpoint),
        resume_from=checkpoint,
        verbose=0,
    )
    assert all(np.isfinite(p).all() for p in resumed.params.values())


def test_the_best_model_file_holds_the_epoch_the_history_calls_best_with_min_delta(tmp_path):
    from rnnreg import load_model

    train, val = _task()
    best_path = str(tmp_path / "best.npz")
    weights = []

    class Keep(Callback):
        def on_epoch_end(self, event):
            weights.append(event.model.state_dict())

    history = fit(
        RegularizedLSTM(12, 8, seed=0),
        train,
        val,
        TrainConfig(epochs=5, lr=0.005, patience=10, min_delta=0.05, best_model_path=best_path),
        callbacks=[Keep()],
        verbose=0,
    )
    assert np.all(np.diff(history["val_loss"]) < 0)  # every epoch improves ...
    assert history["best_epoch"] < 4  # ... the last by less than min_delta: not the best
    best = load_model(best_path)
    for name, p in best.params.items():
        np.testing.assert_array_equal(p, weights[history["best_epoch"]][name])


def test_two_threads_cannot_train_one_model_at_once():
    import threading

    train, val = _task()
    model = RegularizedLSTM(12, 8, seed=0)
    inside, release, errors = threading.Event(), threading.Event(), []

    class Hold(Callback):
        def on_epoch_end(self, event):
            inside.set()
            release.wait(30)

    first = threading.Thread(
        target=lambda: fit(model, train, val, TrainConfig(epochs=1), callbacks=[Hold()], verbose=0)
    )
    first.start()
    assert inside.wait(30)
    try:
        with pytest.raises(RuntimeError, match="being trained by another fit"):
            fit(model, train, val, TrainConfig(epochs=1), verbose=0)
    finally:
        release.set()
        first.join()
    fit(model, train, val, TrainConfig(epochs=1), verbose=0)  # free again once the first ends
    assert not errors
