"""Callbacks as Keras users write them (issue 36): Keras's (epoch, logs) signatures, the begin
hooks, model.stop_training, and Keras's callbacks with their keywords."""

import math
import os

import numpy as np
import pytest

from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset, load_model
from rnnreg.callbacks import (
    Callback,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from rnnreg.training import TrainingError


def _task():
    return generate_simple_dataset(8, 12, 64, seed=1), generate_simple_dataset(8, 12, 32, seed=2)


def _fit(callbacks, epochs=3, val=True, **config):
    train, valid = _task()
    return fit(
        RegularizedLSTM(12, 8, seed=0),
        train,
        valid if val else None,
        TrainConfig(epochs=epochs, **config),
        callbacks=callbacks,
        verbose=0,
    )


class KerasStyle(Callback):
    """Written as for Keras: every hook with (index, logs=None) or (logs=None)."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", logs))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", sorted(logs)))


def test_a_callback_written_for_keras_gets_epochs_batches_and_logs():
    keras = KerasStyle()
    history = _fit([keras], epochs=2, batch_size=32)
    kinds = [call[0] for call in keras.calls]
    assert kinds == ["train_begin"] + [
        "epoch_begin",
        "batch_begin",
        "batch_end",
        "batch_begin",
        "batch_end",
        "epoch_end",
    ] * 2 + ["train_end"]
    ends = [call for call in keras.calls if call[0] == "epoch_end"]
    assert [e[1] for e in ends] == [0, 1]
    assert [e[2]["val_loss"] for e in ends] == history["val_loss"]
    assert [e[2]["loss"] for e in ends] == history["train_loss"]
    assert ends[0][2]["learning_rate"] == pytest.approx(history["lr"][0])
    assert keras.calls[3][2] == ["learning_rate", "loss"]
    assert keras.calls[-1] == ("train_end", ["loss", "val_loss"])
    assert keras.model is not None  # set, as Keras sets callback.model


def test_a_callback_of_another_shape_is_refused_before_training_with_the_forms():
    class Odd:
        def on_epoch_end(self, a, b, c):
            pass

    with pytest.raises(TypeError, match=r"on_epoch_end\(event\) with a EpochEnd, or, as Keras does, "):
        _fit([Odd()])


def test_model_stop_training_stops_as_in_keras():
    class StopAfterOne(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    history = _fit([StopAfterOne()], epochs=10)
    assert history["epoch"] == [0, 1] and history["stopped_epoch"] == 1
    assert "stop_training" in history["stop_reason"]


def test_early_stopping_takes_kerass_keywords_and_the_history_says_it_restored():
    stop = EarlyStopping(
        monitor="loss", mode="min", patience=1, min_delta=10.0, start_from_epoch=1, verbose=0
    )
    history = _fit([stop], epochs=10)
    assert history["stopped_epoch"] == 2  # epoch 1 sets the best; 2 fails to beat it by 10
    assert history["restored_best"] is True
    assert history["stop_reason"].startswith("EarlyStopping: loss did not improve")


def test_early_stopping_on_a_metric_the_run_lacks_warns_and_does_nothing():
    with pytest.warns(UserWarning, match="val_accuracy.*does not measure"):
        history = _fit([EarlyStopping(monitor="val_accuracy", patience=0)], epochs=3)
    assert history["stopped_epoch"] is None


def test_reduce_on_plateau_says_each_cut_and_waits_its_cooldown():
    said = []
    plateau = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0, cooldown=2,
                                verbose=1, log=said.append)  # fmt: skip
    history = _fit([plateau], epochs=6, lr=0.01)
    # epoch 0 sets the best; 1 cuts; 2 is cooldown; 3 ends it and cuts (as Keras counts); 4; 5 cuts
    assert history["lr"] == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025])
    assert len(said) == 3 and "cut the learning rate to 0.005" in said[0]


def test_reduce_on_plateau_without_validation_warns_once():
    with pytest.warns(UserWarning, match="val_loss.*without validation data") as seen:
        _fit([ReduceLROnPlateau()], epochs=3, val=False)
    assert len([w for w in seen if "ReduceLROnPlateau" in str(w.message)]) == 1


def test_the_plateau_schedule_says_its_cuts_in_the_runs_log():
    train, val = _task()
    lines = []
    config = TrainConfig(epochs=15, lr=0.05, lr_schedule="plateau")
    history = fit(RegularizedLSTM(12, 16, seed=0), train, val, config, log=lines.append, verbose=0)
    said = [float(line.split(" to ")[1].split()[0]) for line in lines if "ReduceLROnPlateau cut" in line]
    assert said and set(history["lr"]) - {0.05} <= set(said)  # every lower rate was said


def test_model_checkpoint_writes_every_epoch_or_only_the_best(tmp_path):
    every = ModelCheckpoint(os.path.join(tmp_path, "e{epoch:02d}-{val_loss:.3f}.npz"))
    best = ModelCheckpoint(os.path.join(tmp_path, "best.npz"), save_best_only=True, monitor="val_loss")
    history = _fit([every, best], epochs=3)
    names = sorted(f for f in os.listdir(tmp_path) if f.startswith("e"))
    assert names == [f"e{k + 1:02d}-{loss:.3f}.npz" for k, loss in enumerate(history["val_loss"])]
    saved = load_model(os.path.join(tmp_path, "best.npz"))
    assert saved.parameter_count() == RegularizedLSTM(12, 8).parameter_count()


def test_model_checkpoint_names_a_field_the_logs_lack(tmp_path):
    with pytest.raises(ValueError, match="val_accuracy"):
        _fit([ModelCheckpoint(os.path.join(tmp_path, "{val_accuracy}.npz"))], epochs=1)


def test_learning_rate_scheduler_sets_each_epochs_rate():
    history = _fit([LearningRateScheduler(lambda epoch, lr: 0.02 * 0.5**epoch)], epochs=3)
    assert history["lr"] == pytest.approx([0.02, 0.01, 0.005])
    with pytest.raises(ValueError, match="must be > 0"):
        _fit([LearningRateScheduler(lambda epoch, lr: -1.0)], epochs=1)


def test_lambda_callback_calls_keras_style_functions():
    seen = []
    callback = LambdaCallback(
        on_train_begin=lambda logs: seen.append("begin"),
        on_epoch_end=lambda epoch, logs: seen.append((epoch, round(logs["val_loss"], 6))),
        on_train_end=lambda logs: seen.append("end"),
    )
    history = _fit([callback], epochs=2)
    assert seen == ["begin", *[(k, round(x, 6)) for k, x in enumerate(history["val_loss"])], "end"]


def test_terminate_on_nan_ends_a_diverging_run_with_its_results(poisoned_lstm):
    train, val = _task()
    test = generate_simple_dataset(8, 12, 32, seed=3)
    poisoned = poisoned_lstm(12, 8, seed=0)
    poisoned.healthy_steps = 2 * 2 + 1  # two clean epochs of two batches, then NaN
    with pytest.raises(TrainingError, match="non-finite"):
        fit(poisoned, train, val, TrainConfig(epochs=5, batch_size=32), test=test, verbose=0)
    poisoned = poisoned_lstm(12, 8, seed=0)
    poisoned.healthy_steps = 2 * 2 + 1
    history = fit(poisoned, train, val, TrainConfig(epochs=5, batch_size=32), test=test,
                  callbacks=[TerminateOnNaN()], verbose=0)  # fmt: skip
    assert history["stop_reason"].startswith("TerminateOnNaN: non-finite gradient norm at epoch 2, batch 1")
    assert history["epoch"] == [0, 1, 2] and history["stopped_epoch"] == 2
    assert all(np.isfinite(p).all() for p in poisoned.params.values())  # the NaN step never applied
    assert math.isfinite(history["test_loss"]) and math.isfinite(history["val_loss"][-1])


def test_the_csv_logger_takes_kerass_arguments(tmp_path):
    from rnnreg.callbacks import CSVLogger

    path = tmp_path / "log.tsv"
    history = _fit([CSVLogger(filename=str(path), separator="\t", append=False)], epochs=2)
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert rows[0][:3] == ["epoch", "train_loss", "train_ce"] and len(rows) == 3
    assert [float(r[3]) for r in rows[1:]] == pytest.approx(history["val_loss"])
