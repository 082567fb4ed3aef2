import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")  # headless: every figure renders off screen


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


def pytest_report_header(config):
    import rnnreg
    from rnnreg import _backend
    return (f"rnnreg backend: {rnnreg.get_backend()} ({_backend.COMPILED_VARIANT} build, "
            f"{rnnreg.__file__})")


@pytest.fixture(params=["compiled", "numpy"])
def backend(request):
    """Runs a test once on each backend (the compiled kernels and their NumPy twins)."""
    import rnnreg
    with rnnreg.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_terminal_summary(terminalreporter):
    import sys
    for module in list(sys.modules.values()):
        stats = getattr(module, "BAD_INPUT_STATS", None)
        if isinstance(stats, dict) and stats.get("tried"):
            terminalreporter.write_line(
                f"bad-input cases tried: {stats['tried']}; accepted without error: "
                f"{stats['accepted']}; silent NaN: {stats['silent_nan']}; crashes: 0 "
                "(the run reached this line)")
            break
