"""Settings from the environment and the thread limit: a value out of range is a clear word,
never a traceback or an overflow (issue 37)."""

import os
import subprocess
import sys

import pytest

import rnnreg


def test_a_huge_thread_limit_is_no_limit_not_an_overflow():
    before = rnnreg.get_num_threads()
    try:
        rnnreg.set_num_threads(2**31)
        rnnreg.set_num_threads(10**30)
        assert rnnreg.get_num_threads() == before
    finally:
        rnnreg.set_num_threads(None)
    with pytest.raises(ValueError, match="integer >= 1"):
        rnnreg.set_num_threads(0)


@pytest.mark.parametrize("name", ["RNNREG_ARRAY_CACHE_MB", "RNNREG_NUM_THREADS"])
@pytest.mark.parametrize("value", ["abc", "-1", "1e3", str(2**62)])
def test_a_bad_environment_setting_is_ignored_with_one_warning_naming_it(name, value):
    env = dict(os.environ, **{name: value})
    run = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import rnnreg; print('imported')"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0 and "imported" in run.stdout
    assert f"{name}={value!r} is not an integer" in run.stderr and "Traceback" not in run.stderr
