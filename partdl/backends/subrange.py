"""A byte range of an object, presented to the engine as an object of its own.

The engine plans, checkpoints and verifies whatever ``stat`` describes, so a range
needs no engine support: this wrapper reports the range's length as the size, puts
the range in ``source`` (the checkpoint identity, so a checkpoint for bytes 0-99
never resumes a download of bytes 100-199), and shifts every read by the range's
start. The server's whole-object checksum does not apply to a slice, so none is
reported; each part is still checksummed and its ranged GET still sends If-Match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..backend import Backend, RangeBody
from ..errors import InvalidArgumentError
from ..model import ObjectStat

_RANGE = re.compile(r"(\d+)-(\d*)")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive, as in HTTP; ``end=None`` runs to the end."""

    start: int
    end: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0:
            raise InvalidArgumentError(f"a range cannot start before byte 0, got {self.start}")
        if self.end is not None and self.end < self.start:
            raise InvalidArgumentError(f"range {self} ends before it starts")

    def __str__(self) -> str:
        return f"{self.start}-{'' if self.end is None else self.end}"

    @classmethod
    def parse(cls, text: str) -> ByteRange:
        """``START-END`` (inclusive) or ``START-`` (to the end of the object)."""
        match = _RANGE.fullmatch(text.strip())
        if match is None:
            raise InvalidArgumentError(f"expected START-END or START- in bytes, got {text!r}")
        start, end = match.groups()
        return cls(int(start), int(end) if end else None)

    def bounds(self, size: int) -> tuple[int, int]:
        """``[start, end)`` within an object of ``size`` bytes; the end is clamped as in HTTP."""
        if self.start >= size:
            raise InvalidArgumentError(
                f"range {self} starts beyond the end of the {size:,}-byte object"
            )
        last = size - 1 if self.end is None else min(self.end, size - 1)
        return self.start, last + 1


def narrowed(backend: Backend, byte_range: ByteRange | tuple[int, int | None] | None) -> Backend:
    """``backend`` itself, or the slice ``byte_range`` (inclusive, as in HTTP) of it."""
    if byte_range is None:
        return backend
    if not isinstance(byte_range, ByteRange):
        byte_range = ByteRange(*byte_range)
    return SubRangeBackend(backend, byte_range)


class SubRangeBackend:
    """The bytes ``byte_range`` selects of the object ``inner`` names."""

    def __init__(self, inner: Backend, byte_range: ByteRange) -> None:
        self._inner = inner
        self._range = byte_range
        # Each slice stat handed to the engine, mapped to the whole-object stat and
        # offset its reads need. The engine calls stat() a handful of times at most.
        self._whole: dict[ObjectStat, tuple[ObjectStat, int]] = {}

    @property
    def source(self) -> str:
        return f"bytes {self._range} of {self._inner.source}"

    def stat(self) -> ObjectStat:
        whole = self._inner.stat()
        if not whole.ranged:
            raise InvalidArgumentError(
                f"{self._inner.source} ignores byte ranges, so it cannot serve range {self._range}"
            )
        start, end = self._range.bounds(whole.size)
        part = ObjectStat(
            size=end - start,
            etag=whole.etag,
            last_modified=whole.last_modified,
            checksum=None,
            version_id=whole.version_id,
        )
        self._whole[part] = (whole, start)
        return part

    def read(self, start: int, end: int, stat: ObjectStat) -> RangeBody:
        whole, offset = self._whole[stat]
        return self._inner.read(offset + start, offset + end, whole)
