"""What a listing yields, and what a backend offers for trees of objects.

Plain values and protocols only: the backends implement these, the batch layer uses
them, neither imports the other's internals.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import time
from collections.abc import Iterator
from typing import NamedTuple, Protocol, runtime_checkable

from .backend import Backend, RangeBody
from .model import ObjectStat


class ListedObject(NamedTuple):
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


class PendingWhole(Protocol):
    """A whole-object GET that was written and whose answer was not read yet."""

    def fileno(self) -> int:
        """The socket its answer arrives on; -1 when the answer is already known
        (:meth:`answer` raises at once)."""
        ...

    def answer(self) -> tuple[ObjectStat, RangeBody]:
        """What :meth:`WholeObjectBackend.read_whole` returns (and raises)."""
        ...

    def close(self) -> None:
        """Give up on the answer (its connection is not reused)."""
        ...


@runtime_checkable
class PipelinedBackend(WholeObjectBackend, Protocol):
    """A whole-object backend whose GET can be written before its answer is read, so
    that one thread keeps several in flight (partdl's own clients)."""

    def begin_whole(self, etag: str | None) -> PendingWhole:
        """Write the GET :meth:`read_whole` sends; the answer is read later."""
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


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}

# Both directions of an HTTP date are on the path of every object of a tree (a listing
# gives each one's date, a GET's answer is read for the file's mtime): these do the
# IMF-fixdate that stores send by hand, at a fraction of email.utils' cost, which
# remains the reader of any other form.


def http_date(moment: float | datetime.datetime) -> str:
    if isinstance(moment, datetime.datetime):
        moment = moment.timestamp()
    t = time.gmtime(moment)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTH_NAMES[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


# Objects uploaded together share their second: a tree's dates repeat, and parsing
# one costs more than the rest of planning its object.
@functools.lru_cache(maxsize=1024)
def mtime_ns(last_modified: str | None) -> int | None:
    """An HTTP date as nanoseconds since the epoch, or None if it does not parse."""
    if not last_modified:
        return None
    fields = last_modified.split()  # "Sun, 06 Nov 1994 08:49:37 GMT"
    if len(fields) == 6 and fields[5] == "GMT" and fields[2] in _MONTHS:
        with contextlib.suppress(ValueError):
            hour, minute, second = map(int, fields[4].split(":"))
            moment = datetime.datetime(
                int(fields[3]),
                _MONTHS[fields[2]],
                int(fields[1]),
                hour,
                minute,
                second,
                tzinfo=datetime.UTC,
            )
            return int(moment.timestamp()) * 1_000_000_000
    import email.utils  # only for a date not in the IMF-fixdate form stores send

    try:
        moment = email.utils.parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp()) * 1_000_000_000
