"""One protocol for everything a checkpoint restores.

A stateful part — the model, the optimizer, the early-stopping monitor, the learning-rate
schedule, a random generator, the history — has:

* ``state_dict()``: its state, as arrays and JSON-able values;
* ``check_state_dict(state)``: raises ValueError (or TypeError) naming what in ``state`` does not
  fit, and changes nothing;
* ``load_state_dict(state)``: checks, then takes the state.

:func:`restore` checks every part's state before it loads any, so a checkpoint that fails
anywhere leaves the whole run as it was.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

try:  # Python >= 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment]

__all__ = ["Stateful", "GeneratorState", "restore"]


class Stateful(Protocol):
    def state_dict(self) -> Any: ...

    def check_state_dict(self, state: Any) -> None: ...

    def load_state_dict(self, state: Any) -> None: ...


class GeneratorState:
    """A ``np.random.Generator``'s bit-generator state as a stateful part: a state is tried on a
    fresh bit generator of the same kind before the generator takes it."""

    def __init__(self, generator: np.random.Generator):
        self.generator = generator

    def state_dict(self):
        return self.generator.bit_generator.state

    def check_state_dict(self, state):
        scratch = type(self.generator.bit_generator)()
        try:
            scratch.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise ValueError(f"not a {type(scratch).__name__} state ({exc})") from exc

    def load_state_dict(self, state):
        self.check_state_dict(state)
        self.generator.bit_generator.state = state


class Bound:
    """A part whose check and load need one more argument (the monitor needs the model)."""

    def __init__(self, part, **kwargs):
        self.part, self.kwargs = part, kwargs

    def state_dict(self):
        return self.part.state_dict()

    def check_state_dict(self, state):
        self.part.check_state_dict(state, **self.kwargs)

    def load_state_dict(self, state):
        self.part.load_state_dict(state, **self.kwargs)


def restore(parts: Mapping[str, tuple[Any, Any]]) -> None:
    """``parts``: name -> (stateful part, its state). Every state is checked first; only when
    all fit is each loaded. Raises ValueError prefixed with the failing part's name."""
    for name, (part, state) in parts.items():
        try:
            part.check_state_dict(state)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}: {exc}") from exc
    for part, state in parts.values():
        part.load_state_dict(state)
