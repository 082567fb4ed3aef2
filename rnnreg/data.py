"""Datasets: the notebook's synthetic sequences (a rule a model can learn)."""
import numpy as np

from . import _validation as v

__all__ = ["generate_simple_dataset"]


def generate_simple_dataset(seq_length, vocab_size, num_samples, seed=None, noise=0.05,
                            steps=(1, 2, 3)):
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
    """
    seq_length = v.positive_int(seq_length, "seq_length")
    vocab_size = v.positive_int(vocab_size, "vocab_size", minimum=2)
    num_samples = v.positive_int(num_samples, "num_samples")
    noise = v.probability(noise, "noise", low_inclusive=True)
    steps = np.asarray(steps)
    if steps.ndim != 1 or steps.size == 0 or steps.dtype.kind not in "iu":
        raise TypeError(f"steps must be a non-empty sequence of integers, got {steps!r}")
    rng = v.as_generator(seed, "seed")
    tokens = np.empty((num_samples, seq_length + 1), np.int64)
    tokens[:, 0] = rng.integers(0, vocab_size, num_samples)
    stride = rng.choice(steps, num_samples)
    for t in range(1, seq_length + 1):
        tokens[:, t] = (tokens[:, t - 1] + stride) % vocab_size
        jump = rng.random(num_samples) < noise
        tokens[jump, t] = rng.integers(0, vocab_size, int(jump.sum()))
    return tokens[:, :-1].copy(), tokens[:, 1:].copy()


# ----------------------------------------------------------------------------- real text
# Modules whose docstrings form the built-in corpus: English prose about programming, with some
# code, shipped with every CPython installation (so nothing is downloaded at run time).
STDLIB_MODULES = (
    "textwrap", "argparse", "difflib", "shutil", "pathlib", "fractions", "calendar", "heapq",
    "bisect", "functools", "contextlib", "dataclasses", "enum", "string", "statistics", "random",
    "glob", "fnmatch", "copy", "decimal", "_pydecimal", "collections/__init__", "typing", "inspect",
    "pydoc", "subprocess", "threading", "logging/__init__", "email/message", "http/client",
    "urllib/parse", "json/__init__", "csv", "tarfile", "unittest/case", "doctest", "pickle",
    "ftplib", "smtplib", "imaplib", "optparse", "gettext", "locale", "datetime", "tempfile",
    "configparser", "sched", "queue",
)
UNKNOWN = "\x00"  # vocabulary entry 0: a character the vocabulary does not hold
MAX_VOCABULARY = 1 << 20   # Unicode has fewer code points: a larger list from a file is refused


class Vocabulary:
    """Characters <-> integer ids, with an explicit unknown symbol.

    Id 0 is :data:`UNKNOWN`; every other id is one character. A character the vocabulary does not
    hold encodes to 0 — so does, when the vocabulary is built with ``min_count``, every character
    seen fewer times than that in the training text, *in training too*, so that the unknown
    symbol's weights are learned. It travels with the model: saved in checkpoints and model files
    (as a plain list of strings) and checked when read back.
    """

    def __init__(self, chars):
        chars = list(chars)
        if not chars or chars[0] != UNKNOWN:
            raise ValueError("a vocabulary's first entry must be the unknown symbol '\\x00'")
        if len(chars) > MAX_VOCABULARY or not all(isinstance(c, str) and len(c) == 1 for c in chars):
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

    Attributes
    ----------
    train, val, test : int64 arrays of character ids (1-D token streams)
    vocabulary : Vocabulary built from the training split (characters seen fewer than
        ``min_count`` times there map to the unknown id 0, as do validation and test characters
        unseen in training)
    chars : list of str, ``vocabulary.chars``
    """

    def __init__(self, train_text, val_text, test_text, name="corpus", min_count=1):
        self.name = name
        self.vocabulary = Vocabulary.from_text(train_text, min_count)
        self.chars, self.index = self.vocabulary.chars, self.vocabulary.index
        self.train, self.val, self.test = (self.encode(t) for t in (train_text, val_text, test_text))

    @property
    def vocab_size(self):
        return len(self.vocabulary)

    def encode(self, text):
        return self.vocabulary.encode(text)

    def decode(self, ids):
        return "".join(self.chars[i] for i in np.asarray(ids).ravel())

    def __repr__(self):
        return (f"CharCorpus({self.name!r}, vocab={self.vocab_size}, train={self.train.size}, "
                f"val={self.val.size}, test={self.test.size} characters)")


def load_stdlib_docstrings(train_chars=None, eval_chars=None):
    """The docstrings of a fixed list of standard-library modules (:data:`STDLIB_MODULES`) as a
    character corpus — about 500,000 characters of English technical prose on CPython 3.11.

    Splits are fixed by document: of every 20 docstrings in order, the 19th goes to validation,
    the 20th to test and the rest to training. ``train_chars`` / ``eval_chars`` keep only the first
    that many characters of the training / each held-out split (for quick runs). The text comes
    from the running Python's own library, so it can differ slightly between Python versions.
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
        raise RuntimeError(f"found only {len(docs)} docstrings under {library}: is the standard "
                           "library's source installed?")
    splits = {0: [], 18: [], 19: []}
    for k, doc in enumerate(docs):
        splits[k % 20 if k % 20 in (18, 19) else 0].append(doc)
    train, val, test = ("\n\n".join(splits[k]) for k in (0, 18, 19))
    if train_chars is not None:
        train = train[:v.positive_int(train_chars, "train_chars")]
    if eval_chars is not None:
        n = v.positive_int(eval_chars, "eval_chars")
        val, test = val[:n], test[:n]
    return CharCorpus(train, val, test, name="stdlib-docstrings")
