"""The exception hierarchy: one root, a few meaningful branches.

Backends translate their SDK's errors into these in one place each, so the engine
and callers never see an ``oss2`` or ``botocore`` exception type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .batch import BatchResult


class PartdlError(Exception):
    """Root of every error partdl raises on purpose."""


class InvalidArgumentError(PartdlError, ValueError):
    """An argument is out of range or inconsistent; raised before any request."""


class NotFoundError(PartdlError):
    """The object (or the bucket, or the version) does not exist."""


class AccessDeniedError(PartdlError):
    """The credentials are not allowed to read the object."""


class ObjectChangedError(PartdlError):
    """The object kept changing while it was downloaded (bounded restarts exhausted)."""


class IntegrityError(PartdlError):
    """The downloaded bytes do not match the checksum the server published."""


class TransferError(PartdlError):
    """A network or server failure that outlived the retry policy.

    The checkpoint (when enabled) is kept: running the same download again resumes.
    """


class LocalFileError(PartdlError, OSError):
    """The destination, temp or checkpoint file could not be written (disk full, ...)."""


class DownloadLockedError(PartdlError):
    """Another partdl process is downloading to the same destination."""


class DownloadInterruptedError(PartdlError):
    """The caller stopped the download through its :class:`Control`."""


class DownloadPausedError(DownloadInterruptedError):
    """Paused: the checkpoint is kept and the same call resumes."""


class DownloadCancelledError(DownloadInterruptedError):
    """Cancelled: the temp file and the checkpoint are gone."""


class TransientError(PartdlError):
    """A failure a retry may fix: resets, timeouts, short bodies, 5xx, 429, SlowDown.

    Backends raise it; the engine retries it under the :class:`RetryPolicy` and turns
    the last one into a :class:`TransferError`.
    """


class ObjectChangedDuringRead(PartdlError):
    """A single ranged GET was refused by ``If-Match`` (HTTP 412): the ETag moved.

    A signal from a backend (its own or yours) to the engine, which restarts from scratch.
    """


class UnknownLength(PartdlError):
    """A backend's answer says no length: the object cannot be planned in parts.

    Internal: a small object of a batch then goes the engine's way (which may find
    ranges), and one URL alone is read as one stream (``engine.stream_download``).
    """


class UnsafeKeyError(InvalidArgumentError):
    """A key cannot be a file under the destination directory (``..``, NUL, a name too
    long, a file that another key needs as a folder...). Only that object fails."""


class PartialDownloadError(PartdlError):
    """Some objects of a batch failed; every other object finished first.

    ``result`` is the :class:`~partdl.batch.BatchResult`: what was downloaded, skipped,
    and the error of each object that failed.
    """

    def __init__(self, message: str, result: BatchResult) -> None:
        super().__init__(message)
        self.result = result
