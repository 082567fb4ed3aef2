"""Record Keras 3's EarlyStopping decisions on fixed scenarios, for tests/test_early_stopping.py.

Run in an environment with keras (any backend), e.g.:
    python -m venv /tmp/kv && /tmp/kv/bin/pip install keras jax
    KERAS_BACKEND=jax /tmp/kv/bin/python tests/keras_reference/record_keras_early_stopping.py
It rewrites early_stopping_cases.json beside this file. rnnreg does not need keras.
"""

import json
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402

SCENARIOS = [
    ("notebook, patience 3", [2.51, 2.10, 1.80, 1.70, 1.75, 1.85, 2.00, 2.15], {"patience": 3}),
    ("patience 0", [1.0, 0.9, 0.95, 0.8], {"patience": 0}),
    ("plateau of equal values", [1.0, 1.0, 1.0, 1.0, 1.0], {"patience": 2}),
    ("min_delta 0.05", [1.0, 0.97, 0.96, 0.90, 0.89, 0.88, 0.87], {"patience": 2, "min_delta": 0.05}),
    ("baseline not reached", [1.0, 0.9, 0.8, 0.75, 0.7, 0.65], {"patience": 2, "baseline": 0.5}),
    ("baseline reached late", [1.0, 0.9, 0.6, 0.45, 0.5, 0.55, 0.6], {"patience": 2, "baseline": 0.5}),
    ("start_from_epoch", [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9], {"patience": 2, "start_from_epoch": 3}),
    (
        "mode max",
        [0.5, 0.6, 0.7, 0.69, 0.68, 0.71, 0.70, 0.65, 0.6],
        {"patience": 2, "mode": "max", "monitor": "val_accuracy"},
    ),
    (
        "restore best weights",
        [3.0, 2.0, 2.5, 1.5, 1.6, 1.7, 1.8],
        {"patience": 3, "restore_best_weights": True},
    ),
    ("restore, never fires", [3.0, 2.0, 2.5, 1.5, 1.6], {"patience": 10, "restore_best_weights": True}),
    (
        "noisy, patience 4",
        [2.0, 1.5, 1.6, 1.4, 1.45, 1.5, 1.39, 1.41, 1.42, 1.43, 1.44, 1.45],
        {"patience": 4, "min_delta": 0.005},
    ),
]


def run(values, settings):
    monitor = settings.get("monitor", "val_loss")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    kwargs = {k: v for k, v in settings.items()}
    kwargs.setdefault("monitor", monitor)
    callback = keras.callbacks.EarlyStopping(**kwargs)
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    decisions = []
    for epoch, value in enumerate(values):
        model.set_weights([np.full((1, 1), float(epoch))])  # weights remember their epoch
        callback.on_epoch_end(epoch, {monitor: value})
        decisions.append(
            {
                "continue": not model.stop_training,
                "wait": int(callback.wait),
                "best": None if callback.best is None else float(callback.best),
                "best_epoch": int(callback.best_epoch),
            }
        )
        if model.stop_training:
            break
    callback.on_train_end()
    return {
        "decisions": decisions,
        "stopped_epoch": int(callback.stopped_epoch),
        "weights_epoch_after_training": float(model.get_weights()[0][0, 0]),
    }


cases = [
    {"name": name, "values": values, "settings": settings, "keras": run(values, settings)}
    for name, values, settings in SCENARIOS
]
with open(os.path.join(os.path.dirname(__file__), "early_stopping_cases.json"), "w") as f:
    json.dump({"keras_version": keras.__version__, "cases": cases}, f, indent=1)
print(f"recorded {len(cases)} scenarios with keras {keras.__version__}")
