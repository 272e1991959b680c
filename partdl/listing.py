"""What a listing yields, and what a backend offers for trees of objects.

Plain values and protocols only: the backends implement these, the batch layer uses
them, neither imports the other's internals.
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from .backend import Backend, RangeBody
from .model import ObjectStat


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One key of a listing: enough to fetch a small object with one GET and no HEAD."""

    key: str
    size: int
    etag: str | None
    """Quoted, as a HEAD sends it, whatever the SDK's listing did to it."""
    last_modified: str | None
    """An HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``), as in :class:`ObjectStat`."""


class WholeObjectBackend(Backend, Protocol):
    """A backend that can also GET a whole object and tell its stat from that answer."""

    def read_whole(self, etag: str | None) -> tuple[ObjectStat, RangeBody]:
        """GET the whole object (``If-Match: etag`` when given).

        The stat comes from the response's own headers: size, ETag, Last-Modified and
        the whole-object checksum. A 412 raises ObjectChangedDuringRead.
        """
        ...


class BucketBackend(WholeObjectBackend, Protocol):
    """A backend for one key that can list its bucket and reach its other keys."""

    def for_key(self, key: str) -> BucketBackend:
        """The backend for ``key`` in the same bucket, sharing the connection pool."""
        ...

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Every object under ``prefix``, page by page as the caller iterates."""
        ...


def quoted_etag(etag: str | None) -> str | None:
    """An ETag as a HEAD sends it: oss2's listing strips the quotes."""
    if not etag:
        return None
    if etag.startswith(('"', "W/")):
        return etag
    return f'"{etag}"'


def same_etag(a: str | None, b: str | None) -> bool:
    def bare(etag: str | None) -> str | None:
        return etag.removeprefix("W/").strip('"') if etag else None

    return bare(a) is not None and bare(a) == bare(b)


def http_date(moment: float | datetime.datetime) -> str:
    if isinstance(moment, datetime.datetime):
        moment = moment.timestamp()
    return email.utils.formatdate(moment, usegmt=True)


def mtime_ns(last_modified: str | None) -> int | None:
    """An HTTP date as nanoseconds since the epoch, or None if it does not parse."""
    if not last_modified:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp()) * 1_000_000_000
