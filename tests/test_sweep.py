"""Sweeps (rnnreg.sweep, `rnnreg sweep`): the trials a grid or a random search makes, records
that are the same on any worker — local processes (joblib) or a Dask cluster — failures kept to
their trial, a killed worker survived, and an interrupted sweep resumed."""

import json
import os
import re
import signal
import sys
import threading
import time

import numpy as np
import pytest

from rnnreg import sweeps as sweep_module
from rnnreg.cli import main
from rnnreg.sweeps import TIMING_FIELDS, parse_grid, parse_space, run_trial, sweep, sweep_table, sweep_trials

joblib = pytest.importorskip("joblib", reason="the sweep extra (pip install 'rnnreg[sweep]')")

TINY = {"data": ["synthetic"], "train_size": 60, "epochs": 2, "hidden": 8}
GRID = {"dropout": [0.0, 0.3], "hidden": [8, 16]}


def comparable(record):
    """A record without what depends on when and where it ran (wall times, the worker)."""
    out = {k: v for k, v in record.items() if k not in TIMING_FIELDS}
    if out["history"] is not None:
        out["history"] = {k: v for k, v in out["history"].items() if k not in ("seconds", "wall_seconds")}
    return out


# ----------------------------------------------------------------------------- the trials
def test_grid_is_the_cartesian_product_in_order_with_values_typed_by_the_option():
    grid = parse_grid(["dropout=0,0.3", "layer-norm=false,true", "patience=none,2"])
    assert grid == {"dropout": [0.0, 0.3], "layer-norm": [False, True], "patience": [None, 2]}
    trials = sweep_trials(grid)
    assert len(trials) == 8
    assert trials[0] == {"dropout": 0.0, "layer-norm": False, "patience": None}
    assert trials[-1] == {"dropout": 0.3, "layer-norm": True, "patience": 2}


@pytest.mark.parametrize(
    "text, message",
    [
        ("dropout=1.5", "not in [0, 1)"),
        ("hidden=big", "expected an integer"),
        ("optimizer=rmsprop", "not one of"),
        ("layer-norm=maybe", "expected true or false"),
        ("data=a.txt", "cannot be swept"),
        ("colour=red", "cannot be swept"),
        ("dropout", "NAME=V1,V2"),
    ],
)
def test_a_bad_grid_is_refused_naming_the_setting(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_grid([text])


def test_random_search_is_seeded_in_range_and_rounds_integer_settings():
    space = parse_space(["lr=1e-4:1e-1:log", "hidden=16:64"])
    first = sweep_trials(random=20, space=space, seed=3)
    assert first == sweep_trials(random=20, space=space, seed=3)
    assert first != sweep_trials(random=20, space=space, seed=4)
    assert all(1e-4 <= t["lr"] <= 1e-1 and 16 <= t["hidden"] <= 64 for t in first)
    assert all(isinstance(t["hidden"], int) for t in first)
    # a log scale spreads draws over the decades
    assert min(t["lr"] for t in first) < 1e-3 and max(t["lr"] for t in first) > 1e-2
    # combined with a grid: every draw at every grid point
    both = sweep_trials({"layer-norm": [False, True]}, random=3, space=space, seed=0)
    assert len(both) == 6 and both[0]["lr"] == both[1]["lr"]


@pytest.mark.parametrize(
    "texts, message",
    [
        (["lr=1e-2:1e-3"], "LOW < HIGH"),
        (["lr=0:1e-2:log"], "> 0 on a log scale"),
        (["lr=a:b"], "must be numbers"),
        (["dropout=0:1"], "not in"),
        (["lr=1:2:ln"], "NAME=LOW"),
    ],
)
def test_a_bad_space_is_refused(texts, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_space(texts)


def test_nothing_to_sweep_is_an_error():
    with pytest.raises(ValueError, match="nothing to sweep"):
        sweep_trials({})
    with pytest.raises(ValueError, match="needs a space"):
        sweep_trials(random=3)


# ----------------------------------------------------------------------------- records
def test_a_trial_is_deterministic_and_its_record_complete():
    from rnnreg.runs import load_data

    settings = sweep_module.default_settings()
    settings.update(TINY, quiet=True, no_progress=True)
    _, vocab, data = load_data(settings)
    one = run_trial(settings, {"dropout": 0.3}, data, vocab)
    two = run_trial(settings, {"dropout": 0.3}, data, vocab)
    assert comparable(one) == comparable(two)
    assert set(one) == {
        "params",
        "best_val_loss",
        "test_loss",
        "best_epoch",
        "epochs",
        "seconds",
        "status",
        "error",
        "pruned_by",
        "worker",
        "history",
    }
    assert one["status"] == "done" and one["error"] is None and one["epochs"] == 2
    assert one["history"]["model"]["dropout_keep_prob"] == pytest.approx(0.7)


def test_failures_stay_in_their_trial():
    records = sweep({"hidden": [0, 8], "lr": [1e-3]}, settings=TINY, jobs=1, progress=False)
    failed, done = records
    assert failed["status"] == "failed" and "hidden_size must be an integer >= 1" in failed["error"]
    assert failed["best_val_loss"] is None
    assert done["status"] == "done" and done["best_val_loss"] > 0
    # a run that diverges is recorded with the trainer's message
    diverged = sweep({"lr": [1e38]}, settings=dict(TINY, clip=0), jobs=1, progress=False)[0]
    assert diverged["status"] == "failed" and "TrainingError: non-finite" in diverged["error"]
    assert "failed" in sweep_table(records + [diverged])


def test_two_local_workers_give_the_records_of_one(tmp_path):
    serial = sweep(GRID, settings=TINY, jobs=1, progress=False)
    parallel = sweep(GRID, settings=TINY, jobs=2, out=str(tmp_path), progress=False)
    assert [comparable(r) for r in parallel] == [comparable(r) for r in serial]
    assert len({r["worker"] for r in parallel}) >= 1
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert [comparable(r) for r in saved["trials"]] == [comparable(r) for r in serial]
    assert saved["settings"]["epochs"] == 2
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
    table = (tmp_path / "sweep.md").read_text()
    best = min(serial, key=lambda r: r["best_val_loss"])
    assert (
        table.splitlines()[2].startswith("| 1 | ") and f"{best['best_val_loss']:.4f}" in table.splitlines()[2]
    )


def test_each_trial_is_written_as_it_finishes_and_a_rerun_skips_them(tmp_path, monkeypatch):
    written = []
    real_write = sweep_module._write_json
    monkeypatch.setattr(
        sweep_module,
        "_write_json",
        lambda path, obj: (written.append(len(obj["trials"])), real_write(path, obj)),
    )
    first = sweep(GRID, settings=TINY, jobs=1, out=str(tmp_path), progress=False)
    assert written == [1, 2, 3, 4]

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished trial ran again")

    monkeypatch.setattr(sweep_module, "run_trial", must_not_run)
    again = sweep(GRID, settings=TINY, jobs=1, out=str(tmp_path), progress=False)
    assert again == first
    # an interrupted sweep: one trial missing from sweep.json -> only that one runs
    saved = json.loads((tmp_path / "sweep.json").read_text())
    saved["trials"] = saved["trials"][:3]
    (tmp_path / "sweep.json").write_text(json.dumps(saved))
    ran = []
    monkeypatch.setattr(sweep_module, "run_trial", lambda *a, **k: (ran.append(a[1]), first[3])[1])
    resumed = sweep(GRID, settings=TINY, jobs=1, out=str(tmp_path), progress=False)
    assert ran == [first[3]["params"]] and resumed == first
    # other settings in the same folder are refused, naming what differs
    with pytest.raises(ValueError, match=r"epochs \(2, now 3\)"):
        sweep(GRID, settings=dict(TINY, epochs=3), jobs=1, out=str(tmp_path), progress=False)


# ----------------------------------------------------------------------------- killed workers
# Trials long enough (seconds each, also on a loaded machine) to be killed mid-trial.
SLOW = {"data": ["synthetic"], "train_size": 3000, "epochs": 8, "hidden": 64}
SLOW_GRID = {"dropout": [0.0, 0.2], "lr": [5e-3, 1e-2]}


def _run_in_thread(fn):
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=fn()), daemon=True)
    thread.start()
    return thread, box


def _busy_child(parent, exclude=()):
    """A child process of ``parent`` that is using the CPU (a worker mid-trial)."""
    psutil = pytest.importorskip("psutil")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = [c for c in psutil.Process(parent).children(recursive=True) if c.pid not in exclude]
        before = {}
        for c in children:
            try:
                before[c.pid] = sum(c.cpu_times()[:2])
            except psutil.Error:
                pass
        time.sleep(0.4)
        for c in children:
            try:
                if sum(c.cpu_times()[:2]) - before.get(c.pid, 1e9) > 0.2:
                    return c.pid
            except psutil.Error:
                pass
    raise AssertionError("no worker process got busy")


@pytest.mark.slow
def test_a_killed_local_worker_is_survived(caplog):
    reference = sweep(SLOW_GRID, settings=SLOW, jobs=2, progress=False)
    thread, box = _run_in_thread(lambda: sweep(SLOW_GRID, settings=SLOW, jobs=2, progress=False))
    time.sleep(0.3)
    os.kill(_busy_child(os.getpid()), signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    records = box["result"]
    assert [r["status"] for r in records] == ["done"] * 4
    assert [comparable(r) for r in records] == [comparable(r) for r in reference]
    assert "a worker process died" in caplog.text


# ----------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed", reason="the dask extra")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.slow
def test_a_dask_cluster_gives_the_records_of_local_workers(dask_client, tmp_path):
    local = sweep(GRID, settings=TINY, jobs=2, progress=False)
    on_dask = sweep(GRID, settings=TINY, scheduler=dask_client, out=str(tmp_path), progress=False)
    assert [comparable(r) for r in on_dask] == [comparable(r) for r in local]
    workers = {r["worker"] for r in on_dask}
    assert workers <= set(dask_client.scheduler_info()["workers"])
    # the address form, as `--scheduler tcp://...` gives it
    by_address = sweep(
        {"dropout": [0.0], "hidden": [8]},
        settings=TINY,
        scheduler=dask_client.scheduler.address,
        progress=False,
    )
    assert comparable(by_address[0]) == comparable(local[0])


@pytest.mark.slow
def test_a_killed_dask_worker_is_survived(dask_client):
    reference = sweep(SLOW_GRID, settings=SLOW, jobs=1, progress=False)
    pids = dask_client.run(os.getpid)
    thread, box = _run_in_thread(
        lambda: sweep(SLOW_GRID, settings=SLOW, scheduler=dask_client, progress=False)
    )
    deadline = time.monotonic() + 30
    while not any(dask_client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.7)  # mid-trial
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    thread.join(timeout=180)
    assert not thread.is_alive()
    records = box["result"]
    assert [r["status"] for r in records] == ["done"] * 4
    assert [comparable(r) for r in records] == [comparable(r) for r in reference]


@pytest.mark.slow
def test_a_one_worker_cluster_whose_worker_dies_still_records_every_trial():
    """The only worker killed mid-sweep: its nanny starts a new one, the lost trials are
    submitted again with their data, and every trial ends with a record — no traceback."""
    distributed = pytest.importorskip("distributed", reason="the dask extra")
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    try:
        reference = sweep(SLOW_GRID, settings=SLOW, jobs=1, progress=False)
        pid = next(iter(client.run(os.getpid).values()))
        thread, box = _run_in_thread(
            lambda: sweep(SLOW_GRID, settings=SLOW, scheduler=client, progress=False)
        )
        deadline = time.monotonic() + 60  # wait for the event: a trial running on the worker
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(client.processing().values())
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=240)
        assert not thread.is_alive() and "result" in box
        records = box["result"]
        assert len(records) == 4 and all(r["status"] in ("done", "failed") for r in records)
        done = [
            (comparable(r), comparable(ref)) for r, ref in zip(records, reference) if r["status"] == "done"
        ]
        assert done and all(a == b for a, b in done)
    finally:
        client.close()
        cluster.close()


def test_scheduler_without_dask_says_how_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)
    code = main(
        [
            "sweep",
            "--data",
            "synthetic",
            "--train-size",
            "60",
            "--epochs",
            "1",
            "--grid",
            "dropout=0,0.1",
            "--scheduler",
            "tcp://127.0.0.1:1",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "pip install 'rnnreg[dask]'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the command line
def test_the_sweep_command_writes_its_table_and_picture(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(
        [
            "sweep",
            "--data",
            "synthetic",
            "--train-size",
            "60",
            "--epochs",
            "2",
            "--hidden",
            "8",
            "--grid",
            "dropout=0,0.3",
            "--grid",
            "layer-norm=false,true",
            "--jobs",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| rank | dropout | layer-norm |" in printed and "4 trials, 0 failed" in printed
    saved = json.loads((out / "sweep.json").read_text())
    assert [t["params"] for t in saved["trials"]] == sweep_trials(
        {"dropout": [0.0, 0.3], "layer-norm": [False, True]}
    )
    assert all(t["status"] == "done" for t in saved["trials"])


def test_compare_with_two_jobs_matches_one(tmp_path, capsys):
    common = [
        "compare",
        "--data",
        "synthetic",
        "--train-size",
        "60",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--settings",
        "none",
        "dropout",
        "weight_decay",
    ]
    assert main(common + ["--out", str(tmp_path / "a"), "--jobs", "1", "--quiet"]) == 0
    assert main(common + ["--out", str(tmp_path / "b"), "--jobs", "2"]) == 0
    one = json.loads((tmp_path / "a" / "results.json").read_text())
    two = json.loads((tmp_path / "b" / "results.json").read_text())
    assert list(one) == ["none", "dropout", "weight_decay"]
    for name in one:
        assert one[name]["val_loss"] == two[name]["val_loss"]
        assert one[name]["test_loss"] == two[name]["test_loss"]
    assert (tmp_path / "b" / "weights.png").exists()


def test_sweeps_can_search_the_new_regularizers():
    from rnnreg.sweeps import parse_grid, sweep_trials

    grid = parse_grid(
        [
            "zoneout=0,0.1",
            "tie-weights=false,true",
            "ar=0,2",
            "optimizer=adam,nt-asgd",
            "variable-bptt=false,true",
        ]
    )
    assert len(sweep_trials(grid)) == 32
    with pytest.raises(ValueError, match="zoneout"):
        parse_grid(["zoneout=1.2"])


def test_a_second_sweep_into_the_same_folder_keeps_the_first_ones_records(tmp_path):
    out = str(tmp_path / "sw")
    first = sweep({"dropout": [0.0, 0.3]}, settings=TINY, jobs=1, out=out, progress=False)
    second = sweep({"dropout": [0.5]}, settings=TINY, jobs=1, out=out, progress=False)
    assert [r["params"] for r in second] == [{"dropout": 0.5}]
    with open(os.path.join(out, "sweep.json")) as f:
        kept = json.load(f)["trials"]
    assert sorted(r["params"]["dropout"] for r in kept) == [0.0, 0.3, 0.5]
    assert [comparable(r) for r in kept if r["params"]["dropout"] != 0.5] == [comparable(r) for r in first]
    table = open(os.path.join(out, "sweep.md")).read()  # the folder's table: all three
    assert len([ln for ln in table.splitlines() if re.match(r"\| \d+ \|", ln)]) == 3


def test_sweep_json_is_strict_json(tmp_path):
    """A diverged value is written as null, never NaN or Infinity (which strict parsers reject)."""
    from rnnreg.sweeps import _write_json

    path = str(tmp_path / "s.json")
    _write_json(
        path,
        {
            "trials": [
                {
                    "best_val_loss": float("nan"),
                    "history": {"val_loss": [1.0, float("inf"), np.float32("nan")]},
                }
            ]
        },
    )
    text = open(path).read()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["trials"][0]["history"]["val_loss"] == [1.0, None, None]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"settings": 3, "trials": []}',
        '{"settings": {}, "trials": ["x"]}',
        '{"settings": {}, "trials": [{"params": {}}]}',
        "NaN",
    ],
)
def test_a_corrupted_sweep_json_is_one_line_not_a_traceback(content, tmp_path, capsys):
    out = tmp_path / "sw"
    out.mkdir()
    (out / "sweep.json").write_text(content)
    code = main(
        [
            "sweep",
            "--data",
            "synthetic",
            "--train-size",
            "40",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--grid",
            "dropout=0",
            "--jobs",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "is not a sweep.json of rnnreg" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- pruning
# The good settings first, so that the later, worse trials have curves to fall behind.
PRUNE_GRID = {"lr": [1e-2, 3e-3, 3e-4, 1e-4], "hidden": [24, 8]}
PRUNE_SETTINGS = {"data": ["synthetic"], "train_size": 200, "epochs": 6, "quiet": True}


@pytest.mark.parametrize("rule", ["median", "asha"])
def test_pruning_stops_trials_that_fall_behind_and_records_them(rule, tmp_path):
    out = str(tmp_path / rule)
    records = sweep(PRUNE_GRID, settings=PRUNE_SETTINGS, jobs=1, out=out, progress=False, prune=rule)
    pruned = [r for r in records if r["status"] == "pruned"]
    assert pruned and len(pruned) < len(records)
    for r in pruned:  # stopped early, with the curve it had
        assert r["epochs"] < 6 and len(r["history"]["val_loss"]) == r["epochs"]
    best_kept = min(r["best_val_loss"] for r in records if r["status"] == "done")
    assert best_kept <= min(r["best_val_loss"] for r in pruned)
    # a rerun runs nothing again: pruned trials are finished trials
    again = sweep(PRUNE_GRID, settings=PRUNE_SETTINGS, jobs=1, out=out, progress=False, prune=rule)
    assert [r["status"] for r in again] == [r["status"] for r in records]
    assert "| pruned |" in open(os.path.join(out, "sweep.md")).read()


def test_the_asha_rule_keeps_the_best_third_at_each_rung(tmp_path):
    from rnnreg.callbacks import EpochEnd
    from rnnreg.sweeps import Pruner

    curves = str(tmp_path / "c.jsonl")
    open(curves, "w").close()

    def report(trial, epoch, loss):
        pruner = Pruner("asha", curves, trial)
        pruner.on_epoch_end(EpochEnd(epoch, 9, 0, 0, loss, 0.1, 0, None, 0, {}, None))
        return pruner.pruned

    assert [report(t, 0, loss) for t, loss in (("a", 3.0), ("b", 2.0))] == [False, False]
    assert report("c", 0, 2.5) is True  # 3 reported at rung 1: keep the best ceil(3/3) = 1
    assert report("d", 1, 9.0) is False  # epoch 2 is no rung
    assert report("e", 0, 1.0) is False  # the best so far


def test_categorical_choices_in_a_random_search():
    space = parse_space(["optimizer=adam|adamw|sgd", "lr=1e-3:1e-2:log"])
    assert space["optimizer"] == ["adam", "adamw", "sgd"]
    trials = sweep_trials(random=30, space=space, seed=0)
    assert {t["optimizer"] for t in trials} == {"adam", "adamw", "sgd"}
    with pytest.raises(ValueError, match="optimizer"):
        parse_space(["optimizer=adam|lbfgs"])


def test_pruning_without_an_out_folder_leaves_no_file_behind(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    records = sweep(PRUNE_GRID, settings=PRUNE_SETTINGS, jobs=1, progress=False, prune="median")
    assert any(r["status"] == "pruned" for r in records)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_sweep_whose_scheduler_dies_stops_keeping_what_finished(tmp_path):
    """A real local Dask cluster (a scheduler and a worker, each its own process); the scheduler
    is killed mid-sweep. The sweep stops within a bound with one line saying the scheduler is
    gone and how to continue, and the trial that had finished stays in sweep.json (it used to
    resubmit to the closed client and wait forever)."""
    pytest.importorskip("distributed", reason="the dask extra")
    import json
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen(
        [*dask, "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--dashboard-address",
            ":0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out = tmp_path / "sweep"
    try:
        time.sleep(3)
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rnnreg",
                "sweep",
                "--scheduler",
                address,
                "--data",
                "synthetic",
                "--train-size",
                "100",
                "--hidden",
                "32",
                "--grid",
                "epochs=1,400,400",
                "--no-progress",
                "--out",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120  # the one-epoch trial finishes and is recorded
        while time.monotonic() < deadline:
            try:
                if any(r["status"] == "done" for r in json.loads((out / "sweep.json").read_text())["trials"]):
                    break
            except (OSError, ValueError, KeyError):
                pass
            assert run.poll() is None, run.stderr.read()
            time.sleep(0.2)
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait()
        started = time.monotonic()
        _, err = run.communicate(timeout=240)
        assert time.monotonic() - started < 240
        assert run.returncode == 1 and "is gone" in err and "run the same command again" in err, err
        assert "Traceback" not in err
        records = json.loads((out / "sweep.json").read_text())["trials"]
        assert [r["params"]["epochs"] for r in records if r["status"] == "done"] == [1]
    finally:
        for proc in (scheduler, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_sweep_whose_every_trial_fails_says_why(tmp_path, capsys):
    from rnnreg.cli import main

    code = main(
        [
            "sweep",
            "--data",
            "synthetic",
            "--train-size",
            "20",
            "--grid",
            "hidden=0",
            "--epochs",
            "1",
            "--no-progress",
            "--out",
            str(tmp_path / "s"),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and "every trial failed" in err and "hidden_size must be" in err
    assert "no finished trial to plot" not in err


@pytest.mark.parametrize("random", [-3, 1.5, True])
def test_a_negative_or_fractional_random_count_is_refused(random):
    from rnnreg.sweeps import sweep_trials

    with pytest.raises(ValueError, match="number of draws"):
        sweep_trials(random=random, space={"lr": (1e-3, 1e-2, False)})


def test_a_rerun_with_another_pruning_rule_or_none_trains_the_pruned_trials_again(tmp_path):
    out = str(tmp_path / "s")
    first = sweep(PRUNE_GRID, settings=PRUNE_SETTINGS, jobs=1, out=out, progress=False, prune="median")
    pruned = [r["params"] for r in first if r["status"] == "pruned"]
    assert pruned and all(r["pruned_by"] == "median" for r in first if r["status"] == "pruned")
    unpruned = sweep(PRUNE_GRID, settings=PRUNE_SETTINGS, jobs=1, out=out, progress=False)
    assert all(r["status"] == "done" and r["epochs"] == 6 for r in unpruned)
    assert [r["params"] for r in unpruned] == [r["params"] for r in first]


def _tiny_sweep_argv(out):
    settings = [
        "--data",
        "synthetic",
        "--train-size",
        "40",
        "--eval-size",
        "20",
        "--epochs",
        "1",
        "--hidden",
        "8",
    ]
    return ["sweep", *settings, "--grid", "dropout=0", "--jobs", "1", "--no-progress", "--out", str(out)]


def test_a_sweep_json_record_without_its_losses_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "s"
    argv = _tiny_sweep_argv(out)
    assert main(argv) == 0
    saved = json.loads((out / "sweep.json").read_text())
    del saved["trials"][0]["best_val_loss"]
    (out / "sweep.json").write_text(json.dumps(saved))
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "trial 1: a trial's record lacks 'best_val_loss'" in err and "Traceback" not in err


def test_a_sweep_without_pruning_says_nothing_of_pruned_trials(tmp_path, capsys):
    assert main(_tiny_sweep_argv(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "1 trials, 0 failed; wrote" in out and "pruned" not in out


KILL_TRACKER_SCRIPT = """
import json, os, signal, subprocess, sys, threading, time
from rnnreg.cli import main

OUT = sys.argv[sys.argv.index("--out") + 1]

def kill_the_tracker():  # once a trial has finished (the pool and its semaphores exist), while others train
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with open(os.path.join(OUT, "sweep.json")) as f:
                finished = len(json.load(f)["trials"])
        except (OSError, ValueError, KeyError):
            finished = 0
        found = subprocess.run(["pgrep", "-f", "loky.backend.resource_tracker"], capture_output=True)
        if finished and found.stdout.split():
            for pid in found.stdout.split():
                os.kill(int(pid), signal.SIGKILL)
            print("killed the resource tracker", file=sys.stderr, flush=True)
            return
        time.sleep(0.05)

threading.Thread(target=kill_the_tracker, daemon=True).start()
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="pgrep and SIGKILL")
def test_a_sweep_whose_resource_tracker_is_killed_explains_the_trackers_tracebacks(tmp_path):
    import subprocess

    pytest.importorskip("joblib")
    script = tmp_path / "kill_tracker.py"
    script.write_text(KILL_TRACKER_SCRIPT)
    settings = ["--data", "synthetic", "--train-size", "2000", "--eval-size", "50", "--epochs", "20"]
    argv = [
        "sweep",
        *settings,
        "--grid",
        "hidden=8,16,24,32,40,48",
        "--jobs",
        "2",
        "--quiet",
        "--no-progress",
    ]
    run = subprocess.run(
        [sys.executable, str(script), *argv, "--out", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    records = json.loads((tmp_path / "s" / "sweep.json").read_text())["trials"]
    assert [r["status"] for r in records] == ["done"] * 6
    assert "killed the resource tracker" in run.stderr
    assert "KeyError: '/loky-" in run.stderr  # loky's own tracebacks, which the sweep cannot stop
    assert "resource tracker (loky's helper process) was restarted" in run.stdout
