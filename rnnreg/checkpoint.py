"""Checkpoints that are written atomically and checked when read.

A checkpoint is one ``.npz`` file: every array under a path-like name (``model/W0``,
``optimizer/m/W0``, ``monitor/best_weights/W0``), plus ``meta.json`` — a JSON document with the
format version, the model's constructor arguments, every array's shape and dtype, a SHA-256 of
all array bytes, the optimizer's and early-stopping monitor's scalars, the random generators'
states and the training history.

Writing goes to a temporary file in the same folder, is flushed and fsynced, then renamed over
the target — so a crash or a kill at any moment leaves either the old checkpoint or the new one,
never a torn file. Reading verifies the version, shapes, dtypes and checksum and raises
:class:`CheckpointError` (a ValueError) naming what is wrong.
"""
import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT_VERSION = 1
__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "FORMAT_VERSION"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, corrupted, or of another format."""


def _flatten(prefix, tree, arrays):
    """Arrays of a nested dict into ``arrays`` under 'a/b/c' names; returns the JSON-able rest."""
    rest = {}
    for key, value in tree.items():
        if "/" in str(key):
            raise ValueError(f"checkpoint keys may not contain '/': {key!r}")
        name = f"{prefix}/{key}"
        if isinstance(value, np.ndarray):
            arrays[name] = value
        elif isinstance(value, dict):
            rest[key] = _flatten(name, value, arrays)
        else:
            rest[key] = value
    return rest


def _unflatten(prefix, rest, arrays):
    tree = {}
    for key, value in rest.items():
        tree[key] = _unflatten(f"{prefix}/{key}", value, arrays) if isinstance(value, dict) else value
    start = prefix + "/"
    for name, arr in arrays.items():
        if name.startswith(start) and "/" not in name[len(start):]:
            tree[name[len(start):]] = arr
    return tree


def _checksum(arrays):
    digest = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def save_checkpoint(path, payload):
    """Write ``payload`` — a dict of nested dicts of arrays and JSON-able values — atomically."""
    arrays = {}
    rest = _flatten("", payload, arrays)
    meta = {
        "format_version": FORMAT_VERSION,
        "arrays": {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()},
        "sha256": _checksum(arrays),
        "payload": rest,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **{name.lstrip("/"): a for name, a in arrays.items()},
             **{"meta.json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def load_checkpoint(path):
    """Read and verify a checkpoint written by :func:`save_checkpoint`; returns its payload."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupted): "
                              f"{exc}") from exc
    if "meta.json" not in files:
        raise CheckpointError(f"{path} has no meta.json: not an rnnreg checkpoint")
    try:
        meta = json.loads(files.pop("meta.json").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: meta.json is corrupted ({exc})") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {meta.get('format_version')!r}; this "
                              f"rnnreg reads version {FORMAT_VERSION}")
    arrays = {"/" + name: arr for name, arr in files.items()}
    expected = meta["arrays"]
    if set(arrays) != set(expected):
        raise CheckpointError(f"{path}: the arrays stored differ from those listed in meta.json")
    for name, spec in expected.items():
        arr = arrays[name]
        if list(arr.shape) != spec["shape"] or arr.dtype.str != spec["dtype"]:
            raise CheckpointError(f"{path}: {name} has shape {arr.shape} and dtype {arr.dtype}, "
                                  f"expected {tuple(spec['shape'])} and {spec['dtype']}")
    if _checksum(arrays) != meta["sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch, the array data is corrupted")
    return _unflatten("", meta["payload"], arrays)
