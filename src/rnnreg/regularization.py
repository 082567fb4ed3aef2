"""The names of release 0.1's ``rnnreg.regularization``, kept for code that imports them from
here: weight decay now lives in ``rnnreg.weight_decay`` and early stopping in
``rnnreg.early_stopping`` (the regularizers that act inside the model are the parts of
``rnnreg.regularizers``). Everything is importable from ``rnnreg`` itself too."""

from .early_stopping import EarlyStoppingMonitor
from .weight_decay import compute_l2_penalty, regularized_loss

__all__ = ["compute_l2_penalty", "regularized_loss", "EarlyStoppingMonitor"]
