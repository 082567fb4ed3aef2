"""EarlyStoppingMonitor makes the same decisions as Keras 3's EarlyStopping.

The expected decisions were recorded from Keras itself by
tests/keras_reference/record_keras_early_stopping.py (keras is not needed to run this test)."""

import json
import math
import pathlib

import numpy as np
import pytest

from rnnreg import EarlyStoppingMonitor

CASES = json.loads(
    (pathlib.Path(__file__).parent / "keras_reference" / "early_stopping_cases.json").read_text()
)["cases"]


class _EpochStampedModel:
    """A stand-in model whose only weight records the epoch it was set at."""

    def __init__(self):
        self.epoch = None

    def state_dict(self):
        return {"w": np.array([float(self.epoch)])}

    def load_state_dict(self, state):
        self.epoch = float(state["w"][0])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_decisions_equal_keras(case):
    monitor = EarlyStoppingMonitor(**case["settings"])
    model = _EpochStampedModel()
    decisions = []
    for epoch, value in enumerate(case["values"]):
        model.epoch = epoch
        go_on = monitor.check(value, epoch, model=model)
        decisions.append(
            {"continue": go_on, "wait": monitor.wait, "best": monitor.best, "best_epoch": monitor.best_epoch}
        )
        if not go_on:
            break
    keras = case["keras"]
    assert [d["continue"] for d in decisions] == [d["continue"] for d in keras["decisions"]]
    assert [d["wait"] for d in decisions] == [d["wait"] for d in keras["decisions"]]
    assert [d["best_epoch"] for d in decisions] == [d["best_epoch"] for d in keras["decisions"]]
    for ours, theirs in zip(decisions, keras["decisions"]):
        assert ours["best"] == pytest.approx(theirs["best"])
    assert monitor.stopped_epoch == keras["stopped_epoch"]
    if case["settings"].get("restore_best_weights"):
        assert monitor.restore(model)
        assert model.epoch == keras["weights_epoch_after_training"]


def test_notebook_semantics():
    monitor = EarlyStoppingMonitor(patience=3, verbose=False)
    flags = [monitor.check(v, e) for e, v in enumerate([2.51, 2.10, 1.80, 1.70, 1.75, 1.85, 2.00])]
    assert flags == [True] * 6 + [False]
    assert monitor.best_loss == 1.70 and monitor.best_epoch == 3
    assert monitor.best_loss == math.inf or monitor.best_loss < 2  # defined before any check too
    assert EarlyStoppingMonitor().best_loss == math.inf


def test_non_finite_value_stops_at_once():
    monitor = EarlyStoppingMonitor(patience=10)
    assert monitor.check(1.0, 0)
    assert not monitor.check(float("nan"), 1)
    assert "nan" in monitor.stop_reason and monitor.stopped_epoch == 1
    assert monitor.best == 1.0


def test_state_dict_lets_a_resumed_run_keep_counting():
    values = [3.0, 2.0, 2.5, 2.6, 2.7, 2.8]
    straight = EarlyStoppingMonitor(patience=3)
    flags = [straight.check(v, e) for e, v in enumerate(values)]
    first = EarlyStoppingMonitor(patience=3)
    for e, v in enumerate(values[:3]):
        first.check(v, e)
    resumed = EarlyStoppingMonitor(patience=99)
    resumed.load_state_dict(first.state_dict())
    rest = [resumed.check(v, e) for e, v in enumerate(values[3:], start=3)]
    assert flags[3:] == rest and resumed.stopped_epoch == straight.stopped_epoch


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"patience": -1}, ValueError),
        ({"patience": 1.5}, TypeError),
        ({"mode": "up"}, ValueError),
        ({"min_delta": -0.1}, ValueError),
        ({"baseline": float("nan")}, ValueError),
        ({"start_from_epoch": -2}, ValueError),
    ],
)
def test_bad_settings_are_refused(kwargs, error):
    with pytest.raises(error):
        EarlyStoppingMonitor(**kwargs)
