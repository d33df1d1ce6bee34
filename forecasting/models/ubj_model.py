"""An XGBoost model's UBJSON (``save_raw("ubj")``) read in place: its typed arrays (a tree's
leaf values, hessian sums, children...) become NumPy views into the model's bytes, so a leaf
value is changed by writing into the array and the bytes load back as the changed model.

Why not the JSON: a large model's JSON becomes Python objects, a float object per number. At
59.2M rows (1,000 trees whose categorical splits list up to 3,049 categories) that was 682 MB of
text and a 15.2 GB peak (docs/scaling.md). Here nothing is copied: the Python objects are the
dicts and lists around the arrays, a few dozen per tree.

UBJSON: https://ubjson.org (XGBoost writes big-endian numbers, lengths as ``L`` int64, and
strongly typed arrays ``[$<type>#<count>`` for its numeric vectors).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SCALARS = {ord("i"): ">i1", ord("U"): ">u1", ord("I"): ">i2", ord("l"): ">i4",
            ord("L"): ">i8", ord("d"): ">f4", ord("D"): ">f8"}
_FIXED = {ord("Z"): None, ord("N"): None, ord("T"): True, ord("F"): False}


class UBJError(ValueError):
    """The bytes are not the UBJSON this reader understands (names the offset)."""


def load(buffer: bytearray) -> dict:
    """The document in ``buffer`` (a ``bytearray``, kept writable): objects as dicts, arrays as
    lists, typed numeric arrays as NumPy views into ``buffer``."""
    view = memoryview(buffer)
    value, end = _Reader(view).value(0)
    if end != len(buffer):
        raise UBJError(f"{len(buffer) - end} bytes after the document at offset {end}")
    return value


class _Reader:
    def __init__(self, view: memoryview):
        self.view = view

    def _marker(self, at: int) -> int:
        if at >= len(self.view):
            raise UBJError(f"the document ends at offset {at} inside a value")
        return self.view[at]

    def _number(self, marker: int, at: int) -> tuple[Any, int]:
        code = _SCALARS.get(marker)
        if code is None:
            raise UBJError(f"unknown UBJSON marker {chr(marker)!r} at offset {at - 1}")
        size = int(code[-1])
        value = np.frombuffer(self.view, dtype=code, count=1, offset=at)[0]
        return value.item(), at + size

    def _length(self, at: int) -> tuple[int, int]:
        n, at = self._number(self._marker(at), at + 1)
        if not isinstance(n, int) or n < 0:
            raise UBJError(f"bad length {n!r} before offset {at}")
        return n, at

    def _string(self, at: int) -> tuple[str, int]:
        n, at = self._length(at)
        return bytes(self.view[at:at + n]).decode("utf-8"), at + n

    def value(self, at: int) -> tuple[Any, int]:
        """The value whose marker is at ``at``, and the offset after it."""
        marker = self._marker(at)
        at += 1
        if marker == ord("{"):
            return self._object(at)
        if marker == ord("["):
            return self._array(at)
        if marker == ord("S") or marker == ord("H"):
            return self._string(at)
        if marker == ord("C"):
            return chr(self._marker(at)), at + 1
        if marker in _FIXED:
            return _FIXED[marker], at
        return self._number(marker, at)

    def _object(self, at: int) -> tuple[dict, int]:
        out: dict = {}
        while self._marker(at) != ord("}"):
            key, at = self._string(at)
            out[key], at = self.value(at)
        return out, at + 1

    def _array(self, at: int) -> tuple[Any, int]:
        typed = None
        if self._marker(at) == ord("$"):
            typed = self._marker(at + 1)
            at += 2
        if self._marker(at) == ord("#"):
            n, at = self._length(at + 1)
            if typed is None:
                items = []
                for _ in range(n):
                    item, at = self.value(at)
                    items.append(item)
                return items, at
            code = _SCALARS.get(typed)
            if code is None:
                raise UBJError(f"typed array of {chr(typed)!r} at offset {at}")
            size = int(code[-1])
            if at + n * size > len(self.view):
                raise UBJError(f"an array of {n} runs past the end at offset {at}")
            return np.frombuffer(self.view, dtype=code, count=n, offset=at), at + n * size
        if typed is not None:
            raise UBJError(f"a typed array without a count at offset {at}")
        items = []
        while self._marker(at) != ord("]"):
            item, at = self.value(at)
            items.append(item)
        return items, at + 1

