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

    return f"rnnreg backend: {rnnreg.get_backend()} ({_backend.COMPILED_VARIANT} build, {rnnreg.__file__})"


@pytest.fixture
def poisoned_lstm():
    """A RegularizedLSTM class whose gradients turn NaN once ``healthy_steps`` backward passes
    have run (a fault injected on purpose, for the tests of divergence)."""
    from rnnreg import RegularizedLSTM

    class Poisoned(RegularizedLSTM):
        healthy_steps = 0

        def backward(self, *args, **kwargs):
            grads = super().backward(*args, **kwargs)
            self.healthy_steps -= 1
            if self.healthy_steps < 0:
                grads["W0"][0, 0] = np.nan
            return grads

    return Poisoned


@pytest.fixture(params=["compiled", "numpy"])
def backend(request):
    """Runs a test once on each backend (the compiled kernels and their NumPy twins)."""
    import rnnreg

    with rnnreg.use_backend(request.param):
        yield request.param


# A toy text whose vocabulary and splits every text-model test can reason about by eye: "z" and
# "q" occur once each, "~" only in validation.
TOY_TEXT = "the cat sat on the mat. the dog sat on the log. " * 20 + "zq"


@pytest.fixture
def toy_corpus():
    """A function ``(min_count=1) -> CharCorpus`` of TOY_TEXT with small fixed splits."""
    from rnnreg import CharCorpus

    def make(min_count=1):
        return CharCorpus(TOY_TEXT, "the rat sat. ~", "a cat on a mat.", name="toy", min_count=min_count)

    return make


@pytest.fixture
def train_toy_model(toy_corpus):
    """A function ``(path=None, epochs=3) -> (model, corpus, path)``: a small model trained on the
    toy corpus, checkpointed at ``path`` when given."""
    from rnnreg import RegularizedLSTM, TrainConfig, fit

    def train(path=None, epochs=3):
        corpus = toy_corpus()
        model = RegularizedLSTM(corpus.vocab_size, 24, seed=0)
        model.vocabulary = corpus.vocabulary
        path = None if path is None else str(path)
        fit(
            model,
            corpus.train,
            corpus.val,
            TrainConfig(epochs=epochs, lr=2e-2, progress=False, checkpoint_path=path),
            log=None,
        )
        return model, corpus, path

    return train


@pytest.fixture
def run_python(tmp_path):
    """A function ``(code) -> stdout`` that runs code in a fresh interpreter (working directory
    tmp_path) and fails the test when it exits non-zero."""
    import subprocess
    import sys
    import textwrap

    def run(code):
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, (
            f"child exited with {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return proc.stdout

    return run


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
                "(the run reached this line)"
            )
            break


@pytest.fixture
def run_benchmark():
    """A function ``(module, *args, check=False, cwd=None, timeout=300)`` that runs ``python -m
    benchmarks.MODULE ARGS`` with the repository root importable: the benchmarks are a package
    beside the tests, not installed (and PYTHONSAFEPATH=1 keeps the working folder off the
    path)."""
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__init__.py").exists():
        pytest.skip("benchmarks/ is not beside the tests")

    def run(module, *args, check=False, cwd=None, timeout=300):
        path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        return subprocess.run(
            [sys.executable, "-m", f"benchmarks.{module}", *args],
            capture_output=True,
            text=True,
            check=check,
            cwd=cwd,
            env=dict(os.environ, PYTHONPATH=path),
            timeout=timeout,
        )

    return run


@pytest.fixture
def fixed_masks_loss():
    """A function ``(model, inputs, targets, **forward_kwargs) -> loss()``: the training loss as a
    function of the parameters, every mask drawn the same at each call (the generator's state
    put back first) — what finite differences of a stochastic pass need."""

    def make(model, inputs, targets, **kwargs):
        start = model.rng.bit_generator.state

        def loss():
            model.rng.bit_generator.state = start
            return model.forward_batch(inputs, targets, training=True, **kwargs)[0]

        return loss

    return make
