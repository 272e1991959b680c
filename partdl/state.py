"""What a tree download remembers for the next run: ``<directory>/.partdl/``.

``state.sqlite`` holds one row per finished object: its source, ETag, size and the
mtime partdl gave the file. A later run skips an object only if the listing shows
the same ETag and size and the file on disk still has that size and mtime, so an
object overwritten since (even with the same size within the same second) is fetched
again, and so is a file someone edited locally. SQLite in WAL mode with
``synchronous=NORMAL`` commits each row without an fsync and never loses a committed
one when the process dies (with ``fsync=False``, ``synchronous=OFF``: no fsync at
all, like the files); only the orchestrator thread touches the connection.

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
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Recorded:
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
        try:
            if read_only:
                if os.path.isfile(self._path):
                    self._db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True)
                return
            os.makedirs(os.path.join(state_dir(directory), "checkpoints"), exist_ok=True)
            self._db = sqlite3.connect(self._path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'NORMAL' if durable else 'OFF'}")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LocalFileError(0, f"cannot open the state of {directory}: {exc}") from exc

    def lookup(self, relative: str) -> Recorded | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute(
                "SELECT source, etag, size, mtime_ns FROM objects WHERE path = ?", (relative,)
            ).fetchone()
        except sqlite3.Error as exc:
            logger.warning("ignoring the state of %s: %s", self.directory, exc)
            return None
        return None if row is None else Recorded(*row)

    def record(self, relative: str, entry: Recorded) -> None:
        if self._db is None:
            return
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
                (relative, entry.source, entry.etag, entry.size, entry.mtime_ns),
            )
        except sqlite3.Error as exc:
            raise LocalFileError(0, f"cannot record {relative} in the state: {exc}") from exc

    def forget(self, relative: str) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("DELETE FROM objects WHERE path = ?", (relative,))

    def close(self) -> None:
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
