"""The state protocol (rnnreg.state): every part a checkpoint restores checks a state without
taking it, and a restore checks every part before any changes."""

import copy

import numpy as np
import pytest

from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset
from rnnreg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rnnreg.early_stopping import EarlyStoppingMonitor
from rnnreg.optim import NTASGD, Adam
from rnnreg.state import GeneratorState, restore


def _trained(tmp_path, **train):
    train_data = generate_simple_dataset(6, 7, 16, seed=1)
    val = generate_simple_dataset(6, 7, 8, seed=2)
    path = str(tmp_path / "checkpoint.npz")
    config = TrainConfig(
        epochs=2,
        batch_size=4,
        progress=False,
        checkpoint_path=path,
        patience=3,
        lr_schedule="plateau",
        **train,
    )
    fit(RegularizedLSTM(7, 5, dropout_keep_prob=0.8, seed=0), train_data, val, config, log=lambda line: None)
    return path, train_data, val, config


# What breaks each part's state (and only that part's) in a checkpoint's payload.
BREAK = {
    "model": lambda p: p["model"].update(by=np.full_like(p["model"]["by"], np.nan)),
    "model_rng": lambda p: p["model_rng"].update(bit_generator="MT19937"),
    "trainer_rng": lambda p: p["trainer_rng"].update(state={"state": "x", "inc": 1}),
    "optimizer": lambda p: p["optimizer"].update(lr=-1.0),
    "monitor": lambda p: p["monitor"].update(wait=-3),
    "schedule": lambda p: p["schedule"].update(lr_scale=7.0),
    "history": lambda p: p["history"].update(val_loss="no"),
}


@pytest.mark.parametrize("part", sorted(BREAK))
def test_a_restore_that_fails_in_any_part_changes_no_part(tmp_path, part):
    path, train, val, config = _trained(tmp_path)
    payload = load_checkpoint(path)
    BREAK[part](payload)
    save_checkpoint(path, payload)
    model = RegularizedLSTM(7, 5, dropout_keep_prob=0.8, seed=9)
    before = (model.state_dict(), model.rng.bit_generator.state)
    with pytest.raises(CheckpointError, match=part):
        fit(
            model,
            train,
            val,
            TrainConfig(**dict(config.to_dict(), epochs=3)),
            resume_from=path,
            log=lambda line: None,
        )
    after = (model.state_dict(), model.rng.bit_generator.state)
    assert after[1] == before[1]
    assert all(np.array_equal(after[0][k], before[0][k]) for k in before[0])


def test_restore_checks_all_before_loading_any():
    loaded = []

    class Part:
        def __init__(self, name, ok):
            self.name, self.ok = name, ok

        def check_state_dict(self, state):
            if not self.ok:
                raise ValueError("broken")

        def load_state_dict(self, state):
            loaded.append(self.name)

    with pytest.raises(ValueError, match="second: broken"):
        restore({"first": (Part("first", True), {}), "second": (Part("second", False), {})})
    assert loaded == []
    restore({"first": (Part("first", True), {}), "second": (Part("second", True), {})})
    assert loaded == ["first", "second"]


@pytest.mark.parametrize(
    "make",
    [
        lambda params: Adam(params, 1e-3),
        lambda params: NTASGD(params, 1.0, nonmono=2),
    ],
    ids=["adam", "nt-asgd"],
)
def test_an_optimizer_checks_a_state_without_taking_it(make):
    params = {"W": np.ones((2, 3)), "b": np.zeros(3)}
    optimizer = make(params)
    optimizer.step({"W": np.full((2, 3), 0.5), "b": np.ones(3)})
    good = copy.deepcopy(optimizer.state_dict())
    fresh = make({k: p.copy() for k, p in params.items()})
    before = copy.deepcopy(fresh.state_dict())
    fresh.check_state_dict(good)
    assert fresh.state_dict().keys() == before.keys() and fresh.step_count == 0
    bad = dict(good, step_count=-1)
    with pytest.raises(ValueError, match="step_count"):
        fresh.check_state_dict(bad)
    fresh.load_state_dict(good)
    assert fresh.step_count == 1


def test_the_monitor_and_a_generator_check_without_taking():
    monitor = EarlyStoppingMonitor(patience=2)
    monitor.check(1.0, 0)
    state = monitor.state_dict()
    other = EarlyStoppingMonitor(patience=2)
    other.check_state_dict(state)
    assert other.best is None
    with pytest.raises(ValueError, match="mode"):
        other.check_state_dict(dict(state, mode="sideways"))
    rng = np.random.default_rng(0)
    part = GeneratorState(rng)
    before = rng.bit_generator.state
    with pytest.raises(ValueError, match="PCG64"):
        part.check_state_dict({"bit_generator": "PCG64", "state": "nonsense"})
    part.check_state_dict(np.random.default_rng(5).bit_generator.state)
    assert rng.bit_generator.state == before
