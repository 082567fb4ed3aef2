"""The recurrent cells a model stacks: each kind decides its gates, its state, its parameters
and the compiled kernels that run its whole time loop.

A cell kind is an object with:

* ``name``; ``gates`` (the gate blocks along its weights' last axis, in order) and
  ``state_names`` (the arrays its state carries between steps, each (N, H));
* ``parameter_shapes(layer, input_size, hidden_size, layer_norm)``: name -> shape of one layer's
  parameters, in the model's order;
* ``forward(x, state, weights, recurrence, segments)``: one layer over a batch, returning its
  output (N, T, H), its final state and a :class:`LayerRun` for the backward pass;
* ``backward(dh, dstate_final, run, need_dx)``: the gradients of one layer.

The model (``rnnreg.model``) never spells a gate count or a state of its own. The LSTM's
equations and conventions are in ``rnnreg._conventions``; its kernels in ``_kernels.pyx``
(and their NumPy twins in ``rnnreg._reference``).
"""

from typing import NamedTuple

import numpy as np

from . import _ops
from . import _validation as v
from ._conventions import DEFAULT_EPS, GATE_ORDER, LSTM_LAYER_NORM_PARAMS, layer_norm_param_size

__all__ = ["LSTMCell", "LayerRun", "Segments", "stack_input_sizes"]


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


class LSTMCell:
    """The LSTM cell (Hochreiter & Schmidhuber 1997, with a forget gate; CS231n's layout), or the
    LN-LSTM (Ba et al. 2016) with ``layer_norm``: see ``rnnreg._conventions`` for the
    equations. One layer's parameters: ``W{l} = [Wx; Wh]`` (D + H, 4H), ``b{l}`` (4H,) and, with
    layer norm, ``ln{l}.<name>`` for each of :data:`~rnnreg.LSTM_LAYER_NORM_PARAMS`."""

    name = "lstm"
    gates = GATE_ORDER
    state_names = ("h", "c")

    def gate_width(self, hidden_size):
        return len(self.gates) * hidden_size

    def parameter_shapes(self, layer, input_size, hidden_size, layer_norm):
        shapes = {
            f"W{layer}": (input_size + hidden_size, self.gate_width(hidden_size)),
            f"b{layer}": (self.gate_width(hidden_size),),
        }
        if layer_norm:
            for name in LSTM_LAYER_NORM_PARAMS:
                shapes[f"ln{layer}.{name}"] = (layer_norm_param_size(name, hidden_size),)
        return shapes

    def layer_names(self, layer, layer_norm):
        """(weights, bias, layer-norm names) of one layer."""
        return (
            f"W{layer}",
            f"b{layer}",
            tuple(f"ln{layer}.{name}" for name in LSTM_LAYER_NORM_PARAMS) if layer_norm else (),
        )

    def weights(self, params, layer, hidden_size):
        """(Wx, Wh) of a layer: views of the rows of ``W{layer}``."""
        W = params[f"W{layer}"]
        D = W.shape[0] - hidden_size
        return W[:D], W[D:]

    def forward(self, layer, x, state, Wx, Wh, params, recurrence, segments, layer_norm):
        """One layer over a batch: ``x`` (N, T, D) floats or (N, T) token ids, ``state`` a tuple of
        ``state_names`` arrays (N, H), ``recurrence`` the recurrence parts' kernel arguments.
        Returns (output (N, T, H), final state, LayerRun)."""
        kernels = _ops.kernels()
        b = params[f"b{layer}"]
        ln = None
        if layer_norm:
            _, _, ln_names = self.layer_names(layer, True)
            ln = dict(zip(LSTM_LAYER_NORM_PARAMS, map(params.__getitem__, ln_names)))
        recurrent_mask = recurrence.get("recurrent_mask")
        zone_h, zone_c = recurrence.get("zoneout_h"), recurrence.get("zoneout_c")
        h_state, c_state = state
        caches, outputs = [], []
        whole = segments.whole
        for t0, t1 in segments.spans:  # one kernel call per stretch without a document start
            if t0 in segments.reset_rows:
                keep = ~segments.reset_rows[t0][:, None]
                h_state, c_state = h_state * keep, c_state * keep
            cache = kernels.lstm_forward(
                x if whole else np.ascontiguousarray(x[:, t0:t1]),
                np.ascontiguousarray(h_state),
                np.ascontiguousarray(c_state),
                Wx,
                Wh,
                b,
                ln,
                recurrent_mask,
                DEFAULT_EPS,
                zone_h if whole or zone_h is None else np.ascontiguousarray(zone_h[:, t0:t1]),
                zone_c if whole or zone_c is None else np.ascontiguousarray(zone_c[:, t0:t1]),
            )
            v.finite_result(cache.c, f"LSTM layer {layer}", "the weights or inputs")
            caches.append(cache)
            outputs.append(cache.h)
            h_state, c_state = cache.h[:, -1], cache.c_final
        h = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=1)
        return h, (h_state, c_state), LayerRun(tuple(caches), segments)

    def backward(self, layer, dh, dstate_final, run, need_dx, layer_norm):
        """The gradients of one layer: returns (dx or None, {"dWx", "dWh", "db", and the
        layer-norm parameters' by their full names}). ``dstate_final``: the upstream gradient
        of the final state (a tuple like the state; None entries are zero)."""
        dh_final, dc_final = dstate_final
        N, _, H = dh.shape
        dcf = (
            np.zeros((N, H), dh.dtype) if dc_final is None else np.ascontiguousarray(dc_final, dtype=dh.dtype)
        )
        dh = np.ascontiguousarray(dh)
        if dh_final is not None:
            dh = dh.copy()
            dh[:, -1] += dh_final
        g = self._segments_backward(dh, dcf, run, need_dx)
        for name in ("dx", "dWx", "dWh") if need_dx else ("dWx", "dWh"):
            v.finite_result(g[name], f"LSTM layer {layer} backward", "the gradients")
        grads = {"dWx": g["dWx"], "dWh": g["dWh"], "db": g["db"]}
        if layer_norm:
            _, _, ln_names = self.layer_names(layer, True)
            for name, full_name in zip(LSTM_LAYER_NORM_PARAMS, ln_names):
                grads[full_name] = g["d" + name]
        return g["dx"], grads

    @staticmethod
    def _segments_backward(dh, dc_final, run, need_dx):
        """lstm_backward over the segments of one layer, last first: the gradient reaching a
        segment's initial state flows into the previous segment's final state, except for rows
        whose state was zeroed there."""
        kernels = _ops.kernels()
        caches, segments = run.caches, run.segments
        if len(caches) == 1:
            return kernels.lstm_backward(dh, dc_final, caches[0], need_dx)
        dx_parts, total = [], None
        dh_carry, dc_carry = None, dc_final
        for (t0, t1), cache in zip(reversed(segments.spans), reversed(caches)):
            dh_seg = np.array(dh[:, t0:t1])
            if dh_carry is not None:
                dh_seg[:, -1] += dh_carry
            g = kernels.lstm_backward(dh_seg, np.ascontiguousarray(dc_carry), cache, need_dx)
            dx_parts.append(g["dx"])
            dh_carry, dc_carry = g["dh0"], g["dc0"]
            if t0 in segments.reset_rows:
                keep = ~segments.reset_rows[t0][:, None]
                dh_carry, dc_carry = dh_carry * keep, dc_carry * keep
            if total is None:  # the kernel's fresh arrays: summed into in place
                total = {k: val for k, val in g.items() if k not in ("dx", "dh0", "dc0")}
            else:
                for k in total:
                    total[k] += g[k]
        assert total is not None  # caches hold one or more segments
        total.update(
            dx=np.ascontiguousarray(np.concatenate(dx_parts[::-1], axis=1)) if need_dx else None,
            dh0=dh_carry,
            dc0=dc_carry,
        )
        return total

    def freeze(self, recurrence, valid, hidden_size, dtype):
        """The recurrence arguments with every row frozen past its length: the steps where
        ``valid`` (N, T) is False carry h and c on unchanged — zoneout weights of 1 there (on
        top of the zoneout drawn, where there is one). The kernels' zoneout path computes
        ``u ⊙ previous + (1 − u) ⊙ new``: exactly the previous state for u = 1, and no gradient
        reaches the step's gates."""
        frozen = ~valid
        frozen_steps = np.broadcast_to(frozen[:, :, None], valid.shape + (hidden_size,))
        out = dict(recurrence)
        for name in ("zoneout_h", "zoneout_c"):
            weights = out.get(name)
            weights = np.zeros(frozen_steps.shape, dtype) if weights is None else np.array(weights, dtype)
            weights[frozen_steps] = 1.0
            out[name] = weights
        return out

    def cell_states(self, run):
        """The cell state c (N, T, H) of a layer's run (what ``largest_cell_state`` reads)."""
        caches = run.caches
        return caches[0].c if len(caches) == 1 else np.concatenate([c.c for c in caches], axis=1)


def stack_input_sizes(first: int, hidden_size: int, num_layers: int) -> list[int]:
    """D of each layer: the input's features for the first, the hidden size after."""
    return [first] + [hidden_size] * (num_layers - 1)
