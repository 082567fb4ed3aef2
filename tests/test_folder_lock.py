"""One writer per run folder (rnnreg.folder_lock): a second rnnreg train, compare or sweep into
the folder of a run that is still going is refused, naming the folder and the holder, or waits
with --wait; a killed run's lock goes with it. Real processes, not mocks."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rnnreg.cli import main
from rnnreg.folder_lock import LOCK_NAME, FolderLock

pytestmark = pytest.mark.slow

LONG_TRAIN = [
    "train",
    "--data",
    "synthetic",
    "--train-size",
    "200",
    "--hidden",
    "64",
    "--epochs",
    "400",
    "--no-progress",
    "--quiet",
]


def _start(args, out):
    """An rnnreg command in a process of its own, once it holds ``out``'s lock."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnreg", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    lock = out / LOCK_NAME
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == proc.pid:
                return proc
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"the first run ended early: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the first run never took the folder's lock")


def test_a_second_train_into_a_running_runs_folder_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    first = _start(LONG_TRAIN, out)
    try:
        code = main([*LONG_TRAIN[:-4], "--epochs", "1", "--no-progress", "--quiet", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 1
        assert str(out) in err and f"process {first.pid}" in err and "rnnreg train" in err
        assert first.poll() is None  # the first run goes on, untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # a killed run's lock went with it: the folder is free again (its files are an earlier run's:
    # replaced when told to)
    assert (
        main(
            [*LONG_TRAIN[:-4], "--epochs", "1", "--no-progress", "--quiet", "--out", str(out), "--overwrite"]
        )
        == 0
    )


def test_a_second_sweep_into_a_running_sweeps_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "sweep"
    sweep = [
        "sweep",
        "--data",
        "synthetic",
        "--train-size",
        "200",
        "--hidden",
        "64",
        "--epochs",
        "300",
        "--grid",
        "dropout=0,0.2",
        "--no-progress",
    ]
    first = _start(sweep, out)
    try:
        assert main([*sweep, "--out", str(out)]) == 1
        assert f"process {first.pid}" in capsys.readouterr().err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def test_wait_takes_the_folder_when_the_first_run_ends(tmp_path):
    out = tmp_path / "run"
    short = [*LONG_TRAIN[:-4], "--epochs", "3", "--no-progress", "--quiet"]
    first = _start([*LONG_TRAIN[:-5], "40", "--no-progress", "--quiet"], out)
    # it waits, then replaces the first run (told to: an earlier run is otherwise kept)
    assert main([*short, "--out", str(out), "--wait", "--overwrite"]) == 0
    assert first.poll() is not None  # the lock was free only once the first run had ended
    assert first.wait(timeout=60) == 0


def test_the_lock_is_the_processs_and_says_who_holds_it(tmp_path):
    with FolderLock(tmp_path, "a test"):
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["what"] == "a test"
        code = (
            "import sys; from rnnreg.folder_lock import FolderLock, FolderBusy\n"
            "try:\n    FolderLock(sys.argv[1]).__enter__()\nexcept FolderBusy as e:\n    print(e)\n"
        )
        other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert "in use by a test" in other.stdout
    with FolderLock(tmp_path):  # released: taken again
        pass
