"""Optimizers, gradient clipping and learning-rate schedules.

Weight decay comes in two forms:

* coupled L2 (``SGD(weight_decay=λ)``, ``Adam(weight_decay=λ)``): the loss gains
  ``λ/2 · Σ w²`` (see :func:`rnnreg.compute_l2_penalty`) and so the gradient gains ``λ · w``
  before the update — with Adam, that term is then rescaled by the adaptive step like any other;
* decoupled (``AdamW(weight_decay=λ)``, Loshchilov & Hutter 2019): the weights shrink by
  ``lr · λ · w`` beside the Adam step, and the loss is left alone.

Either way only the names in ``decay`` are decayed — by default the weight matrices (ndim >= 2),
never biases or layer-norm gains and biases.

A model's parameters and gradients are packed into one buffer each (:mod:`rnnreg.parameters`):
then a step, the clipping norm and the scaling are each one compiled call over the buffer,
with the same results as the per-array path any other dict of arrays takes.
"""

import contextlib
import math

import numpy as np

from . import _ops
from . import _validation as v
from ._conventions import decay_parameter_names
from .parameters import Layout, Packed, packed_buffer, same_buffers, squared_norms

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "NTASGD",
    "clip_grad_norm",
    "global_norm",
    "l2_gradient",
    "constant_lr",
    "cosine_lr",
    "step_lr",
]


def l2_gradient(params, weight_decay, decay):
    """The gradient of λ/2·Σw² over the names in ``decay``: λ·w for each."""
    return {name: weight_decay * params[name] for name in decay}


def global_norm(arrays):
    """sqrt(Σ ||a||²) over a dict of arrays, summed in float64 so that large float32 gradients
    cannot overflow it: each array's sum of squares in one compiled pass (one call for all of a
    packed dict), added in the dict's order; no temporary."""
    return math.sqrt(sum(squared_norms(arrays)))


def clip_grad_norm(grads, max_norm):
    """Scale every gradient (in place) so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (inf or NaN when a gradient is not finite — then nothing
    is scaled, so the caller can see and stop).
    """
    max_norm = v.positive_float(max_norm, "max_norm")
    total = global_norm(grads)
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-12)
        buffer = packed_buffer(grads)
        for g in (buffer,) if buffer is not None else grads.values():
            g *= scale
    return total


class Optimizer:
    """Updates a dict of parameter arrays in place from a dict of gradients of the same names."""

    def __init__(self, params, lr, weight_decay=0.0, decay=None):
        if not isinstance(params, dict) or not params:
            raise TypeError("params must be a non-empty dict name -> ndarray (model.parameters())")
        for name, p in params.items():
            if not (
                isinstance(p, np.ndarray)
                and p.flags.c_contiguous
                and p.flags.writeable
                and p.dtype in v.FLOAT_DTYPES
            ):
                raise TypeError(
                    f"params[{name!r}] must be a writeable C-contiguous float32/float64 "
                    "array (optimizers update parameters in place)"
                )
        self.params = params
        self.lr = v.positive_float(lr, "lr")
        self.weight_decay = v.non_negative_float(weight_decay, "weight_decay")
        self.decay = list(decay_parameter_names(params) if decay is None else decay)
        unknown = [name for name in self.decay if name not in params]
        if unknown:
            raise ValueError(f"decay names parameters that do not exist: {unknown}")
        self.step_count = 0
        self.state = {}

    def _check_grads(self, grads):
        """Raise unless grads holds, for every parameter, an array of its shape and dtype (NumPy
        would broadcast a (1,) gradient over a whole matrix without a word); and unless every
        parameter is still updatable in place. Returns the (parameters, gradients) buffers when
        both dicts are packed in one layout (so all of that holds by construction), else None."""
        if not isinstance(grads, dict):
            raise TypeError(f"grads must be a dict name -> ndarray, got {type(grads).__name__}")
        buffers = same_buffers(self.params, grads)
        if buffers is not None and buffers[0].flags.writeable:  # (same layout: same names and shapes)
            return buffers
        missing = [name for name in self.params if name not in grads]
        if missing:
            raise ValueError(f"grads is missing {missing}")
        for name, p in self.params.items():
            g = grads[name]
            if not isinstance(g, np.ndarray) or g.shape != p.shape or g.dtype != p.dtype:
                got = (
                    f"shape {g.shape} and dtype {g.dtype}" if isinstance(g, np.ndarray) else type(g).__name__
                )
                raise ValueError(
                    f"grads[{name!r}] has {got}, expected shape {p.shape} and "
                    f"dtype {p.dtype} (those of the parameter)"
                )
            if not (p.flags.c_contiguous and p.flags.writeable):
                raise ValueError(f"params[{name!r}] is no longer a writeable C-contiguous array")
        return None

    @property
    def _layout(self) -> Layout:
        """The layout of the packed parameters (the packed paths alone ask for it)."""
        assert isinstance(self.params, Packed)
        return self.params.layout

    def _decayed_ranges(self):
        """The element ranges of the decayed parameters in the packed buffer, sorted."""
        layout = self._layout
        return layout.ranges(sorted(set(self.decay), key=layout.names.index))

    def _packed_slot(self, slot):
        """The buffer of state slot ``slot``, packed like the parameters: zeros where it holds
        nothing yet, a copy packed in place of arrays taken from a checkpoint."""
        arrays = self.state[slot]
        buffer = packed_buffer(arrays)
        if buffer is None or arrays.layout != self._layout:
            arrays = self._layout.pack(arrays)
            self.state[slot] = arrays
            buffer = arrays.buffer()
        return buffer

    def _check_lr(self):
        """The learning rate can be set from outside (a schedule): it must be finite and > 0."""
        if not v.is_positive_finite(self.lr):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")

    def _coupled(self, grads):
        """Gradients with the coupled-L2 term λ·w added (new arrays; the inputs stay as they are)."""
        if self.weight_decay == 0:
            return grads
        out = dict(grads)
        for name, term in l2_gradient(self.params, self.weight_decay, self.decay).items():
            out[name] = grads[name] + term
        return out

    def state_dict(self):
        """The optimizer's state: its rate, weight decay, step count, decayed names and slots
        (copies), as checkpoints hold it."""
        return {
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "step_count": self.step_count,
            "decay": list(self.decay),
            "state": {k: {n: a.copy() for n, a in s.items()} for k, s in self.state.items()},
        }

    def evaluation_weights(self):
        """A context in which the parameters hold the weights to evaluate (and to keep as the
        best ones): the parameters themselves, except for averaging optimizers (:class:`NTASGD`)."""
        return contextlib.nullcontext()

    def check_state_dict(self, state):
        """Check a :meth:`state_dict` against these parameters (names, shapes, dtypes, native
        byte order, finite values) without taking it: a state from a file is hostile input.
        Raises ValueError naming the first field that does not fit."""
        self._checked_state(state)

    def load_state_dict(self, state):
        """Take a :meth:`state_dict` after checking all of it (:meth:`check_state_dict`);
        nothing is changed when it does not fit."""
        lr, weight_decay, step_count, decay, restored = self._checked_state(state)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.step_count, self.decay, self.state = step_count, list(decay), restored

    def _checked_state(self, state):
        """(lr, weight_decay, step_count, decay, slots copied) of a state that fits, or
        ValueError."""
        if not isinstance(state, dict):
            raise ValueError(f"optimizer state must be a dict, got {type(state).__name__}")
        for key in ("lr", "weight_decay", "step_count", "decay", "state"):
            if key not in state:
                raise ValueError(f"optimizer state is missing {key!r}")
        lr = state["lr"]
        if not v.is_positive_finite(lr):
            raise ValueError(f"optimizer state 'lr' must be a finite number > 0, got {lr!r}")
        weight_decay = state["weight_decay"]
        if (
            isinstance(weight_decay, bool)
            or not isinstance(weight_decay, (int, float))
            or not (math.isfinite(weight_decay) and weight_decay >= 0)
        ):
            raise ValueError(
                f"optimizer state 'weight_decay' must be a finite number >= 0, got {weight_decay!r}"
            )
        step_count = state["step_count"]
        if isinstance(step_count, bool) or not isinstance(step_count, int) or step_count < 0:
            raise ValueError(f"optimizer state 'step_count' must be an int >= 0, got {step_count!r}")
        decay = state["decay"]
        if not isinstance(decay, list) or any(name not in self.params for name in decay):
            raise ValueError(f"optimizer state 'decay' must list parameter names, got {decay!r}")
        slots = state["state"]
        if not isinstance(slots, dict) or set(slots) != set(self.state):
            raise ValueError(
                f"optimizer state 'state' must hold {sorted(self.state)}, got "
                f"{sorted(slots) if isinstance(slots, dict) else type(slots).__name__}"
            )
        restored: dict[str, dict[str, np.ndarray]] = {}
        for slot, arrays in slots.items():
            if not isinstance(arrays, dict) or any(n not in self.params for n in arrays):
                raise ValueError(f"optimizer state[{slot!r}] must map parameter names to arrays")
            if arrays and set(arrays) != set(self.params) and slot != "velocity":
                raise ValueError(f"optimizer state[{slot!r}] must hold every parameter or none")
            restored[slot] = {}
            for name, arr in arrays.items():
                p = self.params[name]
                if (
                    not isinstance(arr, np.ndarray)
                    or arr.shape != p.shape
                    or arr.dtype != p.dtype
                    or not arr.dtype.isnative
                ):
                    got = (
                        f"shape {arr.shape}, dtype {arr.dtype.str}"
                        if isinstance(arr, np.ndarray)
                        else type(arr).__name__
                    )
                    raise ValueError(
                        f"optimizer state[{slot!r}][{name!r}] has {got}; the "
                        f"parameter has shape {p.shape}, dtype {p.dtype.str}"
                    )
                if not np.isfinite(arr).all():
                    raise ValueError(f"optimizer state[{slot!r}][{name!r}] holds NaN or inf")
                restored[slot][name] = np.array(arr, copy=True, order="C")
        return lr, weight_decay, step_count, decay, restored


class SGD(Optimizer):
    """SGD with (heavy-ball) momentum and coupled L2 weight decay:
    ``v = momentum · v + (g + λw)``, ``w -= lr · v``."""

    def __init__(self, params, lr=0.1, momentum=0.0, weight_decay=0.0, decay=None):
        super().__init__(params, lr, weight_decay, decay)
        self.momentum = v.non_negative_float(momentum, "momentum")
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.state = {"velocity": {}}

    def step(self, grads):
        buffers = self._check_grads(grads)
        self._check_lr()
        self.step_count += 1
        if buffers is not None:
            self._step_packed(*buffers)
            return
        grads = self._coupled(grads)
        for name, p in self.params.items():
            g = grads[name]
            if self.momentum:
                if name not in self.state["velocity"]:
                    self.state["velocity"][name] = np.zeros_like(p)
                vel = self.state["velocity"][name]
                vel *= self.momentum
                vel += g
                g = vel
            p -= self.lr * g

    def _step_packed(self, p, g):
        """The same step on the packed buffers: the same element-wise arithmetic."""
        if self.weight_decay:
            g = g.copy()
            for start, stop in self._decayed_ranges().tolist():
                g[start:stop] += self.weight_decay * p[start:stop]
        if self.momentum:
            velocity = self._packed_slot("velocity")
            velocity *= self.momentum
            velocity += g
            g = velocity
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with coupled L2 weight decay (the gradient gains λw)."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decay=None):
        super().__init__(params, lr, weight_decay, decay)
        b1, b2 = betas
        for name, b in (("betas[0]", b1), ("betas[1]", b2)):
            if not (0 <= float(b) < 1):
                raise ValueError(f"{name} must be in [0, 1), got {b!r}")
        self.betas = (float(b1), float(b2))
        self.eps = v.positive_float(eps, "eps")
        self.state = {"m": {}, "v": {}}

    def step(self, grads):
        buffers = self._check_grads(grads)
        self._check_lr()
        self.step_count += 1
        b1, b2 = self.betas
        bias1 = 1 - b1**self.step_count
        bias2 = 1 - b2**self.step_count
        # Bias correction folded into the step size and eps, so the kernel updates m, v and the
        # weights in one pass: lr * m_hat / (sqrt(v_hat) + eps) written without m_hat, v_hat.
        # Weight decay happens in the same pass: coupled L2 adds l2 * w to the gradient there,
        # decoupled decay scales the weights by `decay`.
        step_size = self.lr * math.sqrt(bias2) / bias1
        eps_hat = self.eps * math.sqrt(bias2)
        update = _ops.kernels().adam_update
        decay = 1 - self.lr * self.weight_decay if self.decoupled else 1.0
        l2 = 0.0 if self.decoupled else self.weight_decay
        if buffers is not None:  # one call over every parameter, decay on the decayed ranges
            params, gradients = buffers
            first, second = self._packed_slot("m"), self._packed_slot("v")
            update(
                params,
                gradients,
                first,
                second,
                step_size,
                b1,
                b2,
                eps_hat,
                decay,
                l2,
                self._decayed_ranges(),
            )
            return
        if not self.state["m"]:
            for name, p in self.params.items():
                self.state["m"][name] = np.zeros_like(p)
                self.state["v"][name] = np.zeros_like(p)
        moments_m, moments_v = self.state["m"], self.state["v"]
        decay_names = set(self.decay)
        for name, p in self.params.items():
            is_decayed = name in decay_names
            g = np.ascontiguousarray(grads[name])
            try:
                update(
                    p,
                    g,
                    moments_m[name],
                    moments_v[name],
                    step_size,
                    b1,
                    b2,
                    eps_hat,
                    decay if is_decayed else 1.0,
                    l2 if is_decayed else 0.0,
                )
            except (ValueError, TypeError) as exc:  # a moment that no longer fits its parameter
                raise ValueError(f"Adam step for params[{name!r}]: {exc}") from exc


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): ``w -= lr·λ·w`` each step,
    apart from the adaptive update; the loss carries no penalty."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, decay=None):
        super().__init__(params, lr, betas, eps, weight_decay, decay)


class NTASGD(SGD):
    """Non-monotonically triggered averaged SGD (NT-ASGD; Merity, Keskar & Socher 2017, Alg. 1).

    Plain SGD, ``w -= lr · (g + λw)``, until the validation loss stops improving: at check k
    (one per epoch, :meth:`record`) averaging starts when ``k > n`` and
    ``L_k > min(L_0, ..., L_{k-n-1})`` — the loss is worse than the best one seen before the last
    ``n = nonmono`` checks. From then on the optimizer keeps the running average of the iterates
    after the trigger, ``w̄ = (1/m) Σ_{i=1..m} w_i``, and that average is what evaluation, early
    stopping and the final model use (:meth:`evaluation_weights`); SGD itself goes on from the
    last iterate. Its whole state (the losses seen, the trigger step, the average) is in
    :meth:`state_dict`, so a resumed run continues exactly.
    """

    KIND = "nt-asgd"

    def __init__(self, params, lr=1.0, weight_decay=0.0, decay=None, nonmono=5):
        super().__init__(params, lr, 0.0, weight_decay, decay)
        self.nonmono = v.positive_int(nonmono, "nonmono")
        self.val_losses = []
        self.averaging_since = None  # step_count when averaging began, or None
        self.state["average"] = {}

    @property
    def averaging(self):
        return self.averaging_since is not None

    def step(self, grads):
        super().step(grads)
        if self.averaging:
            assert self.averaging_since is not None
            count = self.step_count - self.averaging_since  # 1 at the first averaged iterate
            params = packed_buffer(self.params)
            if params is not None:  # the same element-wise arithmetic on the packed buffers
                if count == 1:
                    self.state["average"] = self._layout.pack(self.params)
                else:
                    average = self._packed_slot("average")
                    average += (params - average) / count
                return
            average = self.state["average"]
            for name, p in self.params.items():
                if count == 1:
                    average[name] = p.copy()
                else:
                    average[name] += (p - average[name]) / count

    def record(self, val_loss):
        """Note an epoch's validation loss; returns True when it starts the averaging."""
        val_loss = float(val_loss)
        losses, n = self.val_losses, self.nonmono
        triggered = not self.averaging and len(losses) > n and val_loss > min(losses[:-n])
        if triggered:
            self.averaging_since = self.step_count
        losses.append(val_loss)
        return triggered

    @contextlib.contextmanager
    def evaluation_weights(self):
        """The averaged weights in the parameters for the length of the context (once there
        is an average), the SGD iterate back after it."""
        average = self.state["average"]
        if not average:
            yield
            return
        iterate = {name: p.copy() for name, p in self.params.items()}
        try:
            for name, p in self.params.items():
                p[...] = average[name]
            yield
        finally:
            for name, p in self.params.items():
                p[...] = iterate[name]

    def use_average(self):
        """Put the averaged weights into the parameters for good (the end of training)."""
        for name, p in self.params.items():
            if name in self.state["average"]:
                p[...] = self.state["average"][name]

    def state_dict(self):
        """The optimizer's state (its rate, decay, step count and slots) with the averaging's:
        the validation losses seen, ``nonmono`` and the step averaging began at."""
        state = super().state_dict()
        state.update(
            kind=self.KIND,
            nonmono=self.nonmono,
            val_losses=list(self.val_losses),
            averaging_since=self.averaging_since,
        )
        return state

    def check_state_dict(self, state):
        self._checked_averaging(state)
        super().check_state_dict(state)

    def load_state_dict(self, state):
        losses, since = self._checked_averaging(state)
        super().load_state_dict(state)
        self.val_losses = [float(x) for x in losses]
        self.averaging_since = since

    def _checked_averaging(self, state):
        """(validation losses, averaging_since) of an NT-ASGD state, or ValueError."""
        if not isinstance(state, dict) or state.get("kind") != self.KIND:
            kind = state.get("kind", "sgd, adam or adamw") if isinstance(state, dict) else None
            raise ValueError(
                f"optimizer state is not an NT-ASGD state (it is {kind!r}'s): a run "
                "cannot switch optimizers on resume"
            )
        nonmono, losses, since = (state.get("nonmono"), state.get("val_losses"), state.get("averaging_since"))
        if isinstance(nonmono, bool) or not isinstance(nonmono, int) or nonmono != self.nonmono:
            raise ValueError(f"optimizer state 'nonmono' is {nonmono!r}, this run's is {self.nonmono}")
        if not isinstance(losses, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in losses
        ):
            raise ValueError("optimizer state 'val_losses' must be a list of finite numbers")
        step_count = state.get("step_count")
        if since is not None and (
            isinstance(since, bool)
            or not isinstance(since, int)
            or not isinstance(step_count, int)
            or not 0 <= since <= step_count
        ):
            raise ValueError(
                f"optimizer state 'averaging_since' must be None or a step count <= step_count, got {since!r}"
            )
        slots = state.get("state")
        if (
            isinstance(slots, dict)
            and isinstance(slots.get("average"), dict)
            and bool(slots["average"])
            != (since is not None and isinstance(step_count, int) and step_count > since)
        ):
            raise ValueError(
                "optimizer state 'average' must be present exactly when averaging has taken a step"
            )
        return losses, since


# ----------------------------------------------------------------------------- schedules
def constant_lr(base_lr):
    """epoch -> base_lr."""
    return lambda epoch: base_lr


def cosine_lr(base_lr, total_epochs, warmup_epochs=0, min_lr=0.0):
    """Linear warm-up, then cosine decay from base_lr to min_lr over total_epochs."""

    def schedule(epoch):
        if epoch < warmup_epochs:
            return base_lr * (epoch + 1) / warmup_epochs
        progress = min(1.0, (epoch - warmup_epochs) / max(1, total_epochs - warmup_epochs))
        return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))

    return schedule


def step_lr(base_lr, step_size, gamma=0.5):
    """Multiply the rate by gamma every step_size epochs."""
    return lambda epoch: base_lr * gamma ** (epoch // step_size)
