"""What a model predicts from its last layer: each head maps the last layer's (dropped) output
to its predictions, its loss and their gradients.

A head kind has ``parameter_shapes(config)``, ``check_targets(targets, shape, config)``,
``forward(top, params, targets) -> (loss or None, outputs, saved)`` with ``top`` (N*T, H), and
``backward(saved, top, params) -> (grads, dtop)``. Weight tying (:class:`~rnnreg.regularizers.
WeightTying`) makes the next-token head share the embedding.
"""

import numpy as np

from . import _ops
from . import _validation as v

__all__ = ["NextToken", "head_of"]


def _matmul(a, b, trans_a=False, trans_b=False):
    out = _ops.kernels().matmul(a, b, trans_a, trans_b)
    return v.finite_result(out, "the model's output projection", "the weights or activations")


class NextToken:
    """Next-token softmax: ``logits = h Why + by`` (``h Eᵀ + by`` with tied weights), loss the
    mean cross-entropy over the N*T positions."""

    name = "next-token"

    def __init__(self, tied=False):
        self.tied = bool(tied)

    def parameter_shapes(self, config):
        shapes: dict[str, tuple[int, ...]] = (
            {} if self.tied else {"Why": (config.hidden_size, config.output_size)}
        )
        shapes["by"] = (config.output_size,)
        return shapes

    def projection(self, params):
        """The (H, O) output projection (a view: the embedding's transpose when tied)."""
        return params["embedding"].T if self.tied else params["Why"]

    def check_targets(self, targets, shape, config, name="targets"):
        targets = v.token_array(targets, name, config.output_size, ndim=2)
        v.check_shape(targets, name, shape, "(matching inputs)")
        return targets

    def forward(self, top, params, targets):
        if self.tied:
            logits = _matmul(top, params["embedding"], trans_b=True) + params["by"]
        else:
            logits = _matmul(top, params["Why"]) + params["by"]
        loss, dlogits = None, None
        if targets is not None:
            loss, dlogits = _ops.kernels().softmax_cross_entropy(
                logits, np.ascontiguousarray(targets.reshape(-1), dtype=np.int64)
            )
        return loss, logits, dlogits

    def backward(self, dlogits, top, params):
        """The head's parameter gradients (with tying, the embedding's share under
        ``"embedding"``) and the gradient of ``top``."""
        grads = {}
        if self.tied:
            grads["embedding"] = _matmul(dlogits, top, trans_a=True)  # (V, H)
            dtop = _matmul(dlogits, params["embedding"])
        else:
            grads["Why"] = _matmul(top, dlogits, trans_a=True)
            dtop = _matmul(dlogits, params["Why"], trans_b=True)
        grads["by"] = dlogits.sum(axis=0)
        return grads, dtop


def head_of(config):
    return NextToken(tied=config.tie_weights)
