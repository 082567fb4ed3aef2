"""Checkpoints that are written atomically and checked when read.

A checkpoint is one ``.npz`` file: every array under a path-like name (``model/W0``,
``optimizer/m/W0``, ``monitor/best_weights/W0``), plus ``meta.json`` — a JSON document with the
format version, the model's constructor arguments, every array's shape and dtype, a SHA-256 of
all array bytes, the optimizer's and early-stopping monitor's scalars, the random generators'
states and the training history.

Writing goes to a temporary file in the same folder, is flushed and fsynced, then renamed over
the target — so a crash or a kill at any moment leaves either the old checkpoint or the new one,
never a torn file. Reading treats the file as hostile input: it checks meta.json field by field,
refuses any array larger than meta.json's shapes imply before decompressing it, lets the caller
check the shapes against its model before any array is read, verifies the checksum, and never
unpickles. Anything wrong raises :class:`CheckpointError` (a ValueError) naming what.
"""
import hashlib
import io
import json
import math
import os
import tempfile
import zipfile

import numpy as np

FORMAT_VERSION = 1
__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_meta",
           "FORMAT_VERSION"]


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
    np.savez(buffer, **{name.lstrip("/"): np.ascontiguousarray(a) for name, a in arrays.items()},
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


# What a checkpoint may hold: plain numbers in native byte order (no objects, so nothing to
# unpickle), and sizes within these limits.
ALLOWED_DTYPES = frozenset(np.dtype(t).str for t in (np.float32, np.float64, np.int32, np.int64,
                                                     np.uint32, np.uint64, np.uint8, np.bool_))
MAX_META_BYTES = 16 << 20       # meta.json: shapes, scalars, RNG states, history
MAX_NPY_HEADER = 65536 + 16     # the largest header of a .npy member (format 1.0) we accept
MAX_MEMBERS = 100_000


def _fail(path, message):
    return CheckpointError(f"{path}: {message}")


def _check_meta(path, meta):
    """Raise CheckpointError naming the first field of meta.json that is not as written by
    save_checkpoint."""
    if not isinstance(meta, dict):
        raise _fail(path, f"meta.json must hold an object, got {type(meta).__name__}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {version!r}; this rnnreg reads "
                              f"version {FORMAT_VERSION}")
    for field, kind in (("arrays", dict), ("sha256", str), ("payload", dict)):
        if not isinstance(meta.get(field), kind):
            raise _fail(path, f"meta.json field {field!r} must be a {kind.__name__}, got "
                              f"{type(meta.get(field)).__name__}")
    if len(meta["sha256"]) != 64 or any(ch not in "0123456789abcdef" for ch in meta["sha256"]):
        raise _fail(path, "meta.json field 'sha256' is not a SHA-256 hex digest")
    for name, spec in meta["arrays"].items():
        where = f"meta.json field 'arrays'[{name!r}]"
        if not (name.startswith("/") and all(part and part not in (".", "..")
                                             for part in name[1:].split("/"))):
            raise _fail(path, f"{where}: not an array name save_checkpoint writes")
        if not isinstance(spec, dict) or set(spec) != {"shape", "dtype"}:
            raise _fail(path, f"{where} must be {{'shape': [...], 'dtype': '...'}}")
        shape = spec["shape"]
        if not (isinstance(shape, list) and len(shape) <= 32 and all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**62 for n in shape)):
            raise _fail(path, f"{where}['shape'] must be a list of sizes, got {shape!r}")
        if spec["dtype"] not in ALLOWED_DTYPES:
            raise _fail(path, f"{where}['dtype'] {spec['dtype']!r} is not one of the plain "
                              f"native-order types a checkpoint holds {sorted(ALLOWED_DTYPES)}")


def _nbytes(spec):
    return math.prod(spec["shape"]) * np.dtype(spec["dtype"]).itemsize


def _read_member(path, archive, info, spec):
    """The array stored in member ``info``, which must be exactly what ``spec`` declares; its
    declared size is checked before anything is decompressed, and no more than that is read."""
    nbytes = _nbytes(spec)
    if not nbytes <= info.file_size <= nbytes + MAX_NPY_HEADER:
        raise _fail(path, f"{info.filename} declares {info.file_size} bytes but meta.json "
                          f"implies {nbytes} (+ header): refused before decompressing")
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise _fail(path, f"{info.filename} has .npy format {version}")
        if shape != tuple(spec["shape"]) or dtype.str != spec["dtype"] or fortran_order:
            raise _fail(path, f"{info.filename} holds {dtype.str} {shape}"
                              f"{' (Fortran order)' if fortran_order else ''}, meta.json "
                              f"declares {spec['dtype']} {tuple(spec['shape'])}")
        data = stream.read(nbytes)
    if len(data) != nbytes:
        raise _fail(path, f"{info.filename} is truncated")
    return np.frombuffer(bytearray(data), dtype).reshape(shape)


def read_meta(path):
    """The checked meta.json of a checkpoint (format version, array names, shapes and dtypes,
    the payload's JSON part), read without decompressing any array."""
    with _open(path) as archive:
        return _meta(path, archive)[0]


def _open(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupted): "
                              f"{exc}") from exc


def _meta(path, archive):
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _fail(path, f"{len(infos)} members, more than a checkpoint holds")
    members = {info.filename: info for info in infos}
    info = members.pop("meta.json.npy", None)
    if info is None:
        raise CheckpointError(f"{path} has no meta.json: not an rnnreg checkpoint")
    if info.file_size > MAX_META_BYTES + MAX_NPY_HEADER:
        raise _fail(path, f"meta.json declares {info.file_size} bytes, more than "
                          f"{MAX_META_BYTES}: refused before decompressing")
    with archive.open(info) as stream:
        np.lib.format.read_magic(stream)
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_META_BYTES:
            raise _fail(path, "meta.json is not stored as bytes")
        raw = stream.read(shape[0])
    try:
        meta = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: meta.json is corrupted ({exc})") from exc
    _check_meta(path, meta)
    stored = {"/" + name[:-len(".npy")] for name in members if name.endswith(".npy")}
    if stored != set(meta["arrays"]) or len(stored) != len(members):
        raise _fail(path, "the arrays stored differ from those listed in meta.json")
    return meta, members


def load_checkpoint(path, expect=None):
    """Read and verify a checkpoint written by :func:`save_checkpoint`; returns its payload.

    A checkpoint may come from anyone: meta.json is checked field by field, every array's
    declared size is compared with the shape meta.json gives before it is decompressed, and
    ``expect`` (optional) is called with the checked meta.json before any array is read, to
    refuse a checkpoint whose arrays do not fit what the caller will do with them (it raises
    CheckpointError). Then the arrays' checksum is verified. Nothing is unpickled.
    """
    with _open(path) as archive:
        try:
            meta, members = _meta(path, archive)
            if expect is not None:
                expect(meta)
            arrays = {name: _read_member(path, archive, members[name[1:] + ".npy"], spec)
                      for name, spec in meta["arrays"].items()}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{path} is not a readable checkpoint (truncated or "
                                  f"corrupted): {exc}") from exc
    if _checksum(arrays) != meta["sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch, the array data is corrupted")
    try:
        return _unflatten("", meta["payload"], arrays)
    except RecursionError as exc:
        raise _fail(path, "meta.json's payload is nested too deeply") from exc
