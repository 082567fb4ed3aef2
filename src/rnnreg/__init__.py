"""rnnreg: a small, fast LSTM trainer with every regularizer of the literature.

Dropout in all its forms (input, between layers, output, variational, recurrent, weight-drop,
DropConnect, embedding), layer normalization, weight decay, early stopping, zoneout and
AWD-LSTM's set (AR, TAR, tying, NT-ASGD, variable BPTT), on compiled Cython kernels
(``rnnreg._kernels``) with a pure-NumPy twin of each (``rnnreg._reference``). A model is composed
of declared parts: its settings (:mod:`rnnreg.model_config`), a cell (:mod:`rnnreg.cells`), an
input (:mod:`rnnreg.inputs`), a head (:mod:`rnnreg.heads`) and regularizers
(:mod:`rnnreg.regularizers`).
"""

from ._backend import get_backend, get_num_threads, set_backend, set_num_threads, use_backend
from .checkpoint import load_model, save_model
from .data import CharCorpus, Vocabulary, generate_simple_dataset, load_stdlib_docstrings
from .early_stopping import EarlyStoppingMonitor
from .functional import (
    GATE_ORDER,
    GRU_GATE_ORDER,
    GRU_LAYER_NORM_PARAMS,
    LSTM_LAYER_NORM_PARAMS,
    GRUCache,
    GRUGradients,
    LayerNormCache,
    LSTMCache,
    LSTMGradients,
    dropout_backward,
    dropout_forward,
    dropout_mask,
    gru_backward,
    gru_forward,
    gru_layer_norm_params,
    layer_norm_backward,
    layer_norm_forward,
    lstm_backward,
    lstm_forward,
    lstm_layer_norm_params,
    lstm_step_backward,
    lstm_step_forward,
    matmul,
    zoneout_mask,
)
from .gradcheck import numerical_gradient, relative_error
from .interop import from_torch, to_torch
from .model import RegularizedGRU, RegularizedLSTM
from .plotting import (
    plot_learning_curves,
    plot_regularization_comparison,
    plot_sweep,
    plot_weight_distributions,
)
from .sweeps import sweep
from .training import TrainConfig, evaluate, fit
from .weight_decay import compute_l2_penalty, regularized_loss

__version__ = "0.1.0"

__all__ = [
    "load_stdlib_docstrings",
    "GATE_ORDER",
    "LSTM_LAYER_NORM_PARAMS",
    "LSTMGradients",
    "LSTMCache",
    "LayerNormCache",
    "lstm_step_forward",
    "lstm_step_backward",
    "lstm_forward",
    "lstm_backward",
    "lstm_layer_norm_params",
    "layer_norm_forward",
    "layer_norm_backward",
    "dropout_forward",
    "dropout_backward",
    "dropout_mask",
    "zoneout_mask",
    "matmul",
    "GRU_GATE_ORDER",
    "GRU_LAYER_NORM_PARAMS",
    "GRUCache",
    "GRUGradients",
    "gru_forward",
    "gru_backward",
    "gru_layer_norm_params",
    "RegularizedLSTM",
    "RegularizedGRU",
    "EarlyStoppingMonitor",
    "compute_l2_penalty",
    "regularized_loss",
    "generate_simple_dataset",
    "CharCorpus",
    "Vocabulary",
    "fit",
    "TrainConfig",
    "evaluate",
    "save_model",
    "load_model",
    "to_torch",
    "from_torch",
    "sweep",
    "plot_learning_curves",
    "plot_regularization_comparison",
    "plot_weight_distributions",
    "plot_sweep",
    "get_backend",
    "set_backend",
    "use_backend",
    "get_num_threads",
    "set_num_threads",
    "numerical_gradient",
    "relative_error",
]
