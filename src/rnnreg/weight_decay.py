"""Weight decay: the L2 penalty and the objective that carries it.

L2 convention: the penalty is ``weight_decay / 2 * sum(w**2)``, so its gradient is
``weight_decay * w`` — the λ/2 form the notebook prints. The optimizers apply it
(``rnnreg.optim``: coupled for SGD and Adam, decoupled for AdamW) to the weight matrices only.
"""

import math
import numbers

import numpy as np

from . import _validation as v

__all__ = ["compute_l2_penalty", "regularized_loss"]


def _weight_list(weights):
    if isinstance(weights, dict):
        weights = list(weights.values())
    if isinstance(weights, np.ndarray):
        weights = [weights]
    try:
        weights = list(weights)
    except TypeError:
        raise TypeError(
            f"weights must be a list of arrays (or a dict name -> array), got {type(weights).__name__}"
        ) from None
    return [v.float_array(w, f"weights[{k}]") for k, w in enumerate(weights)]


def compute_l2_penalty(weights, weight_decay):
    """L2 penalty ``weight_decay / 2 * Σ w²``.

    Parameters
    ----------
    weights : list of ndarray, or dict name -> ndarray
        The arrays to penalize (e.g. ``model.weights()``: weight matrices, not biases or gains).
    weight_decay : float >= 0
        λ.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import compute_l2_penalty
    >>> compute_l2_penalty([np.array([3.0, 4.0])], 0.1)
    1.25
    """
    weight_decay = v.non_negative_float(weight_decay, "weight_decay")
    total = sum(float(np.einsum("i,i->", w.ravel(), w.ravel())) for w in _weight_list(weights))
    return 0.5 * weight_decay * total


def regularized_loss(model_loss, weights, weight_decay):
    """The training objective with coupled weight decay: ``model_loss + compute_l2_penalty(weights,
    weight_decay)``.

    Parameters
    ----------
    model_loss : float
        The data term (e.g. mean cross-entropy).
    weights : list of ndarray, or dict name -> ndarray
    weight_decay : float >= 0

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import regularized_loss
    >>> regularized_loss(2.0, [np.array([3.0, 4.0])], 0.1)
    3.25
    """
    if isinstance(model_loss, bool) or not isinstance(model_loss, (numbers.Real, np.floating)):
        raise TypeError(f"model_loss must be a real number, got {model_loss!r}")
    if not math.isfinite(model_loss):
        raise ValueError(f"model_loss must be finite, got {model_loss!r}")
    return float(model_loss) + compute_l2_penalty(weights, weight_decay)
