"""Initial weights of :class:`rnnreg.RegularizedLSTM`: three documented schemes.

Each scheme fills the same parameters — per layer ``W{l} = [Wx; Wh]`` (D + H, 4H) and one bias
``b{l}`` (4H,), the output projection ``Why`` (H, O) and ``by`` (O,), and ``embedding`` (V, E) when
the model learns one — from the model's own ``np.random.Generator``:

``"uniform"`` (rnnreg's)
    ``W{l}`` ~ U(±1/√H), bias 0 but for the forget block; ``Why`` Glorot uniform, ``by`` 0;
    embedding N(0, 0.1²).
``"pytorch"``
    What ``nn.LSTM`` + ``nn.Linear`` (+ ``nn.Embedding``) draw: every LSTM weight and *both* of its
    biases ~ U(±1/√H), the two biases summed into our single one (so each entry is a sum of two
    uniforms); ``Why``, ``by`` ~ U(±1/√H) (``nn.Linear``'s Kaiming-uniform with a = √5); embedding
    N(0, 1).
``"keras"``
    What ``keras.layers.LSTM`` + ``Dense`` (+ ``Embedding``) draw: ``Wx`` Glorot uniform, ``Wh``
    orthogonal, biases 0 (``unit_forget_bias`` is the forget bias of 1); ``Why`` Glorot uniform,
    ``by`` 0; embedding U(±0.05).

``forget_bias`` is added to the forget-gate block of every layer's bias (Jozefowicz et al., 2015;
Keras's ``unit_forget_bias``); ``recurrent_init="orthogonal"`` replaces any scheme's ``Wh`` by an
orthogonal matrix (:func:`orthogonal`). The default scheme was chosen by measurement:
``benchmarks/learning.py`` and the regularizers guide's "Initialization and training defaults"
(``docs/guide/regularizers.md``).
"""

import numpy as np

from ._conventions import initial_layer_norm

__all__ = [
    "INIT_SCHEMES",
    "DEFAULT_INIT",
    "DEFAULT_FORGET_BIAS",
    "orthogonal",
    "glorot_uniform",
    "initial_parameters",
]

INIT_SCHEMES = ("uniform", "pytorch", "keras")
#: The default scheme and forget-gate bias (the measurement: docs/guide/regularizers.md,
#: "Initialization and training defaults").
DEFAULT_INIT = "uniform"
DEFAULT_FORGET_BIAS = {"uniform": 0.0, "pytorch": 0.0, "keras": 1.0}


def orthogonal(shape, rng, gain=1.0):
    """A matrix of ``shape`` whose rows (if it is wide) or columns (if tall) are orthonormal,
    times ``gain`` — drawn as Saxe et al. (2014) and Keras do: the Q of a QR decomposition of a
    standard-normal matrix, its signs fixed by R's diagonal so that Q is uniformly distributed."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q


def glorot_uniform(shape, rng):
    """U(±√(6 / (fan_in + fan_out))) for a (fan_in, fan_out) matrix (Glorot & Bengio, 2010)."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, shape)


def initial_parameters(
    scheme,
    rng,
    *,
    vocab_size,
    hidden_size,
    output_size,
    embedding_size,
    layer_input_sizes,
    use_layer_norm,
    forget_bias,
    recurrent_init=None,
    cell=None,
):
    """The parameters of a model (name -> float64 array, in the model's order) under ``scheme``.

    ``layer_input_sizes[l]`` is D of layer l; ``cell`` the ``rnnreg.cells.Cell`` (the
    LSTM's by default): its gate blocks along the weights' last axis, its further (H,) biases
    (the GRU's ``bn``: drawn as its bias is, U(±1/√H) under "pytorch", else 0) and layer-norm
    parameters; ``forget_bias`` is added to the block named "f" when the cell has one.
    Layer-norm gains start at 1 and their biases at 0 in every scheme (Ba et al., 2016)."""
    from .cells import LSTMCell

    cell = LSTMCell() if cell is None else cell
    gates = cell.gates

    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init must be one of {INIT_SCHEMES}, got {scheme!r}")
    if recurrent_init not in (None, "orthogonal"):
        raise ValueError(f"recurrent_init must be None or 'orthogonal', got {recurrent_init!r}")
    H = hidden_size
    bound = 1.0 / np.sqrt(H)
    G = len(gates) * H  # the gate blocks' width
    forget = slice(gates.index("f") * H, (gates.index("f") + 1) * H) if "f" in gates else None
    params = {}
    if embedding_size is not None:
        shape = (vocab_size, embedding_size)
        params["embedding"] = {
            "uniform": lambda: rng.normal(0.0, 0.1, shape),
            "pytorch": lambda: rng.standard_normal(shape),
            "keras": lambda: rng.uniform(-0.05, 0.05, shape),
        }[scheme]()
    extra: dict[str, np.ndarray] = {}
    for layer, D in enumerate(layer_input_sizes):
        if scheme == "uniform":
            W = rng.uniform(-bound, bound, (D + H, G))
            b = np.zeros(G)
        elif scheme == "pytorch":
            W = rng.uniform(-bound, bound, (D + H, G))
            b_ih, b_hh = rng.uniform(-bound, bound, G), rng.uniform(-bound, bound, G)
            if "bn" in cell.extra_biases:  # the candidate's recurrent bias stays apart
                extra = {"bn": b_hh[G - H :].copy()}
                b_hh[G - H :] = 0.0
            b = b_ih + b_hh
        else:
            W = np.concatenate((glorot_uniform((D, G), rng), orthogonal((H, G), rng)))
            b = np.zeros(G)
        if recurrent_init == "orthogonal":
            W[D:] = orthogonal((H, G), rng)
        if forget is not None:
            b[forget] += forget_bias
        params[f"W{layer}"], params[f"b{layer}"] = W, b
        for name in cell.extra_biases:
            params[f"{name}{layer}"] = extra[name] if scheme == "pytorch" else np.zeros(H)
        if use_layer_norm:
            for name, value in initial_layer_norm(cell.layer_norm_params, cell.ln_size, H).items():
                params[f"ln{layer}.{name}"] = value
    if scheme == "pytorch":
        params["Why"] = rng.uniform(-bound, bound, (H, output_size))
        params["by"] = rng.uniform(-bound, bound, output_size)
    else:
        params["Why"] = glorot_uniform((H, output_size), rng)
        params["by"] = np.zeros(output_size)
    return params
