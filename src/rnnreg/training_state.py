"""fit's training state in a checkpoint: written after every epoch, restored by ``resume_from``.

A checkpoint (the format of ``rnnreg.checkpoint``) holds the model's settings and weights,
the optimizer's, early-stopping monitor's and learning-rate schedule's state, both random
generators, the history and the training settings. Restoring reads the file as hostile input:
the model's settings and every array's shape are checked before any array is read, then every
part's state is checked (:func:`rnnreg.state.restore`) before any part takes its own — a
checkpoint that fails anywhere leaves the run as it was.
"""

from typing import Any

from .checkpoint import (
    CheckpointError,
    _checked_class_names,
    _checked_standardizer,
    _checked_vocabulary,
    _class_names_list,
    _expect_model_arrays,
    _standardizer_dict,
    _vocabulary_list,
    load_checkpoint,
    save_checkpoint,
)
from .state import Bound, GeneratorState, restore

__all__ = [
    "save_training_state",
    "restore_training_state",
    "HISTORY_LISTS",
    "RESUMABLE_CHANGES",
    "HistoryState",
]

#: Settings a resumed run may change: how long it runs, where it writes, whether it shows progress.
RESUMABLE_CHANGES = ("epochs", "progress", "checkpoint_path", "best_model_path", "model_path")
#: The history's lists, one value per epoch.
HISTORY_LISTS = ("epoch", "train_loss", "train_ce", "val_loss", "lr", "grad_norm", "seconds", "max_abs_c")
#: Lists a checkpoint of an earlier release may lack (filled with None).
HISTORY_ADDED = ("max_abs_c",)
#: The history's single values: name -> the types they may take (None always).
HISTORY_VALUES: dict[str, Any] = {
    "best_epoch": int,
    "best_val_loss": (int, float),
    "stopped_epoch": int,
    "stop_reason": str,
    "test_loss": (int, float),
    "best_model_test_loss": (int, float),
    "averaging_from": int,
}


def save_training_state(path, model, optimizer, monitor, rng, history, epoch, config, schedule=None):
    """Write what `fit` needs to continue after ``epoch``: the model, its and the trainer's
    random states, the optimizer, early-stopping and learning-rate schedule state (``schedule``:
    a stateful part, or its state), the history and the settings."""
    save_checkpoint(
        path,
        {
            "schedule": schedule.state_dict() if hasattr(schedule, "state_dict") else schedule,
            "epoch": epoch,
            "model_config": model.config(),
            "model": model.state_dict(),
            "model_rng": model.rng.bit_generator.state,
            "trainer_rng": rng.bit_generator.state,
            "optimizer": optimizer.state_dict(),
            "monitor": monitor.state_dict() if monitor is not None else None,
            "history": history,
            "train_config": config.to_dict(),
            "vocabulary": _vocabulary_list(model),
            "standardizer": _standardizer_dict(model),
            "class_names": _class_names_list(model),
        },
    )


class HistoryState:
    """A run's history (a dict of per-epoch lists and single values) as a stateful part."""

    def __init__(self, history):
        self.history = history

    def state_dict(self):
        return self.history

    def check_state_dict(self, saved):
        if not isinstance(saved, dict):
            raise ValueError("the history must be a dict")
        n_epochs = len(saved.get("epoch", []) or [])
        # the lists every run has, and a sequence task's validation metrics (val_<name>)
        metric_lists = [key for key in saved if key.startswith("val_") and key not in HISTORY_LISTS]
        for key in (*HISTORY_LISTS, *metric_lists):
            values = saved.get(key)
            if values is None and key in HISTORY_ADDED:
                continue
            numbers = isinstance(values, list) and all(
                val is None or (isinstance(val, (int, float)) and not isinstance(val, bool)) for val in values
            )
            if not numbers or not isinstance(values, list) or len(values) != n_epochs:
                raise ValueError(f"history {key!r} must be a list of numbers, one per epoch")
        for key in ("test_metrics", "best_model_test_metrics"):
            metrics = saved.get(key)
            if metrics is not None and not (
                isinstance(metrics, dict)
                and all(
                    isinstance(val, (int, float)) and not isinstance(val, bool) for val in metrics.values()
                )
            ):
                raise ValueError(f"history {key!r} must be None or a dict of numbers")
        for key, kinds in HISTORY_VALUES.items():
            val = saved.get(key)
            if not (val is None or (isinstance(val, kinds) and not isinstance(val, bool))):
                raise ValueError(f"history {key!r} must be None or a {kinds}, got {val!r}")
        if not isinstance(saved.get("restored_best", False), bool):
            raise ValueError("history 'restored_best' must be a bool")

    def load_state_dict(self, saved):
        self.check_state_dict(saved)
        saved = dict(saved)
        for key in HISTORY_ADDED:  # written before the release that added it
            if saved.get(key) is None:
                saved[key] = [None] * len(saved["epoch"])
        self.history.update({key: saved[key] for key in saved if key in self.history})


def _check_same_model(path, saved, model):
    """Raise CheckpointError naming every setting in which a file's model_config differs from
    ``model``'s (settings added after the file was written are at their defaults there)."""
    from .model_config import ModelConfig

    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: no model_config: not a checkpoint written by fit")
    try:
        saved_model = ModelConfig.from_dict(saved)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: model_config does not describe a model ({exc})") from exc
    if saved_model != model.model_config:
        differ = [
            f"{key} (checkpoint {value!r}, now {getattr(model.model_config, key)!r})"
            for key, value in saved_model.to_dict().items()
            if value != getattr(model.model_config, key)
        ]
        raise CheckpointError(f"checkpoint {path} holds another model: {'; '.join(differ)}")


def _checked_payload(path, payload, fields):
    """payload, after checking it is a dict holding each field with a value of its kind."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: the payload is not a dict")
    for field, kinds in fields.items():
        if field not in payload:
            raise CheckpointError(f"{path}: the checkpoint has no {field!r}")
        if not isinstance(payload[field], kinds) or isinstance(payload[field], bool):
            raise CheckpointError(f"{path}: {field!r} must be a {kinds}, got {type(payload[field]).__name__}")
    return payload


def _check_same_training(path, saved, config):
    """Raise CheckpointError naming the training settings that differ (a setting added after
    the checkpoint was written is at its default there)."""
    saved = dict(type(config)().to_dict(), **saved)
    current = config.to_dict()
    differ = [
        f"{key} (checkpoint {saved.get(key)!r}, now {current.get(key)!r})"
        for key in sorted(set(saved) | set(current))
        if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key)
    ]
    if differ:
        raise CheckpointError(
            f"checkpoint {path} was trained with other settings: "
            f"{'; '.join(differ)}. Resume with the same settings (only "
            f"{', '.join(RESUMABLE_CHANGES)} may change) or start afresh."
        )


def restore_training_state(path, model, optimizer, monitor, rng, history, config, schedule=None):
    """Continue from a checkpoint of ``fit``: everything in it is checked against this model,
    optimizer and configuration before anything is changed. Returns the first epoch to run.
    ``schedule``: the run's learning-rate schedule, a stateful part (``rnnreg.state``)."""
    check_arrays = _expect_model_arrays(path, model)

    def expect(meta):  # the model's settings first: a difference is named as such
        _check_same_model(path, meta["payload"].get("model_config"), model)
        check_arrays(meta)

    payload = load_checkpoint(path, expect=expect)
    _checked_payload(
        path,
        payload,
        {
            "epoch": int,
            "model_config": dict,
            "model": dict,
            "model_rng": dict,
            "trainer_rng": dict,
            "optimizer": dict,
            "history": dict,
            "train_config": dict,
        },
    )
    _check_same_training(path, payload["train_config"], config)
    epoch = payload["epoch"]
    if not 0 <= epoch < 10**9:
        raise CheckpointError(f"{path}: 'epoch' must be >= 0, got {epoch}")
    if monitor is not None and payload.get("monitor") is None:
        raise CheckpointError(f"{path} was written without early stopping; this run uses it")
    vocabulary = _checked_vocabulary(path, payload, model)
    if vocabulary is not None and model.vocabulary is not None and vocabulary != model.vocabulary:
        raise CheckpointError(f"{path} was trained with another vocabulary than this model's")
    standardizer = _checked_standardizer(path, payload, model)
    class_names = _checked_class_names(path, payload, model)
    parts = {
        "model": (model, payload["model"]),
        "model_rng": (GeneratorState(model.rng), payload["model_rng"]),
        "trainer_rng": (GeneratorState(rng), payload["trainer_rng"]),
        "optimizer": (optimizer, payload["optimizer"]),
        "history": (HistoryState(history), payload["history"]),
    }
    if monitor is not None:
        parts["monitor"] = (Bound(monitor, model=model), payload["monitor"])
    if schedule is not None and payload.get("schedule") is not None:
        parts["schedule"] = (schedule, payload["schedule"])
    try:
        restore(parts)  # every part checked before any changes
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if vocabulary is not None:
        model.vocabulary = vocabulary
    if standardizer is not None:  # fitted on the training split when the run began
        model.standardizer = standardizer
    if class_names is not None:
        model.class_names = class_names
    return epoch + 1
