"""The users' notebook, its imports pointed at rnnreg, runs top to bottom headless."""

import importlib.util
import math
import pathlib
import warnings

import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load_runner():
    spec = importlib.util.spec_from_file_location("notebook_cells", EXAMPLES / "notebook_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_imports_point_at_rnnreg():
    text = (EXAMPLES / "rnn_regularization_notebook.md").read_text(encoding="utf-8")
    cells = _load_runner().code_cells(text)
    assert len(cells) == 14
    imports = [line for line in cells[0].splitlines() if line.startswith("from ")]
    assert imports == ["from rnnreg import ("] * 2 + ["from rnnreg import generate_simple_dataset"]


def test_notebook_runs_top_to_bottom(capsys):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() under Agg
        ns = _load_runner().run_notebook(EXAMPLES / "rnn_regularization_notebook.md")
    out = capsys.readouterr().out
    assert "✓ All modules loaded!" in out
    # Part 2: the dropout mask holds only 0 and 1/keep_prob
    assert set(np.unique(ns["mask"])) <= {0.0, 1 / 0.8}
    np.testing.assert_array_equal(ns["output_test"], ns["activations"])
    # Part 3: layer norm gives mean 0, std 1 per row
    assert abs(ns["activations_norm"].mean(axis=1)).max() < 1e-12
    assert abs(ns["activations_norm"].std(axis=1) - 1).max() < 1e-3
    # Part 4: λ/2 Σ w²
    expected = 0.5 * 1e-4 * sum(float(np.sum(w**2)) for w in ns["weights_example"])
    assert math.isclose(ns["l2_penalty"], expected)
    assert math.isclose(ns["total_loss"], 0.5 + expected)
    # Part 6: the model's numbers are sensible: near ln(50) for an untrained model, finite
    assert ns["model"].parameter_count() > 0
    assert all(math.isfinite(v) for v in ns["train_losses"] + ns["val_losses"])
    assert 2.0 < ns["val_losses"][0] < 6.0
    assert "Training complete!" in out


def test_rewritten_notebook_trains_for_real(capsys):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")
        ns = _load_runner().run_notebook(EXAMPLES / "rnn_regularization_trained.md")
    out = capsys.readouterr().out
    assert "Training complete!" in out
    monitor = ns["early_stop"]
    # it learned: held-out loss far below the untrained model's
    assert ns["initial_val_loss"] > 3.5
    assert monitor.best_loss < 0.5 * ns["initial_val_loss"]
    # and the best weights are the ones it kept
    assert math.isclose(ns["final_val_loss"], monitor.best_loss, rel_tol=1e-12)
