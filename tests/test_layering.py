"""The package's import rules: no library module imports the command line."""

import ast
import pathlib

import rnnreg

PACKAGE = pathlib.Path(rnnreg.__file__).parent


def _imports(path):
    """The rnnreg modules a source file imports (relative or absolute), by their last name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level > 0 or module.startswith("rnnreg"):
                base = module.split(".")[-1] if module else ""
                names.add(base)
                names.update(alias.name for alias in node.names)  # from . import cli
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[-1] for alias in node.names if alias.name.startswith("rnnreg"))
    return names


def test_no_module_but_the_entry_points_imports_the_command_line():
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) > 10
    importers = [p.name for p in sources if "cli" in _imports(p)]
    assert importers == ["__main__.py"], importers


def _imported_modules(path):
    """Full names of the modules a package source imports (relative imports made absolute)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = (
                ("rnnreg." + node.module if node.module else "rnnreg") if node.level else (node.module or "")
            )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_backend_imports_the_kernels_and_only_the_door_asks_it():
    """rnnreg._backend imports the compiled module and the twin; rnnreg._ops, the one door,
    asks it which one runs; everything else computes through the door (__init__ re-exports the
    backend switches, the public API)."""
    for path in sorted(PACKAGE.glob("*.py")):
        imported = _imported_modules(path)
        kernels = {
            m
            for m in imported
            if m.split(".")[-1] in ("_kernels", "_kernels_avx2", "_kernels_avx512", "_reference")
        }
        if path.name != "_backend.py":
            assert not kernels, f"{path.name} imports {kernels}"
        if path.name not in ("_backend.py", "_ops.py", "__init__.py"):
            assert "rnnreg._backend" not in imported, f"{path.name} imports rnnreg._backend"


def test_the_numpy_backend_switches_every_kernel(monkeypatch):
    """Under use_backend("numpy") no compiled kernel runs: a training epoch of a model with every
    regularizer, the public functions and the optimizers, with every compiled function made to
    fail."""
    import numpy as np

    from rnnreg import _backend

    compiled = _backend._kernels
    if compiled is None:
        return
    for name in dir(compiled):
        if (
            callable(getattr(compiled, name))
            and not name.startswith("__")
            and name not in ("LSTMCache", "MappingProxyType", "step_functions", "dropout_threshold")
        ):
            monkeypatch.setattr(compiled, name, _fails(name), raising=False)
    with rnnreg.use_backend("numpy"):
        model = rnnreg.RegularizedLSTM(
            9,
            6,
            embedding_size=6,
            num_layers=2,
            use_layer_norm=True,
            dropout_keep_prob=0.8,
            recurrent_keep_prob=0.9,
            weight_keep_prob=0.9,
            zoneout_cell=0.3,
            embedding_keep_prob=0.9,
            activation_reg=1.0,
            temporal_activation_reg=1.0,
            tie_weights=True,
            seed=0,
        )
        stream = np.arange(300) % 9
        rnnreg.fit(
            model,
            stream,
            stream[:100],
            rnnreg.TrainConfig(epochs=1, weight_decay=1e-4, progress=False),
            log=lambda line: None,
        )
        h, cache = rnnreg.lstm_forward(
            np.ones((2, 3, 4)), np.zeros((2, 5)), np.ones((4, 20)), np.ones((5, 20)), np.zeros(20)
        )
        rnnreg.lstm_backward(np.ones_like(h), cache)
        rnnreg.layer_norm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3))
        rnnreg.dropout_forward(np.ones(10), 0.5, rng=0)
        rnnreg.matmul(np.ones((2, 2)), np.ones((2, 2)))


def _fails(name):
    def call(*args, **kwargs):
        raise AssertionError(f"the compiled {name} ran under use_backend('numpy')")

    return call


def _package_graph():
    """module -> the package modules it imports anywhere in its source (a function's own
    imports too: a cycle deferred into a function is still a cycle)."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        graph[name] = {
            m.split(".")[1]
            for m in _imported_modules(path)
            if m.startswith("rnnreg.")
            and (PACKAGE / (m.split(".")[1] + ".py")).exists()
            and m.split(".")[1] != name
        }
    return graph


def test_checkpointing_and_training_do_not_import_each_other():
    graph = _package_graph()

    def reaches(start, goal, seen=()):
        return any(
            n == goal or (n not in seen and reaches(n, goal, seen + (n,))) for n in graph.get(start, ())
        )

    assert not reaches("checkpoint", "training")
    assert not reaches("training_state", "training")
    assert reaches("training", "training_state")


def test_the_parts_do_not_import_the_model():
    """Cells, inputs, heads and regularizers are what the model is made of: none of them reaches
    back into the model or the trainer."""
    graph = _package_graph()
    for part in ("cells", "inputs", "heads", "regularizers", "model_config"):
        assert not graph[part] & {"model", "training", "checkpoint", "runs"}, part


def test_the_0_1_import_path_of_weight_decay_and_early_stopping_still_works():
    from rnnreg import early_stopping, regularization, weight_decay

    assert regularization.EarlyStoppingMonitor is early_stopping.EarlyStoppingMonitor
    assert regularization.compute_l2_penalty is weight_decay.compute_l2_penalty
    assert regularization.regularized_loss is weight_decay.regularized_loss
