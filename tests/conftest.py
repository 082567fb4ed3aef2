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


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
