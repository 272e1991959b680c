"""The one protocol every storage backend implements: ``stat`` and a ranged ``read``."""

from __future__ import annotations

from typing import Protocol

from .model import ObjectStat


class RangeBody(Protocol):
    """A streaming response body for one byte range."""

    def readinto(self, buffer: memoryview, /) -> int:
        """Fill ``buffer`` with the next bytes; 0 means the server sent no more."""
        ...

    def close(self) -> None: ...


class Backend(Protocol):
    """One object in one store.

    Implementations translate their SDK's errors in one place: ``NotFoundError``,
    ``AccessDeniedError``, ``ObjectChangedDuringRead`` (HTTP 412), ``TransientError``
    (anything a retry may fix) and ``PartdlError`` for the rest.
    """

    @property
    def source(self) -> str:
        """A stable identity for checkpoints and logs, such as ``oss://bucket/key``.

        It never carries credentials or a signed query string.
        """
        ...

    def stat(self) -> ObjectStat:
        """HEAD the object: size, ETag, Last-Modified, checksum, version."""
        ...

    def read(self, start: int, end: int, stat: ObjectStat) -> RangeBody:
        """GET bytes ``[start, end)`` of the version ``stat`` describes.

        The request is conditional (``If-Match`` on the ETag) and the answer is checked
        to be a 206 with exactly that ``Content-Range`` before it is returned.
        """
        ...
