"""Data: the notebook's synthetic sequences (a rule a model can learn), and text — a
:class:`Vocabulary` of characters, a :class:`CharCorpus` with fixed train / validation / test
splits (from a text, files, folders or documents), and the built-in corpus of the standard
library's docstrings (:func:`load_stdlib_docstrings`)."""

import copy
import fnmatch
import os
import stat
import sys
import warnings
from collections.abc import Sequence
from typing import Union

import numpy as np
from numpy.typing import NDArray

from . import _validation as v

__all__ = ["generate_simple_dataset", "Vocabulary", "CharCorpus", "load_stdlib_docstrings"]


def generate_simple_dataset(
    seq_length: int,
    vocab_size: int,
    num_samples: int,
    seed: None | int | np.random.Generator = None,
    noise: float = 0.05,
    steps: Sequence[int] = (1, 2, 3),
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Synthetic next-token sequences: counting in strides, with occasional jumps.

    Each sequence starts at a random token and repeatedly adds its own stride (drawn from
    ``steps``) modulo ``vocab_size``. With probability ``noise`` a token is replaced by a random
    one, and counting continues from there. A model that reads two tokens can infer the stride
    and predict the rest, so the task is learnable; the random jumps are unpredictable noise that a
    large model can memorize on a small training set — so it can also overfit.

    Parameters
    ----------
    seq_length : int >= 1
    vocab_size : int >= 2
    num_samples : int >= 1
    seed : int, np.random.Generator or None
        None draws fresh entropy (two calls give different data, as the notebook expects for
        its training and validation sets); pass seeds for reproducible data.
    noise : float in [0, 1]
    steps : sequence of int

    Returns
    -------
    inputs : int64 array of shape (num_samples, seq_length)
    targets : int64 array of shape (num_samples, seq_length)
        ``targets[:, t]`` is the token that follows ``inputs[:, t]``.

    Examples
    --------
    >>> from rnnreg import generate_simple_dataset
    >>> inputs, targets = generate_simple_dataset(6, 20, 3, seed=0, noise=0.0)
    >>> inputs.shape, bool((inputs[:, 1:] == targets[:, :-1]).all())
    ((3, 6), True)
    """
    seq_length = v.positive_int(seq_length, "seq_length")
    vocab_size = v.positive_int(vocab_size, "vocab_size", minimum=2)
    num_samples = v.positive_int(num_samples, "num_samples")
    noise = v.probability(noise, "noise", low_inclusive=True)
    strides = np.asarray(steps)
    if strides.ndim != 1 or strides.size == 0 or strides.dtype.kind not in "iu":
        raise TypeError(f"steps must be a non-empty sequence of integers, got {strides!r}")
    rng = v.as_generator(seed, "seed")
    tokens = np.empty((num_samples, seq_length + 1), np.int64)
    tokens[:, 0] = rng.integers(0, vocab_size, num_samples)
    stride = rng.choice(strides, num_samples)
    for t in range(1, seq_length + 1):
        tokens[:, t] = (tokens[:, t - 1] + stride) % vocab_size
        jump = rng.random(num_samples) < noise
        tokens[jump, t] = rng.integers(0, vocab_size, int(jump.sum()))
    return tokens[:, :-1].copy(), tokens[:, 1:].copy()


# ----------------------------------------------------------------------------- real text
# Modules whose docstrings form the built-in corpus: English prose about programming, with some
# code, shipped with every CPython installation (so nothing is downloaded at run time).
STDLIB_MODULES = (
    "textwrap",
    "argparse",
    "difflib",
    "shutil",
    "pathlib",
    "fractions",
    "calendar",
    "heapq",
    "bisect",
    "functools",
    "contextlib",
    "dataclasses",
    "enum",
    "string",
    "statistics",
    "random",
    "glob",
    "fnmatch",
    "copy",
    "decimal",
    "_pydecimal",
    "collections/__init__",
    "typing",
    "inspect",
    "pydoc",
    "subprocess",
    "threading",
    "logging/__init__",
    "email/message",
    "http/client",
    "urllib/parse",
    "json/__init__",
    "csv",
    "tarfile",
    "unittest/case",
    "doctest",
    "pickle",
    "ftplib",
    "smtplib",
    "imaplib",
    "optparse",
    "gettext",
    "locale",
    "datetime",
    "tempfile",
    "configparser",
    "sched",
    "queue",
)
UNKNOWN = "\x00"  # vocabulary entry 0: a character the vocabulary does not hold
# Every Unicode code point, the unknown symbol's (U+0000) included: a longer list (from a file)
# must repeat a character, and is refused before it is looked at further.
MAX_VOCABULARY = sys.maxunicode + 1


class Vocabulary:
    """Characters <-> integer ids, with an explicit unknown symbol.

    Id 0 is the unknown symbol (``rnnreg.data.UNKNOWN``); every other id is one character. A
    character the vocabulary does not hold encodes to 0 — so does, when the vocabulary is built
    with ``min_count``, every character seen fewer times than that in the training text, *in
    training too*, so that the unknown symbol's weights are learned. It travels with the model:
    saved in checkpoints and model files (as a plain list of strings) and checked when read back.

    Parameters
    ----------
    chars : list of str
        The unknown symbol first, then one character per id, each once.

    Examples
    --------
    >>> from rnnreg import Vocabulary
    >>> vocab = Vocabulary.from_text("hello world", min_count=2)   # 'l' and 'o' occur twice or more
    >>> len(vocab), vocab.encode("hello")
    (3, array([0, 0, 1, 1, 2]))
    >>> vocab.decode(vocab.encode("lol?"))
    'lol\ufffd'
    """

    def __init__(self, chars):
        chars = list(chars)
        if not chars or chars[0] != UNKNOWN:
            raise ValueError("a vocabulary's first entry must be the unknown symbol '\\x00'")
        if len(chars) > MAX_VOCABULARY:
            raise ValueError(
                f"a vocabulary holds at most {MAX_VOCABULARY:,} characters (every Unicode code "
                f"point once), got {len(chars):,}"
            )
        if not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("a vocabulary is a list of single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("a vocabulary must not repeat a character")
        self.chars = chars
        self.index = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text, min_count=1):
        """The characters of ``text`` seen at least ``min_count`` times, sorted, after UNKNOWN."""
        from collections import Counter

        min_count = v.positive_int(min_count, "min_count")
        counts = Counter(text)
        counts.pop(UNKNOWN, None)
        return cls([UNKNOWN] + sorted(ch for ch, n in counts.items() if n >= min_count))

    def __len__(self):
        return len(self.chars)

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and other.chars == self.chars

    def __repr__(self):
        return f"Vocabulary({len(self)} symbols)"

    def encode(self, text):
        """int64 ids of the characters of ``text`` (0 for those the vocabulary lacks)."""
        index = self.index
        return np.fromiter((index.get(ch, 0) for ch in text), dtype=np.int64, count=len(text))

    def decode(self, ids, unknown="\ufffd"):
        """The text of ``ids``; the unknown symbol shows as ``unknown`` (U+FFFD by default)."""
        chars = self.chars
        ids = np.asarray(ids).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(chars)):
            raise IndexError(f"ids must be in [0, {len(chars)}), got {ids.min()}..{ids.max()}")
        return "".join(unknown if i == 0 else chars[i] for i in ids.tolist())

    def to_list(self):
        return list(self.chars)


class CharCorpus:
    """A character-level language-modelling corpus with fixed splits.

    Build one with :meth:`from_text` (one text, split by line), :meth:`from_files` (files, folders
    or globs; split by document when there are three files or more) or :meth:`from_documents`;
    :func:`rnnreg.fit` takes it whole (its splits, documents and vocabulary).

    Parameters
    ----------
    train_text, val_text, test_text : str
    name : str
        A label for logs.
    min_count : int >= 1
        Characters seen fewer times in the training text map to the unknown id 0.

    Attributes
    ----------
    train, val, test : int64 arrays of character ids (1-D token streams)
    vocabulary : Vocabulary built from the training split (characters seen fewer than
        ``min_count`` times there map to the unknown id 0, as do validation and test characters
        unseen in training)
    chars : list of str, ``vocabulary.chars``
    starts : dict split -> int64 array
        Where each document of a split begins (training and evaluation reset the LSTM state there).

    Examples
    --------
    >>> from rnnreg import CharCorpus
    >>> text = "\\n".join(f"line {k}: the quick brown fox" for k in range(20))
    >>> corpus = CharCorpus.from_text(text, name="foxes")
    >>> corpus.train.size, corpus.val.size > 0, corpus.test.size > 0
    (454, True, True)
    >>> corpus.decode(corpus.encode("the fox"))
    'the fox'
    """

    def __init__(self, train_text, val_text, test_text, name="corpus", min_count=1):
        self.name = name
        self.vocabulary = Vocabulary.from_text(train_text, min_count)
        self.chars, self.index = self.vocabulary.chars, self.vocabulary.index
        self.train, self.val, self.test = (self.encode(t) for t in (train_text, val_text, test_text))
        # Where each document starts in each split's stream: evaluation starts every document
        # from a zero state (one text given as such is one document).
        self.starts = {split: np.zeros(1, np.int64) for split in ("train", "val", "test")}

    @classmethod
    def from_documents(
        cls,
        train_docs,
        val_docs,
        test_docs,
        name="corpus",
        min_count=1,
        separator="\n\n",
        max_chars=(None, None, None),
    ):
        """A corpus whose splits are lists of documents, joined by ``separator``; each split
        remembers where its documents start (and keeps only its first ``max_chars`` characters
        when given)."""
        texts, starts = [], []
        for docs, limit in zip((train_docs, val_docs, test_docs), max_chars):
            offsets = np.cumsum([0] + [len(d) + len(separator) for d in docs[:-1]])
            text = separator.join(docs)
            if limit is not None:
                text = text[:limit]
                offsets = offsets[offsets < max(1, len(text))]
            texts.append(text)
            starts.append(np.asarray(offsets, np.int64))
        corpus = cls(texts[0], texts[1], texts[2], name=name, min_count=min_count)
        corpus.starts = dict(zip(("train", "val", "test"), starts))
        return corpus

    @property
    def vocab_size(self):
        return len(self.vocabulary)

    def encode(self, text):
        return self.vocabulary.encode(text)

    def decode(self, ids):
        """The text of ``ids``, the unknown symbol as itself (UNKNOWN)."""
        return self.vocabulary.decode(ids, unknown=UNKNOWN)

    def __repr__(self):
        return (
            f"CharCorpus({self.name!r}, vocab={self.vocab_size}, train={self.train.size}, "
            f"val={self.val.size}, test={self.test.size} characters)"
        )

    split = "given"  # how the text was split into train / validation / test (for the log)

    def limited(self, train_chars: int | None = None, eval_chars: int | None = None) -> "CharCorpus":
        """This corpus cut to its first ``train_chars`` training characters and ``eval_chars``
        validation and test characters each (None keeps a split whole); the vocabulary stays.

        Examples
        --------
        >>> from rnnreg import CharCorpus
        >>> corpus = CharCorpus("abcdefgh", "abcd", "dcba").limited(5, 2)
        >>> corpus.train.size, corpus.val.size, corpus.test.size, corpus.vocab_size
        (5, 2, 2, 9)
        """
        out = copy.copy(self)
        out.starts = dict(self.starts)
        for split, limit in (("train", train_chars), ("val", eval_chars), ("test", eval_chars)):
            if limit is None:
                continue
            limit = v.positive_int(limit, f"{split} size")
            setattr(out, split, getattr(self, split)[:limit])
            starts = self.starts[split]
            out.starts[split] = starts[starts < max(1, limit)]
        return out

    @classmethod
    def from_text(
        cls,
        text: str,
        name: str = "text",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        min_count: int = 1,
    ) -> "CharCorpus":
        """A corpus from one text: its lines split in order — the first ``1 - val_fraction -
        test_fraction`` to training, the next ``val_fraction`` to validation, the rest to test."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        val_fraction, test_fraction = _fractions(val_fraction, test_fraction)
        lines = text.splitlines(keepends=True)
        if len(lines) < 3:
            raise ValueError(
                f"{name}: needs at least 3 lines to split into train, validation and test, got {len(lines)}"
            )
        a = min(len(lines) - 2, max(1, round(len(lines) * (1 - val_fraction - test_fraction))))
        b = min(len(lines) - 1, max(a + 1, round(len(lines) * (1 - test_fraction))))
        corpus = cls(
            "".join(lines[:a]), "".join(lines[a:b]), "".join(lines[b:]), name=name, min_count=min_count
        )
        corpus.split = (
            f"by line within one text: lines 1-{a} train, {a + 1}-{b} validation, {b + 1}-{len(lines)} test"
        )
        return corpus

    @classmethod
    def from_files(
        cls,
        paths: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]],
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        min_count: int = 1,
        name: str | None = None,
    ) -> "CharCorpus":
        """A corpus from text files: ``paths`` are files, folders (every ``*.txt`` inside, at
        any depth, sorted) or glob patterns; each file must be UTF-8 (the error names the file
        and the byte offset). With three files or more, documents stay whole: a random
        ``val_fraction`` / ``test_fraction`` of the files (at least one each, fixed by ``seed``)
        are held out. With fewer, their text is split by line (:meth:`from_text`)."""
        files = _expand_paths([paths] if isinstance(paths, (str, os.PathLike)) else paths)
        docs = [_read_utf8(f) for f in files]
        empty = [f for f, doc in zip(files, docs) if not doc]
        if len(empty) == len(files):
            raise ValueError(
                f"no text to train on: {_some_names(empty)} {'is' if len(empty) == 1 else 'are'} empty"
            )
        if empty:  # an empty document has nothing to learn or test: left out, and said so
            files, docs = [f for f, doc in zip(files, docs) if doc], [doc for doc in docs if doc]
        one_path = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        label = name or (
            os.path.basename(os.path.normpath(str(one_path[0])))
            if len(one_path) == 1
            else f"{len(files)} files"
        )
        if len(docs) < 3:
            return cls.from_text("\n\n".join(docs), label, val_fraction, test_fraction, min_count)
        val_fraction, test_fraction = _fractions(val_fraction, test_fraction)
        order = v.as_generator(seed, "seed").permutation(len(docs))
        n_val = max(1, round(val_fraction * len(docs)))
        n_test = max(1, round(test_fraction * len(docs)))
        n_val = min(n_val, len(docs) - 2)
        n_test = min(n_test, len(docs) - 1 - n_val)
        held_val, held_test = sorted(order[:n_val]), sorted(order[n_val : n_val + n_test])
        train_ids = sorted(order[n_val + n_test :])
        corpus = cls.from_documents(
            [docs[k] for k in train_ids],
            [docs[k] for k in held_val],
            [docs[k] for k in held_test],
            name=label,
            min_count=min_count,
        )
        corpus.split = (
            f"by document (seed {seed}): {len(train_ids)} files train, {n_val} "
            f"validation ({_some_names([files[k] for k in held_val])}), "
            f"{n_test} test ({_some_names([files[k] for k in held_test])})"
            + (f"; {len(empty)} empty files left out" if empty else "")
        )
        _warn_if_held_out_is_small(corpus, {"validation": n_val, "test": n_test}, len(docs))
        return corpus


#: A held-out split smaller than this many characters, or than half of its share of the text,
#: gets a warning: its loss says little (one short file of a folder split by document).
SMALL_SPLIT_CHARS = 5_000


def _warn_if_held_out_is_small(corpus, files, total_files):
    """Warn when the validation or test split of a by-document split is small: few characters,
    or far below its share of the files (whole files are held out, and a short one can be the
    only one)."""
    sizes = {"validation": corpus.val.size, "test": corpus.test.size}
    total = corpus.train.size + sum(sizes.values())
    for split, size in sizes.items():
        share = files[split] / total_files
        if size < SMALL_SPLIT_CHARS or size < 0.5 * share * total:
            warnings.warn(
                f"the {split} split is {files[split]} of {total_files} files but {size:,} characters "
                f"({size / total:.1%} of the text): its loss will say little; give more or longer "
                "files, or the text as one file (split by line)",
                UserWarning,
                stacklevel=3,
            )


def _some_names(paths, shown=3):
    """Base names of the first ``shown`` paths, then how many more: a line that stays a line
    for a folder of thousands of files."""
    names = ", ".join(os.path.basename(p) for p in paths[:shown])
    return names + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def _fractions(val_fraction, test_fraction):
    val_fraction = v.probability(val_fraction, "val_fraction")
    test_fraction = v.probability(test_fraction, "test_fraction")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must leave text to train on, got {val_fraction} + {test_fraction}"
        )
    return val_fraction, test_fraction


def _is_regular_file(path):
    """A regular file (or a link to one): not a folder, a named pipe, a device or a socket,
    which a reader would block on or read without end."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _text_files_below(folder, pattern="*.txt"):
    """Regular files below ``folder`` whose names (or, for a pattern with a folder part, whose
    paths) match ``pattern``, sorted. Linked folders are not entered, so a link loop (``ln -s .
    self``) can neither repeat files nor run without end."""
    found = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in names:
            path = os.path.join(root, name)
            if os.sep in pattern:  # "**/" matches no folder too, as in glob
                match = fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(
                    path, pattern.replace("**" + os.sep, "")
                )
            else:
                match = fnmatch.fnmatch(name, pattern)
            if match and _is_regular_file(path):
                found.append(path)
    return sorted(found)


def _expand_paths(paths):
    """Files named by paths: files as given, folders as every *.txt below them (sorted), glob
    patterns as what they match (sorted). Only regular files are read (a named pipe would block);
    linked folders are not entered, and a file reached twice (through a symbolic or a hard link:
    the same device and inode) is read once.
    Raises naming a path that gives no file."""
    import glob

    files, seen = [], set()
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            found = _text_files_below(path)
        elif any(ch in path for ch in "*?["):
            if "**" in path:  # a recursive pattern: walked without entering linked folders
                base = path.split("**", 1)[0].rstrip("/" + os.sep) or os.curdir
                found = _text_files_below(base, path) if os.path.isdir(base) else []
            else:
                found = sorted(f for f in glob.glob(path) if _is_regular_file(f))
        elif os.path.exists(path):
            if not _is_regular_file(path):
                raise ValueError(
                    f"{path}: not a regular file (a folder, pipe, device or "
                    "socket); give text files or folders of them"
                )
            found = [path]
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
        if not found:
            raise FileNotFoundError(f"{path}: no text files there (a folder gives its *.txt files)")
        for f in found:
            info = os.stat(f)
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                files.append(f)
    return files


def _read_utf8(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8").replace(UNKNOWN, "")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}); convert it to UTF-8 first"
        ) from None


def load_stdlib_docstrings(train_chars=None, eval_chars=None):
    """The docstrings of a fixed list of standard-library modules (``rnnreg.data.STDLIB_MODULES``) as a
    character corpus — about 500,000 characters of English technical prose on CPython 3.11.

    Splits are fixed by document: of every 20 docstrings in order, the 19th goes to validation,
    the 20th to test and the rest to training. ``train_chars`` / ``eval_chars`` keep only the first
    that many characters of the training / each held-out split (for quick runs). The text comes
    from the running Python's own library, so it can differ slightly between Python versions.

    Parameters
    ----------
    train_chars : int, optional
        Keep the first this many characters of the training split.
    eval_chars : int, optional
        Keep the first this many characters of the validation and of the test split.

    Returns
    -------
    CharCorpus
        Its splits, where each docstring starts in them, and its vocabulary.

    Examples
    --------
    >>> from rnnreg import load_stdlib_docstrings
    >>> corpus = load_stdlib_docstrings(train_chars=5000, eval_chars=1000)
    >>> corpus.train.size, corpus.val.size, corpus.test.size
    (5000, 1000, 1000)
    """
    import ast
    import os
    import sysconfig

    library = sysconfig.get_paths()["stdlib"]
    docs = []
    for module in STDLIB_MODULES:
        path = os.path.join(library, module + ".py")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    docs.append(doc.replace(UNKNOWN, ""))
    if len(docs) < 20:
        raise RuntimeError(
            f"found only {len(docs)} docstrings under {library}: is the standard library's source installed?"
        )
    splits: dict[int, list[str]] = {0: [], 18: [], 19: []}
    for k, doc in enumerate(docs):
        splits[k % 20 if k % 20 in (18, 19) else 0].append(doc)
    limit = None if train_chars is None else v.positive_int(train_chars, "train_chars")
    held = None if eval_chars is None else v.positive_int(eval_chars, "eval_chars")
    return CharCorpus.from_documents(
        splits[0], splits[18], splits[19], name="stdlib-docstrings", max_chars=(limit, held, held)
    )
