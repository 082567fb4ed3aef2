"""Every parameter of a model in one contiguous buffer, and every gradient in another.

A model's ``params``, and the gradients its ``backward`` returns, are :class:`Packed` dicts:
name -> array as before, each array a view of its place in one 1-D buffer that a
:class:`Layout` lays out. Per batch, the optimizer step (SGD, Adam, AdamW, NT-ASGD's
average), the clipping norm, the L2 penalty and the gradients' finiteness check are then each
one compiled call over the whole buffer instead of one per parameter, and the backward kernels
write each layer's weight gradient straight into its place.

Each place starts on a 64-byte boundary. The padding between places is zero and stays zero:
no gradient reaches it, and an optimizer step leaves a zero weight with a zero gradient and
zero moments at zero.

A dict that is no longer packed — a parameter replaced by another array, gradients built by
hand — works everywhere as before: the same arithmetic, one array at a time. The per-array and
the packed paths give the same bits (the updates are element-wise; the norms are summed per
parameter, in the dict's order, either way).
"""

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from . import _ops

__all__ = ["Layout", "Packed", "squared_norms"]

#: Where each parameter's place starts: a multiple of this many bytes (a cache line, one
#: AVX-512 vector).
ALIGNMENT = 64


@dataclass(frozen=True)
class Layout:
    """Where each named array lives in a packed buffer: its shape and its first element."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    starts: tuple[int, ...]
    size: int  # elements of the buffer, padding included
    dtype: np.dtype

    @classmethod
    def of(cls, shapes: Mapping[str, tuple[int, ...]], dtype) -> "Layout":
        """The layout of arrays of these shapes, in this order, each place aligned."""
        dtype = np.dtype(dtype)
        step = max(1, ALIGNMENT // dtype.itemsize)
        starts, at = [], 0
        for shape in shapes.values():
            at = -(-at // step) * step
            starts.append(at)
            at += math.prod(shape)
        return cls(
            tuple(shapes), tuple(tuple(int(d) for d in s) for s in shapes.values()), tuple(starts), at, dtype
        )

    def stop(self, index: int) -> int:
        return self.starts[index] + math.prod(self.shapes[index])

    def ranges(self, names: Iterable[str] | None = None) -> np.ndarray:
        """The [start, stop) element ranges (k, 2) of ``names`` (all, by default), in that
        order: the ``ranges`` of the kernels' ``sums_of_squares`` and ``adam_update``."""
        return _ranges(self, tuple(self.names if names is None else names))

    def zeros(self) -> "Packed":
        """A new packed dict of zeros."""
        return Packed(self, np.zeros(self.size, self.dtype))

    def empty(self) -> "Packed":
        """A new packed dict whose places hold garbage, to be filled; the padding is zero. The
        buffer comes from the kernels' result memory: a gradient buffer freed at the last batch
        is reused, where a fresh one would fault in every page again."""
        buffer = _ops.kernels().new_buffer(self.size, self.dtype)
        at = 0
        for index, start in enumerate(self.starts):
            buffer[at:start] = 0
            at = self.stop(index)
        return Packed(self, buffer)

    def pack(self, arrays: Mapping[str, np.ndarray]) -> "Packed":
        """A new packed dict holding copies of ``arrays``' values (zeros for a name missing)."""
        packed = self.zeros()
        for name, place in packed.items():
            if name in arrays:
                place[...] = arrays[name]
        return packed


@functools.lru_cache(maxsize=256)
def _ranges(layout: Layout, names: tuple[str, ...]) -> np.ndarray:
    index = {name: k for k, name in enumerate(layout.names)}
    ranges = np.array([(layout.starts[index[n]], layout.stop(index[n])) for n in names], np.int64).reshape(
        len(names), 2
    )
    ranges.flags.writeable = False  # shared by every call with these names
    return ranges


class Packed(dict):
    """A dict name -> array whose arrays are views of one buffer (see the module docstring).
    It stays a plain dict to its users; :meth:`buffer` says whether it is still packed."""

    def __init__(self, layout: Layout, buffer: np.ndarray):
        views = {
            name: buffer[start : start + math.prod(shape)].reshape(shape)
            for name, shape, start in zip(layout.names, layout.shapes, layout.starts)
        }
        super().__init__(views)
        self.layout = layout
        self._buffer = buffer
        self._views = tuple(views.values())

    def buffer(self) -> np.ndarray | None:
        """The buffer, while every entry is still the view it was made with, in its order;
        None once one has been replaced, added or removed."""
        if len(self) != len(self._views):
            return None
        for value, view in zip(self.values(), self._views):
            if value is not view:
                return None
        return self._buffer

    def __reduce__(self):
        # A copy (pickle, deepcopy) gets a buffer of its own with views of it: the views of
        # the original would unpickle as separate arrays, no longer packed.
        if self.buffer() is None:
            return (dict, (dict(self),))
        return (_repack, (self.layout, dict(self)))

    def __copy__(self):
        return dict(self)  # a shallow copy shares the arrays, as a dict's does


def _repack(layout: Layout, arrays: Mapping[str, np.ndarray]) -> Packed:
    return layout.pack(arrays)


def packed_buffer(arrays) -> np.ndarray | None:
    """The buffer of a :class:`Packed` dict that is still packed, else None."""
    return arrays.buffer() if isinstance(arrays, Packed) else None


def same_buffers(first, second) -> tuple[np.ndarray, np.ndarray] | None:
    """The buffers of two dicts packed in one layout (parameters and their gradients), or None
    when either is not packed or their layouts differ."""
    a, b = packed_buffer(first), packed_buffer(second)
    if a is None or b is None or (first.layout is not second.layout and first.layout != second.layout):
        return None
    return a, b


def squared_norms(arrays: Mapping[str, np.ndarray], names: Iterable[str] | None = None) -> list[float]:
    """Σ x² of each array of ``names`` (all, by default), in that order, summed in float64: one
    compiled call when ``arrays`` is packed, one per array otherwise — the same values."""
    names = tuple(arrays) if names is None else tuple(names)
    buffer = packed_buffer(arrays)
    if buffer is not None and isinstance(arrays, Packed):
        return _ops.kernels().sums_of_squares(buffer, arrays.layout.ranges(names)).tolist()
    return [_ops.sum_of_squares(arrays[name]) for name in names]
