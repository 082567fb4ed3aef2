"""Sweeps: many independent training runs over regularization settings, on local processes
(joblib) or a Dask cluster (``distributed``).

    rnnreg sweep --grid dropout=0,0.3 --grid weight-decay=0,3e-4 --jobs 2 --out runs/sweep
    rnnreg sweep --random 8 --space lr=1e-3:1e-2:log --space dropout=0:0.5 --out runs/rand
    rnnreg sweep --grid hidden=64,128,256 --scheduler tcp://10.0.0.5:8786 --out runs/cluster

A *trial* is one call of :func:`run_trial`: the settings of ``rnnreg train`` with some of them
replaced by the trial's ``params``. It pins BLAS to one thread and is seeded by the settings
alone, so the same trial gives the same numbers on any worker, locally or on a cluster; an
exception inside it (a run that diverges, a setting the model refuses) becomes a record with
``status = "failed"`` and the sweep goes on.

The data are read once, in the process that starts the sweep, and sent to the workers with the
trial, so cluster workers need rnnreg installed and nothing else — not the text files.

Why ``distributed.Client`` directly rather than joblib's Dask backend: one future per trial gives
each record as soon as its trial finishes (written to ``sweep.json`` then, which is what makes an
interrupted sweep resumable), the address of the worker that ran it, and the scheduler's own
handling of a worker that dies: its trials are rescheduled elsewhere (up to Dask's
``distributed.scheduler.allowed-failures`` times, then recorded as failed). Locally, joblib's
loky processes do the same work without a scheduler; when one is killed, joblib stops the batch,
and the sweep resubmits every trial that has no record yet (``retries`` times).
"""

import argparse
import itertools
import json
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .runs import SETTINGS, TRAINING_OPTIONS, default_settings, load_data, train_run

__all__ = ["sweep", "run_trial", "sweep_trials", "parse_grid", "parse_space", "sweep_table"]

_logger = logging.getLogger("rnnreg")

TIMING_FIELDS = ("seconds", "worker")  # the only fields of a record that differ between runs
STATUS_DONE, STATUS_FAILED, STATUS_PRUNED = "done", "failed", "pruned"
#: Statuses of a trial that is over (a rerun of the sweep does not run a done trial again, nor
#: one pruned by the rule it prunes with: see _reusable).
FINISHED = (STATUS_DONE, STATUS_PRUNED)
PRUNERS = ("median", "asha")


def _number_or_none(value):
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: A trial's record in sweep.json: each field, its value before the trial runs, and the rule a
#: record read back from a file must meet (a file is untrusted: a record that does not is refused).
RECORD_FIELDS = {
    "params": (dict, lambda value: isinstance(value, dict)),
    "best_val_loss": (None, _number_or_none),
    "test_loss": (None, _number_or_none),
    "best_epoch": (None, lambda value: value is None or _count(value)),
    "epochs": (0, _count),
    "seconds": (None, _number_or_none),
    "status": (STATUS_DONE, lambda value: value in (STATUS_DONE, STATUS_FAILED, STATUS_PRUNED)),
    "error": (None, lambda value: value is None or isinstance(value, str)),
    "pruned_by": (None, lambda value: value is None or value in PRUNERS),  # the rule that pruned it
    "worker": (None, lambda value: value is None or isinstance(value, str)),
    "history": (None, lambda value: value is None or isinstance(value, dict)),
}
#: Fields a record from an earlier version of rnnreg may lack (read as their initial value).
OPTIONAL_FIELDS = ("pruned_by",)


def new_record(params, **fields):
    """A trial's record: every field of RECORD_FIELDS at its initial value, then ``fields``."""
    record = {
        name: (dict(params) if name == "params" else initial) for name, (initial, _) in RECORD_FIELDS.items()
    }
    record.update(fields)
    return record


def _check_record(record):
    """Raise ValueError naming the first field of a record (read from a file) that breaks its
    rule in RECORD_FIELDS, or a finished record without its losses."""
    if not isinstance(record, dict):
        raise ValueError(f"a trial's record must be an object, got {type(record).__name__}")
    for name, (_, rule) in RECORD_FIELDS.items():
        if name not in record:
            if name in OPTIONAL_FIELDS:
                continue
            raise ValueError(f"a trial's record lacks {name!r}")
        if not rule(record[name]):
            raise ValueError(f"a trial's {name!r} is {record[name]!r}")
    if record["status"] in (STATUS_DONE, STATUS_PRUNED) and record["best_val_loss"] is None:
        raise ValueError(f"a {record['status']} trial's 'best_val_loss' is missing")


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


# ----------------------------------------------------------------------------- the settings
_OPTIONS = {option.flag: option for option in TRAINING_OPTIONS}


def settings_of(args):
    """The training settings in a parsed command line (an argparse Namespace)."""
    return {dest: getattr(args, dest) for dest in default_settings() if hasattr(args, dest)}


def train_command(settings, params, out="runs/best"):
    """The ``rnnreg train`` command that trains the trial ``params`` (flag names, as a sweep's
    records hold them) of a sweep with ``settings`` (destination names, as
    :func:`settings_of` gives): every training option whose value differs from its default, in
    the command line's own form. A trial of a named setting (``setting=zoneout``) is run with
    ``--settings`` by ``rnnreg compare``: its command says so."""
    import shlex

    if "setting" in params:
        rest = {name: value for name, value in params.items() if name != "setting"}
        if rest:
            return None  # a named setting combined with options: no one command says both
        return shlex.join(["rnnreg", "compare", "--settings", params["setting"], *_flags(settings, {})])
    return shlex.join(["rnnreg", "train", *_flags(settings, params), "--out", out])


def _flags(settings, params):
    """Command-line tokens of the settings (with the trial's params) that differ from defaults."""
    merged = dict(settings, **{_dest(name): value for name, value in params.items()})
    tokens = []
    for flag, option in _OPTIONS.items():
        value = merged.get(option.dest, option.default)
        if value == option.default or value is None:
            continue
        if option.switch:
            tokens.append(f"--{flag}")  # (a switch that differs from its default is on)
        elif option.many:
            tokens += [f"--{flag}", *[str(x) for x in value]]
        else:
            tokens += [f"--{flag}", str(value)]
    return tokens


def _sweepable():
    return {flag: option for flag, option in _OPTIONS.items() if option.sweepable}


def _convert(name, value):
    """``value`` (a string from the command line, or a Python value) as the option ``name`` takes
    it, checked by that option's own type and choices. The extra name ``setting`` is one of
    ``rnnreg compare``'s named settings."""
    if name == "setting":
        if value not in SETTINGS:
            raise ValueError(f"setting={value!r}: not one of {', '.join(SETTINGS)}")
        return value
    options = _sweepable()
    action = options.get(name.replace("_", "-"))
    if action is None:
        raise ValueError(
            f"{name!r} cannot be swept; the settings that can: {', '.join(sorted(options))}, setting"
        )
    if action.type is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # a range's bound, 16.0, for an integer setting
    text = str(value).strip()
    if action.switch:
        if isinstance(value, bool):
            return value
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"{name}={value!r}: expected true or false")
    if action.default is None and text.lower() == "none":
        return None
    try:
        converted = action.type(text) if action.type is not None else text
    except (argparse.ArgumentTypeError, ValueError) as exc:
        expected = {int: "an integer", float: "a number"}.get(action.type)
        raise ValueError(f"{name}={value!r}: " + (f"expected {expected}" if expected else str(exc))) from None
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"{name}={value!r}: not one of {', '.join(map(str, action.choices))}")
    return converted


def _dest(name):
    return "setting" if name == "setting" else _sweepable()[name.replace("_", "-")].dest


def _flag(name):
    return name.replace("_", "-")


def parse_grid(texts):
    """``["dropout=0,0.3", "layer-norm=false,true"]`` -> ``{"dropout": [0.0, 0.3], ...}``."""
    grid = {}
    for text in texts or ():
        name, sep, values = text.partition("=")
        if not sep or not values:
            raise ValueError(f"--grid {text!r}: expected NAME=V1,V2,...")
        grid[_flag(name.strip())] = [_convert(name.strip(), item) for item in values.split(",")]
    return grid


def parse_space(texts):
    """``["lr=1e-3:1e-2:log", "dropout=0:0.5", "optimizer=adam|adamw"]`` ->
    ``{"lr": (0.001, 0.01, True), "dropout": (0.0, 0.5, False), "optimizer": ["adam", "adamw"]}``:
    a range (drawn uniformly, or log-uniformly), or a list of choices (drawn with equal
    probability)."""
    space: dict[str, Any] = {}
    for text in texts or ():
        name, sep, bounds = text.partition("=")
        if sep and "|" in bounds:  # categorical: each choice checked by the option's own rules
            choices = [_convert(name.strip(), item) for item in bounds.split("|")]
            space[_flag(name.strip())] = choices
            continue
        parts = bounds.split(":")
        if not sep or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ValueError(f"--space {text!r}: expected NAME=LOW:HIGH, NAME=LOW:HIGH:log or NAME=A|B|...")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"--space {text!r}: LOW and HIGH must be numbers") from None
        log = len(parts) == 3
        if not (math.isfinite(low) and math.isfinite(high) and low < high) or (log and low <= 0):
            raise ValueError(
                f"--space {text!r}: need LOW < HIGH" + (", both > 0 on a log scale" if log else "")
            )
        _convert(name.strip(), low)  # the bounds themselves must be values the option takes
        _convert(name.strip(), high)
        space[_flag(name.strip())] = (low, high, log)
    return space


def sweep_trials(grid=None, random=0, space=None, seed=0):
    """The trials' params, in a fixed order: the Cartesian product of ``grid`` (name -> values),
    times ``random`` draws from ``space`` (name -> (low, high, log)) seeded by ``seed``. Integer
    settings (``hidden``, ``patience``, ...) drawn from a space are rounded."""
    grid = {_flag(name): [_convert(name, value) for value in values] for name, values in (grid or {}).items()}
    space = {_flag(name): bounds for name, bounds in (space or {}).items()}
    if isinstance(random, bool) or not isinstance(random, int) or random < 0:
        raise ValueError(f"--random is the number of draws, an integer >= 0, got {random!r}")
    if random and not space:
        raise ValueError("random search needs a space (--space NAME=LOW:HIGH[:log])")
    if space and not random:
        raise ValueError("a space is searched by --random N (the number of draws)")
    if set(grid) & set(space):
        raise ValueError(f"{sorted(set(grid) & set(space))} both in the grid and the space")
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    if not random:
        if not grid:
            raise ValueError("nothing to sweep: give --grid NAME=V1,V2,... or --random N --space")
        return combos
    rng = np.random.default_rng(seed)
    actions = _sweepable()
    draws = []
    for _ in range(random):
        draw = {}
        for name in sorted(space):
            if isinstance(space[name], list):  # categorical
                draw[name] = space[name][int(rng.integers(len(space[name])))]
                continue
            low, high, log = space[name]
            value = (
                float(np.exp(rng.uniform(np.log(low), np.log(high))))
                if log
                else float(rng.uniform(low, high))
            )
            if actions[name].type is int:
                value = int(round(value))
            draw[name] = _convert(name, value)
        draws.append(draw)
    return [dict(combo, **draw) for draw in draws for combo in combos]


# ----------------------------------------------------------------------------- one trial
def _worker_name():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:pid{os.getpid()}"


def _label(params):
    if list(params) == ["setting"]:
        return params["setting"]
    return " ".join(f"{name}={value}" for name, value in params.items()) or "base"


class Pruner:
    """A callback of :func:`rnnreg.fit` that stops a trial whose validation loss falls behind
    the other trials' at the same epoch. The trials of a sweep share their curves through one
    file (a line per trial and epoch, appended — short appends are atomic), so the rule sees
    every trial that got that far, in any worker process.

    * ``"median"`` (Optuna's MedianPruner): from the second epoch on, once ``startup`` other
      trials reached the epoch, stop when the loss is above their median.
    * ``"asha"`` (asynchronous successive halving, Li et al. 2020): at the rungs — after 1, η,
      η², ... epochs — go on only within the best 1/η of the losses reported at that rung so
      far (once η trials reported it).
    """

    def __init__(self, rule, curves, trial, startup=3, eta=3):
        if rule not in PRUNERS:
            raise ValueError(f"prune must be one of {', '.join(PRUNERS)}, got {rule!r}")
        self.rule, self.curves, self.trial = rule, curves, trial
        self.startup, self.eta = startup, eta
        self.pruned = False

    def _losses_at(self, epoch):
        losses = {}
        with open(self.curves) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:  # a line being written
                    continue
                if entry.get("epoch") == epoch:
                    losses[entry["trial"]] = entry["val_loss"]
        return losses

    def on_epoch_end(self, event):
        if event.val_loss is None or not math.isfinite(event.val_loss):
            return None
        with open(self.curves, "a") as f:
            f.write(
                json.dumps({"trial": self.trial, "epoch": event.epoch, "val_loss": event.val_loss}) + "\n"
            )
        losses = self._losses_at(event.epoch)
        if self.rule == "median":
            others = [loss for trial, loss in losses.items() if trial != self.trial]
            if event.epoch >= 1 and len(others) >= self.startup and event.val_loss > float(np.median(others)):
                self.pruned = True
        else:
            done = event.epoch + 1
            rung = done == round(self.eta ** round(math.log(done, self.eta)))
            if rung and len(losses) >= self.eta:
                keep = sorted(losses.values())[: math.ceil(len(losses) / self.eta)]
                self.pruned = event.val_loss > keep[-1]
        return False if self.pruned else None


def run_trial(settings, params, data, vocab_size, return_weights=False, model_path=None, prune=None):
    """Train once with ``settings`` (destination name -> value, as :func:`default_settings`)
    changed by ``params`` (flag name -> value), on ``data``; return the trial's record.

    BLAS is pinned to one thread for the trial (when threadpoolctl is installed), so that N
    workers use N cores and the numbers do not depend on the worker. An exception is recorded,
    not raised: ``status`` is ``"failed"`` and ``error`` holds its message.
    ``model_path``: write the trial's best model file there (as ``rnnreg train``'s best.npz).
    ``prune``: None, or ``(rule, curves file)`` — a :class:`Pruner` may stop the trial, which is
    then recorded with its curve and status ``"pruned"``."""
    started = time.perf_counter()
    record = new_record(params, worker=_worker_name())
    trial_settings = dict(settings)
    overrides = {}
    for name, value in params.items():
        if name == "setting":
            overrides = dict(SETTINGS[value])
        else:
            trial_settings[_dest(name)] = value
    weights = None
    label = _label(params)
    log = None if trial_settings.get("quiet", True) else (lambda line: _logger.info(f"[{label}] {line}"))
    pruner = None if prune is None else Pruner(prune[0], prune[1], _key(params))
    try:
        with _one_blas_thread():
            model, history = train_run(
                trial_settings,
                data,
                vocab_size,
                name=label,
                overrides=overrides,
                log=log,
                best_model_path=model_path,
                callbacks=[pruner] if pruner else (),
            )
    except Exception as exc:  # a failed trial is a result of the sweep, not its end
        from .training import TrainingError

        record["status"] = STATUS_FAILED
        record["error"] = (
            f"{type(exc).__name__}: {exc.args[0] if exc.args else exc}"
            if isinstance(exc, TrainingError)
            else f"{type(exc).__name__}: {exc}"
        )
    else:
        record.update(
            best_val_loss=history["best_val_loss"],
            test_loss=history["test_loss"],
            best_epoch=history["best_epoch"],
            epochs=len(history["epoch"]),
            history=history,
        )
        if pruner is not None and pruner.pruned:
            record.update(status=STATUS_PRUNED, pruned_by=pruner.rule)
        if return_weights:
            weights = model.weights()
    record["seconds"] = time.perf_counter() - started
    return (record, weights) if return_weights else record


class _one_blas_thread:
    """threadpoolctl's limit of BLAS to one thread, or nothing when it is not installed."""

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            self.limits = None
        else:
            self.limits = threadpool_limits(1)
        return self

    def __exit__(self, *exc):
        if self.limits is not None:
            self.limits.restore_original_limits()
        return False


# ----------------------------------------------------------------------------- engines
def _local(tasks, jobs, retries, on_record):
    """Run ``tasks`` (key -> (callable args)) in ``jobs`` loky processes; a killed worker stops
    joblib's batch, and the trials without a record are submitted again."""
    try:
        from joblib import Parallel, delayed
        from joblib.externals.loky.process_executor import TerminatedWorkerError
    except ImportError:
        raise ImportError(
            "--jobs N > 1 runs trials with joblib: pip install 'rnnreg[sweep]' "
            "(or --jobs 1 to run them one after another here)"
        ) from None
    pending = dict(tasks)
    tracker = None  # loky's resource tracker process, as first seen
    for attempt in range(retries + 1):
        try:
            results = Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(_keyed)(key, *task) for key, task in list(pending.items())
            )
            for key, result in results:
                tracker = tracker or _resource_tracker_pid()
                pending.pop(key)
                on_record(key, result)
            if tracker is not None and _resource_tracker_pid() not in (None, tracker):
                _logger.warning(
                    "joblib's resource tracker (loky's helper process) was restarted during the "
                    "sweep; the \"KeyError: '/loky-...'\" tracebacks it printed are its bookkeeping "
                    "of semaphores made before the restart: harmless, every trial's result stands"
                )
            return
        except TerminatedWorkerError as exc:
            _logger.warning(
                f"a worker process died ({str(exc).splitlines()[0]}); resubmitting {len(pending)} trial(s)"
            )
            if attempt == retries:
                for key in list(pending):
                    on_record(key, _failed(tasks[key][1], f"worker process died: {exc}"))


def _resource_tracker_pid():
    """The process id of loky's resource tracker (None when it is not running or cannot be
    seen): a tracker killed during a sweep is relaunched by loky, and the new one prints a
    KeyError traceback for every semaphore it never saw registered."""
    try:
        from joblib.externals.loky.backend import resource_tracker

        return getattr(resource_tracker._resource_tracker, "_pid", None)
    except (ImportError, AttributeError):
        return None


def _keyed(key, *task):
    return key, run_trial(*task)


def _dask_api():
    try:
        from distributed import Client, as_completed
        from distributed.scheduler import KilledWorker
    except ImportError:
        raise ImportError(
            "--scheduler runs trials on a Dask cluster: pip install 'rnnreg[dask]' (here and on the workers)"
        ) from None
    return Client, as_completed, KilledWorker


def _dask(tasks, scheduler, on_record, on_slots, retries=2):
    """Run ``tasks`` on the Dask cluster at ``scheduler`` (an address, or a Client). Each trial
    carries its data (nothing lives only on a worker that may die); a trial whose worker died,
    or whose future was lost or cancelled with it, is submitted again (``retries`` times), then
    recorded as failed — the sweep itself never ends in a traceback. When the scheduler itself is
    gone (the client closes after failing to reconnect, within distributed's connect timeout),
    the sweep stops with a ConnectionError that says so: the finished trials are kept, and the
    same command continues."""
    Client, as_completed, _ = _dask_api()
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    attempts = {key: 0 for key in tasks}

    def submit(key):
        settings, params, data, vocab_size = tasks[key]
        return client.submit(run_trial, settings, params, data, vocab_size, pure=False)

    try:
        futures = {submit(key): key for key in tasks}
        on_slots(sum(client.nthreads().values()))
        queue = as_completed(list(futures))
        for future in queue:
            key = futures.pop(future)
            try:
                record = future.result()
            except Exception as exc:  # KilledWorker, CancelledError, a lost connection, ...
                if client.status in ("closing", "closed"):
                    # the client gave up reconnecting (its scheduler is gone): resubmitting to it
                    # would wait forever. The finished trials are already recorded.
                    raise ConnectionError(
                        f"the Dask scheduler {client.scheduler.address if client.scheduler else scheduler} "
                        f"is gone (the client closed after failing to reconnect: {type(exc).__name__}); "
                        f"{len(futures) + 1} trial(s) unfinished, the finished ones kept — run the same "
                        "command again once a scheduler is up to continue"
                    ) from exc
                attempts[key] += 1
                if attempts[key] <= retries:
                    _logger.warning(
                        f"trial {_label(tasks[key][1])}: {type(exc).__name__} "
                        f"({exc}); submitting it again ({attempts[key]}/{retries})"
                    )
                    again = submit(key)
                    futures[again] = key
                    queue.add(again)
                    continue
                record = _failed(
                    tasks[key][1], f"workers died running this trial: {type(exc).__name__}: {exc}"
                )
            on_record(key, record)
    finally:
        if not isinstance(scheduler, Client):
            client.close()


def _failed(params, message):
    return new_record(params, status=STATUS_FAILED, error=message)


# ----------------------------------------------------------------------------- progress
class _TrialProgress:
    """Trials done / running / failed, with an ETA: a tqdm bar on a terminal, else one log line
    per finished trial; nothing when not enabled."""

    def __init__(self, total, jobs, enabled):
        self.total, self.jobs, self.done, self.failed = total, jobs, 0, 0
        self.started = time.perf_counter()
        self.enabled, self.bar = enabled, None
        if enabled and hasattr(sys.stderr, "isatty") and sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="trials", unit="trial", file=sys.stderr)
            except ImportError:
                pass

    def update(self, record):
        self.done += 1
        self.failed += record["status"] == STATUS_FAILED
        running = min(self.jobs, self.total - self.done)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed, running=running)
            return
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        result = (
            f"FAILED {record['error']}"
            if record["status"] == STATUS_FAILED
            else f"val {record['best_val_loss']:.4f} test {record['test_loss']:.4f}"
            + (f" (pruned after {record['epochs']} epochs)" if record["status"] == STATUS_PRUNED else "")
        )
        _logger.info(
            f"[{self.done}/{self.total}, {self.failed} failed, {running} running, "
            f"ETA {eta:.0f}s] {_label(record['params'])}: {result} "
            f"({record['seconds'] or 0:.1f}s on {record['worker']})"
        )

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------- the sweep
def _key(params):
    """A trial's identity in sweep.json: its params, in a canonical JSON form."""
    return json.dumps(params, sort_keys=True)


def _read_previous(path, settings):
    """The records of earlier sweeps in the same folder, by trial key (an empty dict when there
    are none): every one is kept in sweep.json; those done are not run again."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            previous = json.load(f)
        saved, trials = previous["settings"], previous["trials"]
        if not isinstance(saved, dict) or not isinstance(trials, list):
            raise ValueError("its settings or its trials are missing")
        for number, trial in enumerate(trials, 1):
            try:
                _check_record(trial)
            except ValueError as exc:
                raise ValueError(f"trial {number}: {exc}") from None
        records = {_key(t["params"]): t for t in trials}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{path} is not a sweep.json of rnnreg ({type(exc).__name__}: {exc}); use another --out"
        ) from None
    differ = [
        f"{k} ({saved.get(k)!r}, now {settings.get(k)!r})"
        for k in sorted(set(saved) | set(settings))
        if saved.get(k) != settings.get(k)
    ]
    if differ:
        raise ValueError(
            f"{path} holds a sweep with other settings: {'; '.join(differ)}. "
            "Rerun with the same settings to resume it, or use another --out"
        )
    return records


def _reusable(record, prune):
    """Whether an earlier record stands for this sweep's trial, which is then not run again: a
    trial done, or one pruned by the rule this sweep prunes with (a trial another rule pruned,
    or one pruned when this sweep does not prune, is run again)."""
    if record is None:
        return False
    if record["status"] == STATUS_PRUNED:
        return prune is not None and record.get("pruned_by") == prune
    return record["status"] in FINISHED


def _json_settings(settings):
    return json.loads(json.dumps(settings, default=str))


def _json_safe(obj):
    """obj with every float that is not finite (a diverged loss) as None: strict JSON has no
    NaN or Infinity, and a record's status says what happened."""
    if isinstance(obj, dict):
        return {k: _json_safe(val) for k, val in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(val) for val in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_json(path, obj):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(_json_safe(obj), f, indent=1, default=float, allow_nan=False)
    os.replace(tmp, path)  # atomic: a reader sees the old file or the new one, never half


def sweep(
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    random: int = 0,
    space: Mapping[str, tuple[float, float, bool]] | None = None,
    settings: Mapping[str, Any] | None = None,
    jobs: int | None = None,
    scheduler: Any = None,
    out: str | None = None,
    progress: bool = True,
    retries: int = 2,
    data: Any = None,
    return_weights: bool = False,
    model_dir: str | None = None,
    prune: str | None = None,
) -> Any:
    """Train once per trial and return the trials' records.

    Parameters
    ----------
    grid : dict, optional
        Setting name -> values; the Cartesian product is swept. Names are ``rnnreg train``'s
        flags (``dropout``, ``recurrent-dropout``, ``weight-drop``, ``weight-decay``,
        ``layer-norm``, ``patience``, ``lr``, ``hidden``, ...; underscores work too) — note that
        ``dropout`` is the probability of *dropping*, as on the command line — or ``setting``,
        one of ``rnnreg compare``'s named settings.
    random : int
        Number of random draws from ``space`` (name -> (low, high, log_scale)), seeded by the
        settings' ``seed``; combined with every grid point.
    settings : dict, optional
        The other settings, by flag or destination name (``{"epochs": 3, "hidden": 64,
        "data": ["book.txt"]}``); the rest keep ``rnnreg train``'s defaults.
    jobs : int, optional
        Local worker processes (default: the number of cores); 1 runs the trials here, one
        after another.
    scheduler : str or distributed.Client, optional
        A Dask scheduler's address (``"tcp://host:8786"``) or a Client: the trials run there.
    out : str, optional
        A folder for ``sweep.json`` (rewritten, atomically, as each trial finishes), ``sweep.md``
        and ``sweep.png``. Trials already done in its ``sweep.json`` are not run again.
    data : CharCorpus, optional
        The text to train on, instead of ``settings["data"]``.
    progress : bool
        A progress bar over trials on a terminal, else one log line (``rnnreg`` logger) per
        finished trial; False: neither.
    retries : int
        How many times trials are resubmitted after a local worker process dies.
    model_dir : str, optional
        Keep each trial's best model there, as ``<trial label>.npz`` (local sweeps only;
        ``rnnreg compare`` keeps one per setting).
    prune : {"median", "asha"}, optional
        Stop trials whose validation loss falls behind the others' (``"median"``: above the
        median of the other trials' at the same epoch; ``"asha"``: outside the best third of
        those that reached 1, 3, 9, ... epochs). A pruned trial is recorded with its curve and
        status ``"pruned"``, and not run again by a rerun with the same rule (a rerun with
        another rule, or without pruning, trains it again; local sweeps: the trials share their
        curves through a file in ``out``).
    return_weights : bool
        Also return each trial's final weights (``model.weights()``; local sweeps only) —
        ``rnnreg compare`` draws its histograms from them.

    Returns
    -------
    list of dict
        One record per trial, in trial order: ``params``, ``best_val_loss``, ``test_loss``,
        ``best_epoch``, ``epochs``, ``seconds``, ``status`` (``"done"``/``"failed"``),
        ``error``, ``worker``, and ``history`` (the run's per-epoch history). With
        ``return_weights``, a pair (records, weights per trial).

    Examples
    --------
    >>> from rnnreg import sweep
    >>> records = sweep({"dropout": [0.0, 0.5]}, jobs=1, progress=False,
    ...                 settings={"data": ["synthetic"], "train_size": 40, "epochs": 1,
    ...                           "hidden": 8})
    >>> [(r["params"], r["status"]) for r in records]
    [({'dropout': 0.0}, 'done'), ({'dropout': 0.5}, 'done')]
    """
    base = default_settings()
    for name, value in (settings or {}).items():
        dest = _OPTIONS[_flag(name)].dest if _flag(name) in _OPTIONS else name
        if dest not in base:
            raise ValueError(f"unknown setting {name!r}")
        base[dest] = value
    if isinstance(base["data"], str):
        base["data"] = [base["data"]]
    # Trials draw no progress bars (the sweep draws one over trials); their epoch lines show
    # only when asked for (quiet=False) and only from trials run in this process.
    base["no_progress"] = True
    base["quiet"] = (settings or {}).get("quiet", True)
    trials = sweep_trials(grid, random, space, seed=base["seed"])
    if scheduler is not None:  # the missing extra, said before any data is read
        _dask_api()
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")

    # The data, read here once per distinct data setting (train-size, eval-size and seed choose it).
    loaded = {}

    def data_for(params):
        view = dict(base, **{_dest(n): v for n, v in params.items() if n != "setting"})
        key = (tuple(view["data"]), view["train_size"], view["eval_size"], view["seed"])
        if key not in loaded:
            if data is not None:
                loaded[key] = (data.vocab_size, data)
            else:
                loaded[key] = load_data(view)[1:]
        return loaded[key]

    header = {
        "settings": _json_settings(
            {k: v for k, v in base.items() if k not in ("no_progress", "quiet", "debug")}
        )
    }
    path = os.path.join(out, "sweep.json") if out else None
    if out:
        os.makedirs(out, exist_ok=True)
    previous = _read_previous(path, header["settings"]) if path else {}
    records = {}
    tasks = {}
    for index, params in enumerate(trials):
        if _reusable(previous.get(_key(params)), prune):
            records[index] = previous[_key(params)]
        else:
            vocab_size, trial_data = data_for(params)
            tasks[index] = (base, params, trial_data, vocab_size)
    if model_dir is not None:
        if scheduler is not None:
            raise ValueError("model_dir is for local sweeps (a cluster's workers write on their own disks)")
        os.makedirs(model_dir, exist_ok=True)
    prune_with = scratch_curves = None
    if prune is not None:
        if prune not in PRUNERS:
            raise ValueError(f"prune must be one of {', '.join(PRUNERS)}, got {prune!r}")
        if scheduler is not None:
            raise ValueError("prune is for local sweeps (the trials share their curves through a file)")
        if out:
            curves = os.path.join(out, "sweep.curves.jsonl")
            open(curves, "a").close()
        else:  # a file of this sweep's own, removed when it ends
            import tempfile

            fd, curves = tempfile.mkstemp(prefix="rnnreg-sweep-", suffix=".jsonl")
            os.close(fd)
            scratch_curves = curves
        prune_with = (prune, curves)
    model_paths = {
        index: None
        if model_dir is None
        else os.path.join(model_dir, _file_name(_label(trials[index])) + ".npz")
        for index in tasks
    }
    # Records of earlier sweeps in this folder that this one does not repeat: kept, after its own.
    current = {_key(params) for params in trials}
    kept = [record for key, record in previous.items() if key not in current]
    if previous:
        _logger.info(
            f"{out}: {len(records)} of {len(trials)} trials already done; "
            f"running {len(tasks)}" + (f"; keeping {len(kept)} records of earlier sweeps" if kept else "")
        )
    bar = _TrialProgress(len(tasks), jobs, progress)
    weights = {}

    def on_record(index, result):
        record, trial_weights = result if return_weights else (result, None)
        records[index] = record
        weights[index] = trial_weights
        bar.update(record)
        if path:
            done = [records[i] for i in sorted(records)] + kept
            _write_json(path, dict(header, trials=done))

    try:
        if scheduler is not None:
            if return_weights:
                raise ValueError("return_weights is for local sweeps")
            _dask(tasks, scheduler, on_record, on_slots=lambda n: setattr(bar, "jobs", n), retries=retries)
        elif jobs == 1 or len(tasks) <= 1:
            for index, task in tasks.items():
                on_record(
                    index,
                    run_trial(
                        *task, return_weights=return_weights, model_path=model_paths[index], prune=prune_with
                    ),
                )
        else:
            _local(
                {i: t + (return_weights, model_paths[i], prune_with) for i, t in tasks.items()},
                min(jobs, len(tasks)),
                retries,
                on_record,
            )
    finally:
        bar.close()
        if scratch_curves is not None:
            os.unlink(scratch_curves)
    ordered = [records[i] for i in range(len(trials))]
    if out:  # the folder's table and plot: this sweep's trials and those kept from earlier ones
        folder = ordered + kept
        swept = list(dict.fromkeys(name for r in folder for name in r["params"]))
        with open(os.path.join(out, "sweep.md"), "w") as f:
            f.write(sweep_table(folder) + "\n")
        from .plotting import plot_sweep

        if not any(r.get("status") == STATUS_DONE for r in folder):  # nothing to plot: say why
            reasons = dict.fromkeys(str(r.get("error")) for r in folder if r.get("status") == STATUS_FAILED)
            raise ValueError(
                f"every trial failed ({len(folder)}): {'; '.join(list(reasons)[:3])} "
                f"(the records are in {out}/sweep.json)"
            )
        fig = plot_sweep(
            folder,
            swept,
            log_scale={n for n, b in (space or {}).items() if isinstance(b, tuple) and b[2]},
            unit="nats per token" if base["data"] == ["synthetic"] else "nats/char",
        )
        fig.savefig(os.path.join(out, "sweep.png"), dpi=100)
        import matplotlib.pyplot as plt

        plt.close(fig)
    if return_weights:
        return ordered, [weights.get(i) for i in range(len(trials))]
    return ordered


def _file_name(label):
    """A trial's label as a file name: letters, digits and ._=- kept, the rest as _."""
    return "".join(ch if ch.isalnum() or ch in "._=-" else "_" for ch in label) or "trial"


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def sweep_table(records):
    """A markdown table of the trials, best validation loss first (failed trials last). Trials
    are ranked by validation loss — the held-out loss a choice of settings may be made on; the
    test loss is reported beside it, not used to rank."""
    names = list(dict.fromkeys(name for r in records for name in r["params"]))
    done = sorted((r for r in records if r["status"] == STATUS_DONE), key=lambda r: r["best_val_loss"])
    pruned = sorted((r for r in records if r["status"] == STATUS_PRUNED), key=lambda r: r["best_val_loss"])
    failed = [r for r in records if r["status"] not in FINISHED]
    lines = [
        "| rank | " + " | ".join(names) + " | best val loss | test loss | best epoch | "
        "epochs | seconds | worker |",
        "|---" * (len(names) + 7) + "|",
    ]
    for rank, r in enumerate(done, 1):
        lines.append(
            f"| {rank} | "
            + " | ".join(_fmt(r["params"].get(n, "")) for n in names)
            + f" | {r['best_val_loss']:.4f} | {r['test_loss']:.4f} | {r['best_epoch']} "
            f"| {r['epochs']} | {r['seconds']:.1f} | {r['worker']} |"
        )
    for r in pruned:
        lines.append(
            "| pruned | "
            + " | ".join(_fmt(r["params"].get(n, "")) for n in names)
            + f" | {r['best_val_loss']:.4f} | | {r['best_epoch']} | {r['epochs']} "
            f"| {r['seconds']:.1f} | {r['worker']} |"
        )
    for r in failed:
        lines.append(
            "| failed | "
            + " | ".join(_fmt(r["params"].get(n, "")) for n in names)
            + f" | {r['error']} | | | | | {r['worker']} |"
        )
    return "\n".join(lines)
