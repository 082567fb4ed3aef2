"""Optimizers (rnnreg.optim): SGD, Adam, AdamW and NT-ASGD — their rules, their state and what
they refuse."""

import numpy as np
import pytest

import rnnreg
from rnnreg.optim import NTASGD, SGD, Adam


# ----------------------------------------------------------------------------- NT-ASGD
def test_nt_asgd_triggers_on_the_papers_rule_and_averages_the_iterates():
    p = {"w": np.zeros(3)}
    opt = NTASGD(p, lr=0.5, nonmono=2)
    # Algorithm 1: trigger at check k when k > n and L_k > min(L_0 .. L_{k-n-1}).
    # 3.5 is not above min(5.0); 3.2 is not above min(5.0, 4.0): no trigger yet.
    assert [opt.record(x) for x in (5.0, 4.0, 3.0, 3.5, 3.2)] == [False] * 5
    assert opt.record(4.5) is True  # 4.5 > min(5.0, 4.0, 3.0) = 3.0
    assert opt.averaging and opt.record(9.0) is False  # once
    iterates = []
    for g in (1.0, -2.0, 0.5, 3.0):
        opt.step({"w": np.full(3, g)})
        iterates.append(p["w"].copy())
    assert np.allclose(opt.state["average"]["w"], np.mean(iterates, axis=0), atol=1e-15)
    with opt.evaluation_weights():
        assert np.array_equal(p["w"], opt.state["average"]["w"])
    assert np.array_equal(p["w"], iterates[-1])


def test_nt_asgd_before_the_trigger_is_plain_sgd():
    p, q = {"w": np.ones(4)}, {"w": np.ones(4)}
    a, b = NTASGD(p, lr=0.1, weight_decay=0.01), rnnreg.optim.SGD(q, lr=0.1, weight_decay=0.01)
    for k in range(3):
        g = {"w": np.arange(4.0) * (k + 1)}
        a.step(dict(g))
        b.step(dict(g))
    assert np.array_equal(p["w"], q["w"])
    with a.evaluation_weights():  # nothing averaged yet: the iterate itself
        assert np.array_equal(p["w"], q["w"])


def test_nt_asgd_refuses_another_optimizers_state():
    p = {"w": np.zeros(2)}
    adam_state = Adam({"w": np.zeros(2)}, lr=0.1).state_dict()
    opt = NTASGD(p, lr=0.1)
    before = opt.state_dict()
    with pytest.raises(ValueError, match="NT-ASGD"):
        opt.load_state_dict(adam_state)
    assert opt.state_dict() == before  # nothing changed
    with pytest.raises(ValueError, match="state"):
        Adam({"w": np.zeros(2)}, lr=0.1).load_state_dict(opt.state_dict())


# ----------------------------------------------------------------------------- optimizers
def test_sgd_refuses_a_gradient_it_would_broadcast():
    params = {"w": np.ones((3, 4))}
    for bad in (np.ones(1), np.ones((4, 3)), np.ones((3, 4), np.float32), [[1.0] * 4] * 3):
        with pytest.raises(ValueError, match=r"grads\['w'\]"):
            SGD(params, lr=0.1).step({"w": bad})
        with pytest.raises(ValueError, match=r"grads\['w'\]"):
            Adam(params).step({"w": bad})
    assert (params["w"] == 1).all()  # nothing was updated


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0, -1.0, "0.1", None])
def test_an_optimizer_refuses_a_learning_rate_set_from_outside(lr):
    params = {"w": np.ones((2, 2))}
    for opt in (SGD(params), Adam(params)):
        opt.lr = lr
        with pytest.raises(ValueError, match="lr must be"):
            opt.step({"w": np.ones((2, 2))})
    assert (params["w"] == 1).all()
