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
import stat
import tempfile
import tokenize
import zipfile
import zlib
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import numpy as np

if TYPE_CHECKING:
    from .model import RegularizedLSTM

FORMAT_VERSION = 1
# The process's umask (read once: os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "read_meta",
    "FORMAT_VERSION",
    "save_model",
    "load_model",
]


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
        if name.startswith(start) and "/" not in name[len(start) :]:
            tree[name[len(start) :]] = arr
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
    arrays: dict[str, np.ndarray] = {}
    rest = _flatten("", payload, arrays)
    meta = {
        "format_version": FORMAT_VERSION,
        "arrays": {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()},
        "sha256": _checksum(arrays),
        "payload": rest,
    }
    buffer = io.BytesIO()
    members: dict[str, Any] = {name.lstrip("/"): np.ascontiguousarray(a) for name, a in arrays.items()}
    members["meta.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buffer, **members)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        # mkstemp makes the file 0600; give it the mode any other file gets (0644 under the
        # usual umask of 022), as np.save or open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
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
ALLOWED_DTYPES = frozenset(
    np.dtype(t).str
    for t in (np.float32, np.float64, np.int32, np.int64, np.uint32, np.uint64, np.uint8, np.bool_)
)
MAX_META_BYTES = 16 << 20  # meta.json: shapes, scalars, RNG states, history
MAX_NPY_HEADER = 65536 + 16  # the largest header of a .npy member (format 1.0) we accept
MAX_MEMBERS = 100_000
# Deflate cannot compress better than about 1032:1, so members that claim more than this many
# bytes per byte of the file are lying: refused before anything is decompressed.
MAX_EXPANSION = 1100
# What rnnreg's files are read with: a failure of any of these is a CheckpointError, one line.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    ValueError,
    EOFError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    SyntaxError,  # NumPy parses a .npy header as Python: a broken one is a tokenize.TokenError
    tokenize.TokenError,  # (an Exception of its own, not a ValueError) or a SyntaxError
)


def _fail(path, message):
    return CheckpointError(f"{path}: {message}")


def _check_meta(path, meta):
    """Raise CheckpointError naming the first field of meta.json that is not as written by
    save_checkpoint."""
    if not isinstance(meta, dict):
        raise _fail(path, f"meta.json must hold an object, got {type(meta).__name__}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version!r}; this rnnreg reads version {FORMAT_VERSION}"
        )
    for field, kind in (("arrays", dict), ("sha256", str), ("payload", dict)):
        if not isinstance(meta.get(field), kind):
            raise _fail(
                path,
                f"meta.json field {field!r} must be a {kind.__name__}, got {type(meta.get(field)).__name__}",
            )
    if len(meta["sha256"]) != 64 or any(ch not in "0123456789abcdef" for ch in meta["sha256"]):
        raise _fail(path, "meta.json field 'sha256' is not a SHA-256 hex digest")
    for name, spec in meta["arrays"].items():
        where = f"meta.json field 'arrays'[{name!r}]"
        if not (
            name.startswith("/") and all(part and part not in (".", "..") for part in name[1:].split("/"))
        ):
            raise _fail(path, f"{where}: not an array name save_checkpoint writes")
        if not isinstance(spec, dict) or set(spec) != {"shape", "dtype"}:
            raise _fail(path, f"{where} must be {{'shape': [...], 'dtype': '...'}}")
        shape = spec["shape"]
        if not (
            isinstance(shape, list)
            and len(shape) <= 32
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**62 for n in shape)
        ):
            raise _fail(path, f"{where}['shape'] must be a list of sizes, got {shape!r}")
        if spec["dtype"] not in ALLOWED_DTYPES:
            raise _fail(
                path,
                f"{where}['dtype'] {spec['dtype']!r} is not one of the plain "
                f"native-order types a checkpoint holds {sorted(ALLOWED_DTYPES)}",
            )


def _nbytes(spec):
    return math.prod(spec["shape"]) * np.dtype(spec["dtype"]).itemsize


def _read_member(path, archive, info, spec):
    """The array stored in member ``info``, which must be exactly what ``spec`` declares; its
    declared size is checked before anything is decompressed, and no more than that is read."""
    nbytes = _nbytes(spec)
    if not nbytes <= info.file_size <= nbytes + MAX_NPY_HEADER:
        raise _fail(
            path,
            f"{info.filename} declares {info.file_size} bytes but meta.json "
            f"implies {nbytes} (+ header): refused before decompressing",
        )
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise _fail(path, f"{info.filename} has .npy format {version}")
        if shape != tuple(spec["shape"]) or dtype.str != spec["dtype"] or fortran_order:
            raise _fail(
                path,
                f"{info.filename} holds {dtype.str} {shape}"
                f"{' (Fortran order)' if fortran_order else ''}, meta.json "
                f"declares {spec['dtype']} {tuple(spec['shape'])}",
            )
        data = stream.read(nbytes)
    if len(data) != nbytes:
        raise _fail(path, f"{info.filename} is truncated")
    return np.frombuffer(bytearray(data), dtype).reshape(shape)


def read_meta(path):
    """The checked meta.json of a checkpoint (format version, array names, shapes and dtypes,
    the payload's JSON part), read without decompressing any array."""
    with _open(path) as archive:
        try:
            return _meta(path, archive)[0]
        except _READ_ERRORS as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(
                f"{path} is not a readable checkpoint (truncated or corrupted): {exc}"
            ) from exc


def _open(path):
    """The file as a zip archive: only a regular file (a folder, a pipe or a device such as
    /dev/zero is refused before anything is read), and only a zip archive (a JSON file, a file
    of another program: said as such, not as a damaged checkpoint)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc}") from exc
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"{path} is a folder, not a model file or checkpoint (.npz)")
    if not stat.S_ISREG(mode):
        raise CheckpointError(
            f"{path} is not a regular file (a pipe, device or socket), not a model file or checkpoint"
        )
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc}") from exc
    if head[:2] != b"PK":
        what = "a JSON file" if head[:1] in (b"{", b"[") else "not a zip archive"
        raise CheckpointError(
            f"{path} is not an rnnreg model file or checkpoint ({what}; rnnreg writes .npz archives)"
        )
    try:
        return zipfile.ZipFile(path)
    except _READ_ERRORS as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupted): {exc}") from exc


def _meta(path, archive):
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _fail(path, f"{len(infos)} members, more than a checkpoint holds")
    declared = sum(info.file_size for info in infos)
    if declared > MAX_EXPANSION * max(os.path.getsize(path), 1) + MAX_META_BYTES:
        raise _fail(
            path,
            f"its members claim {declared} bytes, more than a file of "
            f"{os.path.getsize(path)} bytes can hold: refused before decompressing",
        )
    members = {info.filename: info for info in infos}
    info = members.pop("meta.json.npy", None)
    if info is None:
        raise CheckpointError(f"{path} has no meta.json: not an rnnreg checkpoint")
    if info.file_size > MAX_META_BYTES + MAX_NPY_HEADER:
        raise _fail(
            path,
            f"meta.json declares {info.file_size} bytes, more than "
            f"{MAX_META_BYTES}: refused before decompressing",
        )
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
    stored = {"/" + name[: -len(".npy")] for name in members if name.endswith(".npy")}
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
            arrays = {
                name: _read_member(path, archive, members[name[1:] + ".npy"], spec)
                for name, spec in meta["arrays"].items()
            }
        except _READ_ERRORS as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(
                f"{path} is not a readable checkpoint (truncated or corrupted): {exc}"
            ) from exc
    if _checksum(arrays) != meta["sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch, the array data is corrupted")
    try:
        return _unflatten("", meta["payload"], arrays)
    except RecursionError as exc:
        raise _fail(path, "meta.json's payload is nested too deeply") from exc


# ----------------------------------------------------------------------------- rnnreg's files
# The two files rnnreg writes in this format: a model file (save_model / load_model, here:
# weights, settings, vocabulary) and fit's training state (rnnreg.training_state: all of that
# plus the optimizer, the early-stopping monitor, the schedule, the random states and the
# history). Both are read as hostile input, checked against the model first.
def _vocabulary_list(model):
    vocabulary = getattr(model, "vocabulary", None)
    return None if vocabulary is None else vocabulary.to_list()


def _class_names_list(model):
    names = getattr(model, "class_names", None)
    return None if names is None else [str(name) for name in names]


def _checked_class_names(path, payload, model):
    """A classifier's class names from a file (None if none): one string per class."""
    names = payload.get("class_names")
    if names is None:
        return None
    config = model.model_config
    if (
        config.task != "classify"
        or not isinstance(names, list)
        or len(names) != config.output_size
        or not all(isinstance(name, str) and len(name) <= 1000 for name in names)
    ):
        raise CheckpointError(
            f"{path}: 'class_names' must list the {config.output_size} class names of a classifier"
        )
    return tuple(names)


def _standardizer_dict(model):
    standardizer = getattr(model, "standardizer", None)
    return None if standardizer is None else standardizer.to_dict()


def _checked_standardizer(path, payload, model):
    """The input standardization a file holds (None if none), checked against the model."""
    from .sequences import Standardizer

    saved = payload.get("standardizer")
    if saved is None:
        return None
    if model.model_config.tokens or not isinstance(saved, dict) or set(saved) != {"mean", "scale"}:
        raise CheckpointError(
            f"{path}: 'standardizer' must be {{'mean': [...], 'scale': [...]}}, of a model "
            "of real-valued inputs"
        )
    try:
        return Standardizer.checked(saved["mean"], saved["scale"], model.model_config.input_size)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: 'standardizer': {exc}") from exc


def _checked_vocabulary(path, payload, model):
    """The vocabulary a checkpoint or model file holds (None if none), checked: a list of single
    characters, unknown symbol first, as many as the model has input ids."""
    from .data import Vocabulary

    chars = payload.get("vocabulary")
    if chars is None:
        return None
    try:
        vocabulary = Vocabulary(chars) if isinstance(chars, list) else None
    except ValueError as exc:
        raise CheckpointError(f"{path}: 'vocabulary' {exc}") from exc
    if vocabulary is None or len(vocabulary) != model.vocab_size:
        raise CheckpointError(f"{path}: 'vocabulary' must list the model's {model.vocab_size} input symbols")
    return vocabulary


def save_model(model: "RegularizedLSTM", path: Union[str, "os.PathLike[str]"]) -> str:
    """Write ``model`` for later use — weights, constructor settings and vocabulary, no optimizer
    state — atomically, in the checkpoint format (read it with :func:`load_model`).

    Parameters
    ----------
    model : RegularizedLSTM
    path : str or os.PathLike
        The file to write (``.npz``).

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> import os, tempfile
    >>> from rnnreg import RegularizedLSTM, load_model, save_model
    >>> model = RegularizedLSTM(10, 8, seed=0)
    >>> path = save_model(model, os.path.join(tempfile.mkdtemp(), "model.npz"))
    >>> load_model(path).config() == model.config()
    True
    """
    return save_checkpoint(
        path,
        {
            "model_config": model.config(),
            "model": model.state_dict(),
            "vocabulary": _vocabulary_list(model),
            "standardizer": _standardizer_dict(model),
            "class_names": _class_names_list(model),
        },
    )


def _expect_model_arrays(path, model):
    """A check of a checkpoint's meta.json, before any array is read: every array must be one
    of the model's parameters, its optimizer state or a best-weights snapshot, with exactly the
    parameter's shape and dtype (so nothing larger than the model is ever decompressed)."""
    specs = {name: {"shape": list(p.shape), "dtype": p.dtype.str} for name, p in model.params.items()}

    def expect(meta):
        for name, spec in meta["arrays"].items():
            parts = name.strip("/").split("/")
            param = parts[-1]
            known = (
                parts[0] == "model"
                and len(parts) == 2
                or parts[:2] == ["optimizer", "state"]
                and len(parts) == 4
                or parts[:2] == ["monitor", "best_weights"]
                and len(parts) == 3
            )
            if not known or param not in specs:
                raise CheckpointError(
                    f"{path}: array {name} is not a parameter of this model "
                    "(nor its optimizer or early-stopping state)"
                )
            if spec != specs[param]:
                raise CheckpointError(
                    f"{path}: {name} has shape {tuple(spec['shape'])} and "
                    f"dtype {spec['dtype']}; the model's {param} has "
                    f"{tuple(specs[param]['shape'])} and {specs[param]['dtype']}"
                )

    return expect


def _check_declared_model(path, config, meta):
    """Before a model is built from a file's model_config: the weights it declares must be
    exactly those of that config, so a small file cannot make load_model build (allocate) a
    model larger than the arrays the file really holds."""
    from .model import config_parameter_shapes

    try:
        shapes = config_parameter_shapes(config)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: model_config does not describe a model ({exc})") from exc
    declared = {
        name[len("/model/") :]: tuple(spec["shape"])
        for name, spec in meta["arrays"].items()
        if name.startswith("/model/")
    }
    if declared != shapes:
        differ = sorted(set(declared) ^ set(shapes)) or sorted(
            name for name in shapes if declared[name] != shapes[name]
        )
        raise CheckpointError(
            f"{path}: its weights are not those of the model its "
            f"model_config describes (differ: {differ[:5]})"
        )


class TrainFiles(NamedTuple):
    """The files ``rnnreg train --out FOLDER`` writes, by role: named here once, and read by
    :func:`load_model` and ``rnnreg sample`` (given the folder), ``--resume`` and the Ctrl-C
    message. ``TRAIN_FILES.paths(folder)`` gives them in a folder."""

    best: str = "best.npz"
    model: str = "model.npz"
    checkpoint: str = "train.checkpoint.npz"
    history: str = "history.json"
    curves: str = "learning_curves.png"

    def paths(self, folder):
        return TrainFiles(*(os.path.join(folder, name) for name in self))


TRAIN_FILES = TrainFiles()


def model_file(path):
    """A model file, or a run folder's (of ``rnnreg train``): its best.npz, else its model.npz,
    else its checkpoint."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return path
    files = TRAIN_FILES.paths(path)
    for name in (files.best, files.model, files.checkpoint):
        if os.path.isfile(name):
            return name
    raise CheckpointError(
        f"{path} is a folder without a model file ({TRAIN_FILES.best}, {TRAIN_FILES.model} or "
        f"{TRAIN_FILES.checkpoint}): give a run folder of rnnreg train, or a file"
    )


def load_model(path: Union[str, "os.PathLike[str]"]) -> "RegularizedLSTM":
    """A RegularizedLSTM (or RegularizedGRU, as the file's ``cell`` says) from a file of
    :func:`save_model` or a checkpoint of :func:`fit` — or from a run folder of ``rnnreg train``
    (its best model: best.npz, else model.npz, else its checkpoint): its weights and, when
    saved, its vocabulary. The file is untrusted input: the model's settings are read and checked first,
    and no array larger than that model's is decompressed (nothing is unpickled).

    Parameters
    ----------
    path : str or os.PathLike
        A file, or a run folder.

    Returns
    -------
    RegularizedLSTM

    Raises
    ------
    rnnreg.checkpoint.CheckpointError
        Naming what in the file is missing, malformed or does not fit.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from rnnreg import RegularizedLSTM, load_model, save_model
    >>> model = RegularizedLSTM(10, 8, seed=0)
    >>> path = save_model(model, os.path.join(tempfile.mkdtemp(), "model.npz"))
    >>> tokens = np.arange(5)
    >>> bool(np.array_equal(load_model(path).logits(tokens)[0], model.logits(tokens)[0]))
    True
    """
    from .model import build_model

    path = model_file(path)
    meta = read_meta(path)
    config = meta["payload"].get("model_config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: no model_config: not a checkpoint written by fit")
    _check_declared_model(path, config, meta)
    try:
        model = build_model(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: model_config does not describe a model ({exc})") from exc
    payload = load_checkpoint(path, expect=_expect_model_arrays(path, model))
    weights = payload.get("model")
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: no model weights")
    try:
        model.load_state_dict(weights)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    model.vocabulary = _checked_vocabulary(path, payload, model)
    model.standardizer = _checked_standardizer(path, payload, model)
    model.class_names = _checked_class_names(path, payload, model)
    return model
