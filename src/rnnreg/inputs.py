"""What a model reads: each input kind turns a batch into the first layer's input and takes its
gradient back.

An input kind has ``parameter_shapes(config)`` (name -> shape of its own parameters),
``features(config)`` (the first layer's input size D), ``check(inputs, config)`` (the batch,
validated: the error names the argument), ``forward(inputs, params)`` (the first layer's input)
and ``backward(dx, inputs, params)`` (its parameters' gradients). ``takes_gradient`` says
whether the first layer must compute an input gradient at all.
"""

import numpy as np

from . import _validation as v
from ._conventions import TOKEN_DTYPE

__all__ = ["OneHotTokens", "EmbeddedTokens", "RealVectors", "input_of"]


class OneHotTokens:
    """Token ids read as one-hot vectors of the vocabulary: never built; the first layer's input
    product is a gather of rows of its Wx (the same numbers), its weight gradient a scatter-add,
    and no input gradient is computed."""

    name = "one-hot"
    takes_gradient = False

    def parameter_shapes(self, config):
        return {}

    def features(self, config):
        return config.vocab_size

    def check(self, inputs, config, name="inputs"):
        return v.token_array(inputs, name, config.vocab_size, ndim=2)

    def forward(self, inputs, params):
        return np.ascontiguousarray(inputs, dtype=TOKEN_DTYPE)

    def backward(self, dx, inputs, params):
        return {}


class EmbeddedTokens:
    """Token ids looked up in a learned embedding ``E`` (V, E_size): ``x_t = E[token_t]``; its
    gradient is a scatter-add of the first layer's input gradient into the rows read."""

    name = "embedding"
    takes_gradient = True

    def parameter_shapes(self, config):
        return {"embedding": (config.vocab_size, config.embedding_size)}

    def features(self, config):
        return config.embedding_size

    def check(self, inputs, config, name="inputs"):
        return v.token_array(inputs, name, config.vocab_size, ndim=2)

    def forward(self, inputs, params):
        return params["embedding"][inputs]

    def backward(self, dx, inputs, params):
        N, T = inputs.shape
        grad = np.zeros_like(params["embedding"])
        np.add.at(grad, inputs.reshape(-1), dx.reshape(N * T, -1))
        return {"embedding": grad}


class RealVectors:
    """Real-valued vectors, a batch of shape (N, T, D) read as they are (sensor readings,
    features, a series): the first layer's input; no parameters of its own, no input gradient
    needed. Every value must be finite (padding past a sequence's end is the model's own)."""

    name = "vectors"
    takes_gradient = False
    #: a rnnreg.sequences.Standardizer applied to every batch (set by the model), or None
    standardizer = None

    def parameter_shapes(self, config):
        return {}

    def features(self, config):
        return config.input_size

    def check(self, inputs, config, name="inputs"):
        arr = np.asarray(inputs)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        x = v.float_array(arr.astype(config.float_dtype, copy=False), name, ndim=3)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name} must hold at least one sequence of one step, got shape {x.shape}")
        if x.shape[2] != config.input_size:
            raise ValueError(
                f"{name} must have {config.input_size} features (input_size) per step, got shape {x.shape}"
            )
        return x

    def forward(self, inputs, params):
        return inputs if self.standardizer is None else self.standardizer.apply(inputs)

    def backward(self, dx, inputs, params):
        return {}


def input_of(config):
    """The input kind a config describes."""
    if not config.tokens:
        return RealVectors()
    return OneHotTokens() if config.embedding_size is None else EmbeddedTokens()
