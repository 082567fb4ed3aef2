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
