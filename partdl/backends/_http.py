"""Checks every HTTP backend applies to a ranged answer."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..crc import ChecksumAlgorithm
from ..errors import (
    AccessDeniedError,
    NotFoundError,
    ObjectChangedDuringRead,
    PartdlError,
    TransientError,
)
from ..model import Checksum, ObjectStat

_CONTENT_RANGE = re.compile(r"bytes\s+(?:\d+-\d+|\*)/(\d+|\*)", re.IGNORECASE)


def body_failure(exc: BaseException, stall_timeout: float | None) -> TransientError:
    """What a failed read of a body becomes: a stall (the read timed out) or a broken
    connection, both retried by resuming the part at its first missing byte."""
    if isinstance(exc, TimeoutError):
        limit = f"{stall_timeout:g} s" if stall_timeout is not None else "the read timeout"
        return TransientError(f"the connection stalled: no data for {limit}")
    return TransientError(f"connection failed mid-body: {exc!r}")


def content_length(headers: Mapping[str, str]) -> int | None:
    """An answer's ``Content-Length``; None when absent or not a number."""
    value = headers.get("Content-Length") or ""
    return int(value) if value.isdigit() else None


def oss_checksum(headers: Mapping[str, str]) -> Checksum | None:
    """The whole-object CRC-64 an OSS answer publishes (``x-oss-hash-crc64ecma``)."""
    value = headers.get("x-oss-hash-crc64ecma") or ""
    return Checksum(ChecksumAlgorithm.CRC64XZ, int(value)) if value.isdigit() else None


def oss_stat(headers: Mapping[str, str], size: int, version_id: str | None) -> ObjectStat:
    """What an OSS HEAD or whole-object GET pins: ``size``, and the answer's ETag,
    Last-Modified, CRC-64 and version id (``version_id`` when it names none)."""
    return ObjectStat(
        size=size,
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
        checksum=oss_checksum(headers),
        version_id=headers.get("x-oss-version-id") or version_id,
    )


def content_range(start: int, end: int, size: int) -> str:
    return f"bytes {start}-{end - 1}/{size}"


def content_range_size(value: str | None) -> int | None:
    """The complete length in a ``Content-Range`` header; None when absent or ``*``."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None or match.group(1) == "*":
        return None
    return int(match.group(1))


def _opaque(etag: str) -> str:
    """An ETag without its weak marker and quotes, so formatting alone never differs."""
    value = etag.strip()
    return (value[2:] if value[:2] in ("W/", "w/") else value).strip('"')


def _same_time(answer: str, pinned: str) -> bool:
    if answer.strip() == pinned.strip():
        return True  # the usual case, without parsing two dates per answer
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(answer) == parsedate_to_datetime(pinned)
    except (TypeError, ValueError):
        return answer.strip() == pinned.strip()


def check_same_object(headers: Mapping[str, str], stat: ObjectStat) -> None:
    """Insist that an answer describes the version of the object ``stat`` pinned.

    A server (or cache, or gateway) that ignores ``If-Match`` serves whatever version
    it holds now, and one of the same size passes every range check: only the
    answer's own ``ETag``, ``Last-Modified`` and version id can tell. Each is compared
    when both the HEAD and the answer carry it. A mismatch is the object changing,
    so the engine starts over on the new version instead of mixing the two.
    """
    etag = headers.get("ETag")
    if stat.etag and etag and _opaque(etag) != _opaque(stat.etag):
        raise ObjectChangedDuringRead(f"the ETag is now {etag}, not {stat.etag}")
    modified = headers.get("Last-Modified")
    if stat.last_modified and modified and not _same_time(modified, stat.last_modified):
        raise ObjectChangedDuringRead(
            f"Last-Modified is now {modified!r}, not {stat.last_modified!r}"
        )
    version = headers.get("x-oss-version-id") or headers.get("x-amz-version-id")
    if stat.version_id and version and version != stat.version_id:
        raise ObjectChangedDuringRead(f"the version is now {version}, not {stat.version_id}")


def check_partial_response(
    status: int, headers: Mapping[str, str], start: int, end: int, stat: ObjectStat
) -> None:
    """Insist on a 206 for exactly ``[start, end)`` of the version ``stat`` pinned.

    The answer's identity is checked first (:func:`check_same_object`). A wrong answer
    is then treated as transient: a misbehaving proxy or cache in the path is the
    usual cause, and the retry policy bounds how often it is tried. The one exception
    is a ``Content-Range`` whose total length is not the HEAD's size: that is the
    object itself changing (on a server that ignores ``If-Match``), so it is an
    :class:`ObjectChangedDuringRead` and the engine starts over on the new version.
    """
    if status in (200, 206):
        check_same_object(headers, stat)
    size = stat.size
    expected = content_range(start, end, size)
    if status != 206:
        raise TransientError(f"expected HTTP 206 for {expected}, got {status}")
    got = headers.get("Content-Range")
    total = content_range_size(got)
    if total is not None and total != size:
        raise ObjectChangedDuringRead(
            f"the object is now {total} bytes long, not {size} (Content-Range {got!r})"
        )
    if got != expected:
        raise TransientError(f"expected Content-Range {expected!r}, got {got!r}")
    length = headers.get("Content-Length")
    if length is not None and length != str(end - start):
        raise TransientError(f"expected Content-Length {end - start}, got {length}")


# Error codes S3-style stores send, for statuses that do not say it all.
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound"})
_DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)
_RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    }
)


def error_class(status: int, code: str = "") -> type[PartdlError]:
    """The partdl error for an HTTP error ``status`` and the store's error ``code``.

    A 416 means the object is shorter than its HEAD said: it changed, like a 412.
    S3 answers 403 ``InvalidObjectState`` for archived objects, which is no
    permission problem, so the code is looked at before the status.
    """
    if code == "InvalidObjectState":
        return PartdlError
    if status in (412, 416) or code in ("PreconditionFailed", "InvalidRange"):
        return ObjectChangedDuringRead
    if status in (404, 410) or code in _NOT_FOUND_CODES:
        return NotFoundError
    if status in (401, 403) or code in _DENIED_CODES:
        return AccessDeniedError
    if status in (408, 429) or status >= 500 or code in _RETRYABLE_CODES:
        return TransientError
    return PartdlError
