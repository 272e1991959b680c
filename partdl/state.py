"""What a tree download remembers for the next run: ``<directory>/.partdl/``.

``state.sqlite`` holds one row per finished object: its source, ETag, size and the
mtime partdl gave the file. A later run skips an object only if the listing shows
the same ETag and size and the file on disk still has that size and mtime, so an
object overwritten since (even with the same size within the same second) is fetched
again, and so is a file someone edited locally. Only the orchestrator thread touches
the connection.

Rows are written in groups: :meth:`TreeState.record` queues a row once its file is
in place (renamed, and fsynced unless ``fsync=False``), and :meth:`TreeState.flush`
writes every queued row with one statement. The batch flushes when
:data:`FLUSH_ROWS` rows wait, when the oldest has waited :data:`FLUSH_INTERVAL`,
when a tick passes with no object finishing, and always at the end, on an error
and on close. SQLite in WAL mode with ``synchronous=NORMAL`` never loses a written
row when the process dies (with ``fsync=False``, ``synchronous=OFF``: no fsync at
all, like the files). A process killed before a flush loses only the rows still
queued: those files are complete, but the rerun does not know them and fetches them
again. A row never names a file that is not in place.

Lookups go a chunk of paths at a time (:meth:`TreeState.lookup_many`), and not at
all when the table was empty as the run began: a first run, or one after a run that
finished nothing, asks the database nothing per object.

The same folder holds the checkpoints of large objects being resumed
(``checkpoints/<digest>.dcp``) and the tree's lock; nothing else is added to the tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Sequence
from typing import NamedTuple

from . import files
from .errors import DownloadLockedError, LocalFileError
from .keys import STATE_DIR
from .listing import same_etag

logger = logging.getLogger("partdl")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    path TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    etag TEXT,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
) WITHOUT ROWID
"""
# Rows per INSERT and paths per SELECT: far below SQLite's oldest bound of 999
# variables per statement, and large enough that a statement per group is cheap.
_ROWS_PER_STATEMENT = 128
LOOKUP_CHUNK = 256
"""Paths looked up at once: planning reads this many entries ahead when it looks."""
FLUSH_ROWS = 256
"""Queued rows that make the batch write them at once."""
FLUSH_INTERVAL = 0.1
"""Seconds the oldest queued row may wait, while objects keep finishing."""


class Recorded(NamedTuple):
    """One row of the state: what partdl put at a path, and the mtime it gave the file."""

    source: str
    etag: str | None
    size: int
    mtime_ns: int


def state_dir(directory: str) -> str:
    return os.path.join(directory, STATE_DIR)


def checkpoint_path(directory: str, relative: str) -> str:
    """Where the checkpoint of the large object at ``relative`` lives between runs."""
    digest = hashlib.sha256(relative.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(state_dir(directory), "checkpoints", f"{digest}.dcp")


class TreeState:
    """The state database of one destination directory (absent until first written)."""

    def __init__(self, directory: str, *, read_only: bool = False, durable: bool = True) -> None:
        self.directory = directory
        self._path = os.path.join(state_dir(directory), "state.sqlite")
        self._db: sqlite3.Connection | None = None
        self._queued: list[tuple[str, str, str | None, int, int]] = []
        self._queued_since = 0.0
        self._empty = True
        try:
            if read_only:
                if os.path.isfile(self._path):
                    self._db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True)
            else:
                os.makedirs(os.path.join(state_dir(directory), "checkpoints"), exist_ok=True)
                self._db = sqlite3.connect(self._path, isolation_level=None)
                # synchronous first: switching a new database to WAL writes its header,
                # which at the default (FULL) fdatasyncs it, its journal and the folder
                # four times, though fsync=False promises that nothing is flushed.
                self._db.execute(f"PRAGMA synchronous={'NORMAL' if durable else 'OFF'}")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LocalFileError(0, f"cannot open the state of {directory}: {exc}") from exc
        self._empty = self._db is None or self._is_empty(self._db)

    def _is_empty(self, db: sqlite3.Connection) -> bool:
        # Each path is planned once per run (the claims refuse a second key for it), so
        # rows this run writes are never looked up: empty at the start means empty.
        try:
            return db.execute("SELECT 1 FROM objects LIMIT 1").fetchone() is None
        except sqlite3.Error as exc:
            logger.warning("ignoring the state of %s: %s", self.directory, exc)
            return True

    @property
    def empty(self) -> bool:
        """Whether the table held no row as the run began: every lookup finds nothing."""
        return self._empty

    def lookup(self, relative: str) -> Recorded | None:
        return self.lookup_many((relative,)).get(relative)

    def lookup_many(self, relatives: Sequence[str]) -> dict[str, Recorded]:
        """The rows of those of ``relatives`` that have one, by path; one query per chunk."""
        if self._db is None or self._empty or not relatives:
            return {}
        found: dict[str, Recorded] = {}
        try:
            for start in range(0, len(relatives), LOOKUP_CHUNK):
                chunk = relatives[start : start + LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT path, source, etag, size, mtime_ns FROM objects "
                    f"WHERE path IN ({marks})",
                    chunk,
                ).fetchall()
                for path, *values in rows:
                    found[path] = Recorded(*values)
        except sqlite3.Error as exc:
            logger.warning("ignoring the state of %s: %s", self.directory, exc)
            return {}
        return found

    def record(self, relative: str, entry: Recorded) -> None:
        """Queue the row of a finished object; only once its file is in place."""
        if self._db is None:
            return
        if not self._queued:
            self._queued_since = time.monotonic()
        self._queued.append((relative, entry.source, entry.etag, entry.size, entry.mtime_ns))
        if len(self._queued) >= FLUSH_ROWS:
            self.flush()

    @property
    def queued(self) -> int:
        return len(self._queued)

    def overdue(self, now: float) -> bool:
        """Whether the oldest queued row has waited :data:`FLUSH_INTERVAL` or longer."""
        return bool(self._queued) and now - self._queued_since >= FLUSH_INTERVAL

    def flush(self) -> None:
        """Write every queued row: one statement per :data:`_ROWS_PER_STATEMENT` rows."""
        rows, self._queued = self._queued, []
        if self._db is None or not rows:
            return
        try:
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                group = rows[start : start + _ROWS_PER_STATEMENT]
                values = ",".join(["(?,?,?,?,?)"] * len(group))
                self._db.execute(
                    f"INSERT OR REPLACE INTO objects VALUES {values}",
                    [value for row in group for value in row],
                )
        except sqlite3.Error as exc:
            raise LocalFileError(
                0,
                f"cannot record finished objects in the state of {self.directory} "
                f"({len(rows)} not recorded): {exc}",
            ) from exc

    def close(self) -> None:
        """Write what is still queued (a run stopped by an error) and close.

        A run that ends well has flushed already, and raised if that failed; here
        another error is on its way, which a failing write must not replace.
        """
        try:
            self.flush()
        except LocalFileError as exc:
            logger.warning("%s; the rerun fetches those objects again", exc)
        if self._db is not None:
            self._db.close()
            self._db = None
            # No checkpoint left: the folder goes too, so a finished tree holds only the state.
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(state_dir(self.directory), "checkpoints"))


def unchanged(
    recorded: Recorded | None, source: str, etag: str | None, size: int, path: str
) -> bool:
    """Whether the file at ``path`` is the finished download of this version."""
    if recorded is None or recorded.source != source or recorded.size != size:
        return False
    if not same_etag(recorded.etag, etag):
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_size == size
        and info.st_mtime_ns == recorded.mtime_ns
    )


class TreeLock:
    """One partdl at a time per destination directory: ``.partdl/tree.partdl.lock``."""

    def __init__(self, directory: str) -> None:
        self._lock = files.DestinationLock(os.path.join(state_dir(directory), "tree"))
        self._directory = directory

    def __enter__(self) -> TreeLock:
        try:
            self._lock.__enter__()
        except DownloadLockedError:
            raise DownloadLockedError(
                f"another partdl process is downloading into {self._directory}"
            ) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.__exit__(*exc_info)
