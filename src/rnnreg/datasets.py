"""Sequence data from files, and real benchmark data shipped by a package (never downloaded).

* :func:`load_ts`: the UCR/UEA archive's ``.ts`` format (univariate or multivariate, equal or
  variable lengths, class labels or regression targets);
* :func:`load_npz`: a NumPy ``.npz`` file holding ``X`` (and ``y``), read without unpickling;
* :func:`load_csv`: a table of numbers with a header row, one column per feature: a series;
* :func:`windows`: a series cut into (lookback, horizon) pairs, split in time so that no
  validation or test target lies in the training span;
* :func:`japanese_vowels` and :func:`airline`: two real data sets from the ``aeon`` package's
  wheel (``pip install "rnnreg[data]"``), read from its files with the loaders above.

Every file is hostile input: its header and each value are checked, and an error names the
file, the line and what is wrong.
"""

import csv
import importlib.util
import math
import os

import numpy as np

__all__ = ["load_ts", "load_npz", "load_csv", "windows", "japanese_vowels", "airline", "DataFileError"]

#: The largest file the loaders read (a guard against a wrong path, not a limit of the format).
MAX_FILE_BYTES = 1 << 30


class DataFileError(ValueError):
    """A data file that cannot be read as its format: says which file, which line, what."""


def _text(path):
    size = os.stat(path).st_size
    if size > MAX_FILE_BYTES:
        raise DataFileError(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} a data file may have")
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            return f.read()
        except UnicodeDecodeError as exc:
            raise DataFileError(f"{path}: not UTF-8 text ({exc})") from exc


def _number(text, path, line):
    try:
        value = float(text)
    except ValueError:
        raise DataFileError(f"{path}, line {line}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataFileError(
            f"{path}, line {line}: {text!r} is not a finite number (missing values are refused)"
        )
    return value


def load_ts(path):
    """Read a ``.ts`` file of the UCR/UEA archive.

    Returns
    -------
    X : list of ndarray (T_i, D) float64
        One array per case: its steps by its dimensions.
    y : ndarray
        Class ids (int64) in the order of the header's ``@classLabel`` names, or the
        regression targets (float64) of ``@targetLabel true``; None when the file has neither.
    class_names : tuple of str
        The ``@classLabel`` names (empty for regression).

    Examples
    --------
    >>> import os, tempfile
    >>> from rnnreg.datasets import load_ts
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.ts")
    >>> _ = open(path, "w").write("@problemName tiny\\n@univariate false\\n@dimensions 2\\n"
    ...     "@equalLength false\\n@classLabel true a b\\n@data\\n1,2,3:4,5,6:b\\n7,8:9,10:a\\n")
    >>> X, y, names = load_ts(path)
    >>> [x.shape for x in X], y.tolist(), names
    ([(3, 2), (2, 2)], [1, 0], ('a', 'b'))
    """
    path = os.fspath(path)
    header, class_names, regression, dimensions = {}, (), False, None
    X, labels = [], []
    in_data = False
    for number, raw in enumerate(_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataFileError(
                    f"{path}, line {number}: expected a header line (@...), got {line[:40]!r}"
                )
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                in_data = True
                continue
            header[key] = value.strip()
            if key == "classlabel":
                words = value.split()
                if words and words[0].lower() == "true":
                    class_names = tuple(words[1:])
                    if not class_names or len(set(class_names)) != len(class_names):
                        raise DataFileError(
                            f"{path}, line {number}: @classLabel true needs distinct class names"
                        )
            elif key == "targetlabel":
                regression = value.strip().lower() == "true"
            elif key == "dimensions":
                try:
                    dimensions = int(value)
                except ValueError:
                    raise DataFileError(
                        f"{path}, line {number}: @dimensions {value!r} is not a number"
                    ) from None
                if dimensions < 1:
                    raise DataFileError(f"{path}, line {number}: @dimensions must be >= 1")
            continue
        fields = line.split(":")
        if class_names or regression:
            *dims, label = fields
        else:
            dims, label = fields, None
        if dimensions is None:
            dimensions = len(dims) if header.get("univariate", "true").lower() == "false" else 1
        if len(dims) != dimensions:
            raise DataFileError(
                f"{path}, line {number}: {len(dims)} dimensions, the header says {dimensions}"
            )
        series = [[_number(v, path, number) for v in dim.split(",")] for dim in dims]
        length = len(series[0])
        if length == 0 or any(len(dim) != length for dim in series):
            raise DataFileError(f"{path}, line {number}: the dimensions of a case must have one length >= 1")
        X.append(np.array(series, np.float64).T)
        if class_names:
            label = label.strip()
            if label not in class_names:
                raise DataFileError(f"{path}, line {number}: class {label!r} is not one of {class_names}")
            labels.append(class_names.index(label))
        elif regression:
            labels.append(_number(label, path, number))
    if not in_data or not X:
        raise DataFileError(f"{path}: no @data section with cases")
    y = None
    if class_names:
        y = np.array(labels, np.int64)
    elif regression:
        y = np.array(labels, np.float64)
    return X, y, class_names


def load_npz(path, x="X", y="y"):
    """``(X, y)`` from a NumPy ``.npz`` file (``y`` None when the file has none), read without
    unpickling: an object array is refused."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if x not in data:
                raise DataFileError(f"{path}: no array {x!r} (it holds {sorted(data.files)})")
            X = np.array(data[x])
            Y = np.array(data[y]) if y in data else None
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataFileError):
            raise
        raise DataFileError(f"{path}: not a readable .npz of plain arrays ({exc})") from exc
    return X, Y


def load_csv(path, columns=None):
    """A series from a CSV file with a header row: returns ``(values (T, D) float64, names)``,
    the chosen ``columns`` (names; default every column whose values are all numbers)."""
    path = os.fspath(path)
    rows = list(csv.reader(_text(path).splitlines()))
    if len(rows) < 2:
        raise DataFileError(f"{path}: a header row and at least one row of values are needed")
    names = [name.strip() for name in rows[0]]
    body = rows[1:]
    for number, row in enumerate(body, start=2):
        if len(row) != len(names):
            raise DataFileError(f"{path}, line {number}: {len(row)} fields, the header has {len(names)}")
    if columns is None:

        def numeric(k):
            try:
                return all(math.isfinite(float(row[k])) for row in body)
            except ValueError:
                return False

        columns = [name for k, name in enumerate(names) if numeric(k)]
        if not columns:
            raise DataFileError(f"{path}: no column holds only numbers")
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataFileError(f"{path}: no column {missing} (the header has {names})")
    index = [names.index(c) for c in columns]
    values = np.array([[_number(row[k], path, n) for k in index] for n, row in enumerate(body, start=2)])
    return values, tuple(columns)


def windows(series, lookback, horizon, *, target=None, val=0.2, test=0.2, relative=False):
    """Cut a series into ``(X, y)`` pairs of regression: X the ``lookback`` steps before a
    time, y the ``horizon`` values of the ``target`` columns (default all) that follow it
    (flattened: horizon * targets outputs). The time axis is split first — the first part for
    training, then validation, then test (fractions ``val`` and ``test``) — and a pair belongs to
    the part its targets lie in: no validation or test target is ever inside a training window's
    reach, and a window may look back into the earlier part (the past is known).

    With ``relative``, every window and its targets are the changes from the window's last
    value (a series with a trend becomes one a model can learn; a forecast is then the
    prediction plus that last value, and an error is the same in either form).

    Returns
    -------
    dict
        ``train``, ``val``, ``test``: each an ``(X (n, lookback, D), y (n, horizon * k))`` pair
        (val or test None when its fraction is 0).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg.datasets import windows
    >>> parts = windows(np.arange(20.0), lookback=4, horizon=2, val=0.25, test=0.25)
    >>> [None if p is None else p[0].shape for p in parts.values()]
    [(5, 4, 1), (4, 4, 1), (4, 4, 1)]
    >>> parts["val"][1][0].tolist(), parts["test"][1][0].tolist()   # targets start at 10 and 15
    ([10.0, 11.0], [15.0, 16.0])
    """
    arr = np.asarray(series, np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise ValueError("series must be a finite array (T,) or (T, D)")
    cols = list(range(arr.shape[1])) if target is None else list(np.atleast_1d(target))
    T = len(arr)
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val and test are fractions of the series adding to less than 1, got {val}, {test}")
    val_start = int(round(T * (1 - val - test)))
    test_start = int(round(T * (1 - test)))
    bounds = {"train": (lookback, val_start), "val": (val_start, test_start), "test": (test_start, T)}
    parts: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for name, (first, end) in bounds.items():
        # a pair at time t: inputs [t - lookback, t), targets [t, t + horizon), inside [first, end)
        times = np.arange(max(first, lookback), end - horizon + 1)
        if (name == "val" and val == 0) or (name == "test" and test == 0):
            parts[name] = None
            continue
        if len(times) == 0:
            raise ValueError(f"the {name} span is too short for lookback {lookback} and horizon {horizon}")
        X = np.stack([arr[t - lookback : t] for t in times])
        y = np.stack([arr[t : t + horizon][:, cols].reshape(-1) for t in times])
        if relative:
            last = X[:, -1:, :]
            y = y - np.tile(last[:, 0, cols], horizon)
            X = X - last
        parts[name] = (X, y)
    return parts


# ----------------------------------------------------------------------------- shipped data
def _aeon_file(*parts):
    """A data file inside the installed aeon package (found without importing aeon)."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "this data set ships with the aeon package: pip install 'rnnreg[data]' "
            "(nothing is downloaded at run time)"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not in this aeon release")
    return path


def japanese_vowels():
    """The UCI/UEA JapaneseVowels set: utterances of /ae/ by 9 speakers, 12 LPC cepstrum
    coefficients per step, 7 to 29 steps; classify the speaker. The archive's split: 270
    training and 370 test sequences.

    Returns
    -------
    (X_train, y_train), (X_test, y_test), class_names
        X: lists of (T_i, 12) arrays; y: class ids (int64).
    """
    train_X, train_y, names = load_ts(_aeon_file("JapaneseVowels", "JapaneseVowels_TRAIN.ts"))
    test_X, test_y, test_names = load_ts(_aeon_file("JapaneseVowels", "JapaneseVowels_TEST.ts"))
    if test_names != names:
        raise DataFileError("JapaneseVowels: the test file's classes differ from the training file's")
    return (train_X, train_y), (test_X, test_y), names


def airline():
    """Box and Jenkins's airline passengers: monthly totals (thousands), 1949 to 1960, 144 months
    — a series with a trend and a yearly season. Returns an array (144,)."""
    values, _ = load_csv(_aeon_file("Airline", "Airline.csv"), columns=["Passengers"])
    return values[:, 0]
