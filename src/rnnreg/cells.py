"""The recurrent cells a model stacks: each kind decides its gates, its state, its parameters
and the compiled kernels that run its whole time loop.

A cell kind is an object with (the shared machinery is :class:`Cell`'s):

* ``name``; ``gates`` (the gate blocks along its weights' last axis, in order) and
  ``state_names`` (the arrays its state carries between steps, each (N, H));
* ``parameter_shapes(layer, input_size, hidden_size, layer_norm)``: name -> shape of one layer's
  parameters, in the model's order;
* ``forward(x, state, weights, recurrence, segments)``: one layer over a batch, returning its
  output (N, T, H), its final state and a :class:`LayerRun` for the backward pass;
* ``backward(dh, dstate_final, run, need_dx)``: the gradients of one layer.

The model (``rnnreg.model``) never spells a gate count or a state of its own: it asks
:func:`cell_of` for its config's cell. The LSTM's and the GRU's equations and conventions are in
``rnnreg._conventions``; their kernels in ``_kernels.pyx`` (and their NumPy twins in
``rnnreg._reference``). A new cell is a class here (its gates, state, parameters and kernel
calls) and its entry in :data:`CELLS`.
"""

from typing import NamedTuple

import numpy as np

from . import _ops
from . import _validation as v
from ._conventions import (
    DEFAULT_EPS,
    GATE_ORDER,
    GRU_GATE_ORDER,
    GRU_LAYER_NORM_PARAMS,
    LSTM_LAYER_NORM_PARAMS,
    gru_layer_norm_param_size,
    layer_norm_param_size,
)

__all__ = ["Cell", "LSTMCell", "GRUCell", "CELLS", "cell_of", "LayerRun", "Segments", "stack_input_sizes"]


class Segments(NamedTuple):
    """The stretches ``[t0, t1)`` of a batch's time axis between document starts, and for each
    start ``t0`` the rows (N,) whose state is zeroed there (a new document)."""

    spans: tuple[tuple[int, int], ...]
    reset_rows: dict[int, np.ndarray]

    @classmethod
    def of(cls, resets, N, T):
        if resets is None:
            return cls(((0, T),), {})
        resets = np.asarray(resets, dtype=bool)
        if resets.shape != (N, T):
            raise ValueError(f"resets must have shape {(N, T)} (matching inputs), got {resets.shape}")
        cuts = [0] + [t for t in range(1, T) if resets[:, t].any()] + [T]
        reset_rows = {t: resets[:, t].copy() for t in cuts[:-1] if resets[:, t].any()}
        return cls(tuple(zip(cuts[:-1], cuts[1:])), reset_rows)

    @property
    def whole(self):
        return len(self.spans) == 1


class LayerRun(NamedTuple):
    """What one layer's forward pass leaves for its backward: the kernel's cache of each stretch
    between document starts (the kernels check them again before reading), and the segments."""

    caches: tuple[object, ...]
    segments: Segments


class Cell:
    """What every cell kind shares: its weights ``W{l} = [Wx; Wh]`` and bias ``b{l}`` (one block
    per gate along the last axis), its layer-norm parameters ``ln{l}.<name>``, and the runs of
    its kernels over the stretches of a batch between document starts. A subclass declares
    ``name``, ``gates``, ``state_names``, ``layer_norm_params`` (names, each ``ln_size(name,
    H)`` long), ``extra_biases`` (names of further (H,) bias vectors of a layer, ``<name>{l}``),
    ``zoneout_names`` (the kernel's zoneout arguments, one per state) and its two kernel calls,
    ``_forward_kernel`` and ``_backward_kernel``."""

    name: str
    gates: tuple[str, ...]
    state_names: tuple[str, ...]
    layer_norm_params: tuple[str, ...]
    extra_biases: tuple[str, ...] = ()
    zoneout_names: tuple[str, ...]

    def ln_size(self, name, hidden_size):
        raise NotImplementedError

    def _forward_kernel(self, x, state, Wx, Wh, params, layer, ln, recurrence):
        """The kernel's forward over one stretch: returns its cache."""
        raise NotImplementedError

    @staticmethod
    def _backward_kernel(dh, dstate_rest, cache, need_dx, dW):
        """The kernel's backward over one stretch (``dstate_rest``: the final-state gradients
        after h's; ``dW``: where to write [dWx; dWh], or None): returns its dict of
        gradients."""
        raise NotImplementedError

    @staticmethod
    def final_state(cache):
        """The state (a tuple like ``state_names``) at the end of a stretch."""
        raise NotImplementedError

    @staticmethod
    def cell_state_of(cache):
        """The state whose growth the trainer watches, (N, T, H)."""
        raise NotImplementedError

    def gate_width(self, hidden_size):
        return len(self.gates) * hidden_size

    def parameter_shapes(self, layer, input_size, hidden_size, layer_norm):
        shapes = {
            f"W{layer}": (input_size + hidden_size, self.gate_width(hidden_size)),
            f"b{layer}": (self.gate_width(hidden_size),),
        }
        for name in self.extra_biases:
            shapes[f"{name}{layer}"] = (hidden_size,)
        if layer_norm:
            for name in self.layer_norm_params:
                shapes[f"ln{layer}.{name}"] = (self.ln_size(name, hidden_size),)
        return shapes

    def layer_names(self, layer, layer_norm):
        """(weights, bias, layer-norm names) of one layer."""
        return (
            f"W{layer}",
            f"b{layer}",
            tuple(f"ln{layer}.{name}" for name in self.layer_norm_params) if layer_norm else (),
        )

    def weights(self, params, layer, hidden_size):
        """(Wx, Wh) of a layer: views of the rows of ``W{layer}``."""
        W = params[f"W{layer}"]
        D = W.shape[0] - hidden_size
        return W[:D], W[D:]

    def _layer_norm(self, params, layer, layer_norm):
        if not layer_norm:
            return None
        _, _, ln_names = self.layer_names(layer, True)
        return dict(zip(self.layer_norm_params, map(params.__getitem__, ln_names)))

    def forward(self, layer, x, state, Wx, Wh, params, recurrence, segments, layer_norm):
        """One layer over a batch: ``x`` (N, T, D) floats or (N, T) token ids, ``state`` a tuple of
        ``state_names`` arrays (N, H), ``recurrence`` the recurrence parts' kernel arguments.
        Returns (output (N, T, H), final state, LayerRun)."""
        ln = self._layer_norm(params, layer, layer_norm)
        caches, outputs = [], []
        whole = segments.whole
        for t0, t1 in segments.spans:  # one kernel call per stretch without a document start
            if t0 in segments.reset_rows:
                keep = ~segments.reset_rows[t0][:, None]
                state = tuple([part * keep for part in state])
            stretch = {
                name: weights
                if whole or weights is None or name not in self.zoneout_names
                else np.ascontiguousarray(weights[:, t0:t1])
                for name, weights in recurrence.items()
            }
            cache = self._forward_kernel(
                x if whole else np.ascontiguousarray(x[:, t0:t1]),
                tuple([np.ascontiguousarray(part) for part in state]),
                Wx,
                Wh,
                params,
                layer,
                ln,
                stretch,
            )
            v.finite_result(
                self.cell_state_of(cache), f"{self.name.upper()} layer {layer}", "the weights or inputs"
            )
            caches.append(cache)
            outputs.append(cache.h)
            state = self.final_state(cache)
        h = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=1)
        return h, state, LayerRun(tuple(caches), segments)

    def backward(self, layer, dh, dstate_final, run, need_dx, layer_norm, dW=None):
        """The gradients of one layer: returns (dx or None, {"dWx", "dWh", "db", and the other
        parameters' by their full names}). ``dstate_final``: the upstream gradient of the final
        state (a tuple like the state; None entries are zero). ``dW``: the layer's weight
        gradient's place ([dWx; dWh], (D + H, G)) to write into; dWx and dWh are then views of
        it. The weight gradients are not checked for finiteness here: the model checks all of
        its gradients in one pass."""
        N, _, H = dh.shape
        dh = np.ascontiguousarray(dh)
        if dstate_final[0] is not None:
            dh = dh.copy()
            dh[:, -1] += dstate_final[0]
        rest = tuple(
            [
                np.zeros((N, H), dh.dtype) if d is None else np.ascontiguousarray(d, dtype=dh.dtype)
                for d in dstate_final[1:]
            ]
        )
        g = self._segments_backward(dh, rest, run, need_dx, dW)
        if need_dx:
            v.finite_result(g["dx"], f"{self.name.upper()} layer {layer} backward", "the gradients")
        grads = {"dWx": g["dWx"], "dWh": g["dWh"], "db": g["db"]}
        for name in self.extra_biases:
            grads[f"{name}{layer}"] = g["d" + name]
        if layer_norm:
            _, _, ln_names = self.layer_names(layer, True)
            for name, full_name in zip(self.layer_norm_params, ln_names):
                grads[full_name] = g["d" + name]
        return g["dx"], grads

    def _segments_backward(self, dh, dstate_rest, run, need_dx, dW=None):
        """The backward kernel over the segments of one layer, last first: the gradient reaching
        a segment's initial state flows into the previous segment's final state, except for
        rows whose state was zeroed there. The last segment writes its weight gradient into
        ``dW`` (when given), and the earlier ones add theirs to it in turn."""
        caches, segments = run.caches, run.segments
        initial = tuple("d" + name + "0" for name in self.state_names)  # dh0, dc0
        if len(caches) == 1:
            return self._backward_kernel(dh, dstate_rest, caches[0], need_dx, dW)
        dx_parts, total = [], None
        dh_carry, rest_carry = None, dstate_rest
        for (t0, t1), cache in zip(reversed(segments.spans), reversed(caches)):
            dh_seg = np.array(dh[:, t0:t1])
            if dh_carry is not None:
                dh_seg[:, -1] += dh_carry
            g = self._backward_kernel(
                dh_seg,
                tuple([np.ascontiguousarray(d) for d in rest_carry]),
                cache,
                need_dx,
                dW if total is None else None,
            )
            dx_parts.append(g["dx"])
            carried = [g[name] for name in initial]
            if t0 in segments.reset_rows:
                keep = ~segments.reset_rows[t0][:, None]
                carried = [d * keep for d in carried]
            dh_carry, rest_carry = carried[0], tuple(carried[1:])
            if total is None:  # the kernel's fresh arrays (dWx, dWh: views of dW): summed into in place
                total = {k: val for k, val in g.items() if k != "dx" and k not in initial}
            else:
                for k in total:
                    total[k] += g[k]
        assert total is not None  # caches hold one or more segments
        total["dx"] = np.ascontiguousarray(np.concatenate(dx_parts[::-1], axis=1)) if need_dx else None
        for name, value in zip(initial, (dh_carry, *rest_carry)):
            total[name] = value
        return total

    def freeze(self, recurrence, valid, hidden_size, dtype):
        """The recurrence arguments with every row frozen past its length: the steps where
        ``valid`` (N, T) is False carry the state on unchanged — zoneout weights of 1 there (on
        top of the zoneout drawn, where there is one). The kernels' zoneout path computes
        ``u ⊙ previous + (1 − u) ⊙ new``: exactly the previous state for u = 1, and no gradient
        reaches the step's gates."""
        frozen = ~valid
        frozen_steps = np.broadcast_to(frozen[:, :, None], valid.shape + (hidden_size,))
        one = np.ones((), dtype)
        out = dict(recurrence)
        for name in self.zoneout_names:  # one pass each (a boolean-mask assignment took two)
            weights = out.get(name)
            if weights is None:
                out[name] = frozen_steps.astype(dtype)
            else:
                out[name] = np.where(frozen_steps, one, np.asarray(weights, dtype))
        return out

    def cell_states(self, run):
        """The largest-growing state (N, T, H) of a layer's run (what ``largest_cell_state``
        reads): the LSTM's cell state c, the GRU's h."""
        caches = run.caches
        if len(caches) == 1:
            return self.cell_state_of(caches[0])
        return np.concatenate([self.cell_state_of(c) for c in caches], axis=1)


class LSTMCell(Cell):
    """The LSTM cell (Hochreiter & Schmidhuber 1997, with a forget gate; CS231n's layout), or the
    LN-LSTM (Ba et al. 2016) with ``layer_norm``: see ``rnnreg._conventions`` for the
    equations. One layer's parameters: ``W{l} = [Wx; Wh]`` (D + H, 4H), ``b{l}`` (4H,) and, with
    layer norm, ``ln{l}.<name>`` for each of :data:`~rnnreg.LSTM_LAYER_NORM_PARAMS`."""

    name = "lstm"
    gates = GATE_ORDER
    state_names = ("h", "c")
    layer_norm_params = LSTM_LAYER_NORM_PARAMS
    zoneout_names = ("zoneout_h", "zoneout_c")

    def ln_size(self, name, hidden_size):
        return layer_norm_param_size(name, hidden_size)

    def _forward_kernel(self, x, state, Wx, Wh, params, layer, ln, recurrence):
        h0, c0 = state
        return _ops.kernels().lstm_forward(
            x,
            h0,
            c0,
            Wx,
            Wh,
            params[f"b{layer}"],
            ln,
            recurrence.get("recurrent_mask"),
            DEFAULT_EPS,
            recurrence.get("zoneout_h"),
            recurrence.get("zoneout_c"),
        )

    @staticmethod
    def _backward_kernel(dh, dstate_rest, cache, need_dx, dW):
        return _ops.kernels().lstm_backward(dh, dstate_rest[0], cache, need_dx, dW)

    @staticmethod
    def final_state(cache):
        return cache.h[:, -1], cache.c_final

    @staticmethod
    def cell_state_of(cache):
        return cache.c


class GRUCell(Cell):
    """The GRU (Cho et al. 2014) in PyTorch's and Keras's convention (the reset gate applied
    after the recurrent product), or the LN-GRU with ``layer_norm`` (each projection normalized,
    Ba et al. 2016): see ``rnnreg._conventions`` for the equations. One layer's parameters:
    ``W{l} = [Wx; Wh]`` (D + H, 3H) with gate blocks :data:`~rnnreg.GRU_GATE_ORDER`, ``b{l}``
    (3H,), ``bn{l}`` (H,) — the candidate's recurrent bias, which the reset gate scales — and,
    with layer norm, ``ln{l}.<name>`` for each of :data:`~rnnreg.GRU_LAYER_NORM_PARAMS`."""

    name = "gru"
    gates = GRU_GATE_ORDER
    state_names = ("h",)
    layer_norm_params = GRU_LAYER_NORM_PARAMS
    extra_biases = ("bn",)
    zoneout_names = ("zoneout_h",)

    def ln_size(self, name, hidden_size):
        return gru_layer_norm_param_size(name, hidden_size)

    def _forward_kernel(self, x, state, Wx, Wh, params, layer, ln, recurrence):
        return _ops.kernels().gru_forward(
            x,
            state[0],
            Wx,
            Wh,
            params[f"b{layer}"],
            params[f"bn{layer}"],
            ln,
            recurrence.get("recurrent_mask"),
            DEFAULT_EPS,
            recurrence.get("zoneout_h"),
        )

    @staticmethod
    def _backward_kernel(dh, dstate_rest, cache, need_dx, dW):
        return _ops.kernels().gru_backward(dh, cache, need_dx, dW)

    @staticmethod
    def final_state(cache):
        return (cache.h[:, -1],)

    @staticmethod
    def cell_state_of(cache):
        return cache.h


#: The cells a model can stack, by the name its ``cell`` setting takes.
CELLS: dict[str, Cell] = {cell.name: cell for cell in (LSTMCell(), GRUCell())}


def cell_of(config) -> Cell:
    """The cell of a :class:`~rnnreg.model_config.ModelConfig`."""
    return CELLS[config.cell]


def stack_input_sizes(first: int, hidden_size: int, num_layers: int) -> list[int]:
    """D of each layer: the input's features for the first, the hidden size after."""
    return [first] + [hidden_size] * (num_layers - 1)
