"""Group commit: many finished temp files made durable and renamed with one flush each.

On an ordinary disk an ``fsync`` of a small file, then of its folder, takes about as
long as fetching the file did (10-20 ms against 20 ms for 1 MiB at 50 MiB/s), and a
serving loop that waits for it fetches nothing meanwhile. So a small object's loop
hands its verified temp file here and goes on to the next GET. One committer thread
takes whatever has accumulated, flushes it all at once (``syncfs`` of each file
system involved, where Linux has it; else an ``fsync`` per file), renames each file
into place, flushes the renames (``syncfs`` again, else an ``fsync`` of each folder),
and only then tells each file's owner it is in place: the order of the single-file
engine (data durable, then the rename, then the folder), for a batch at the price
of one.

At most ``limit`` files wait (each holds its descriptor), so a disk slower than the
network holds back the loops instead of growing without bound.

With ``durable=False`` (``fsync=False``) nothing is flushed, but the renames still
happen here: a loop that renames inline waits on the folder's lock with every other
loop renaming into it, and fetches nothing meanwhile. Without a flush to wait on,
the thread gathers files for up to ``GATHER`` seconds (or ``GATHER_COUNT`` files)
before it renames them, so that it and the orchestrator wake once per batch rather
than once per file, as they do while a flush runs.

A durable batch gathers too, for ``GATHER_DURABLE`` seconds: without it, 2,000 files
of 64 KiB went in some 1,100 batches of two, each ``syncfs`` a journal commit that the
loop's next file creations waited behind; gathered, that tree took 0.94 s against
1.18 s (six alternating runs, into fresh folders), at a cost to the mixed tree under
the per-connection cap of 3.76 against 3.62 s (four runs), whose files come every few
milliseconds and whose last batch waits out its window. (Before small objects went
32 to a loop, gathering for 20 ms had only cost that tree: 4.75 against 4.52 s.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import cache
from typing import NamedTuple

from . import files
from .errors import PartdlError

logger = logging.getLogger("partdl")

DEFAULT_LIMIT = 256
GATHER = 0.02
GATHER_DURABLE = 0.01
GATHER_COUNT = 64


class Finished(NamedTuple):
    """One verified temp file (its descriptor still open) that belongs at ``destination``.

    ``done`` is called once, on the committer thread: with None when the file is in
    place and durable, with the error otherwise (the temp file is then removed).
    """

    fd: int
    temp: str
    destination: str
    done: Callable[[PartdlError | None], None]


@cache
def _syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)`` (not in the os module), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # 3 ms to import: only a durable run needs it

    try:
        # The process's own symbols include the C library's: no search for the file.
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def flush(fds: list[int]) -> None:
    """Make the data of every file in ``fds`` durable: one ``syncfs`` per file system."""
    syncfs = _syncfs()
    if syncfs is None:
        for fd in fds:
            os.fsync(fd)
        return
    devices: dict[int, int] = {}
    for fd in fds:
        devices.setdefault(os.fstat(fd).st_dev, fd)
    for fd in devices.values():
        if syncfs(fd) != 0:
            import ctypes

            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))


def flush_folders(folders: set[str]) -> None:
    """Make the renames into ``folders`` durable: one ``syncfs`` per file system, else
    an ``fsync`` of each folder.

    A tree's batch lands in many folders, and on ext4 each folder's fsync asks the
    disk to flush its cache again, though the first one already committed every
    rename; one ``syncfs`` commits them all with a single flush. As for a folder's
    fsync, a refusal is harmless (some file systems cannot) and only logged.
    """
    syncfs = _syncfs()
    if syncfs is None:
        for folder in folders:
            files.fsync_directory(folder)
        return
    devices: set[int] = set()
    for folder in folders:
        try:
            device = os.stat(folder).st_dev
            if device in devices:
                continue
            devices.add(device)
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            continue
        try:
            if syncfs(fd) != 0:
                logger.warning("could not flush the file system of %s", folder)
        finally:
            os.close(fd)


class Committer:
    """The one thread that puts small files into place, a batch at a time."""

    def __init__(self, *, limit: int = DEFAULT_LIMIT, durable: bool = True) -> None:
        self._limit = limit
        self._durable = durable
        self._pending: deque[Finished] = deque()
        self._lock = threading.Condition()
        self._closing = False
        self._discard = False
        self._thread = threading.Thread(target=self._run, name="partdl-commit", daemon=True)
        self._thread.start()

    def submit(self, item: Finished) -> None:
        """Queue ``item``; waits while ``limit`` files are already waiting."""
        with self._lock:
            while len(self._pending) >= self._limit and not self._closing:
                self._lock.wait()
            if self._closing:
                _discard(item, PartdlError("the download stopped before the file was in place"))
                return
            self._pending.append(item)
            # The thread wakes for a first file, or for a batch it is gathering.
            if len(self._pending) in (1, GATHER_COUNT):
                self._lock.notify_all()

    def close(self, *, discard: bool = False) -> None:
        """Finish every queued file (or, with ``discard``, remove them) and stop the thread."""
        with self._lock:
            self._closing = True
            self._discard = self._discard or discard
            self._lock.notify_all()
        self._thread.join()

    def _take(self) -> list[Finished] | None:
        with self._lock:
            while not self._pending and not self._closing:
                self._lock.wait()
            self._gather(GATHER_DURABLE if self._durable else GATHER)
            if not self._pending:
                return None
            batch = list(self._pending)
            self._pending.clear()
            self._lock.notify_all()
            if self._discard:
                for item in batch:
                    _discard(item, PartdlError("the download stopped before the file was in place"))
                return []
            return batch

    def _gather(self, window: float) -> None:
        """Wait (holding the condition) for a batch: ``GATHER_COUNT`` files, ``window``
        seconds after the first, or the end."""
        deadline = time.monotonic() + window
        while len(self._pending) < GATHER_COUNT and not self._closing:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._lock.wait(left)

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            if batch:
                _commit(batch, durable=self._durable)


def _commit(batch: list[Finished], *, durable: bool) -> None:
    try:
        if durable:
            flush([item.fd for item in batch])
    except OSError as exc:
        for item in batch:
            _discard(item, files.local_error(exc, item.temp, "flush"))
        return
    if durable:  # on disk now: their pages can serve the next files (see files.Writeback)
        for item in batch:
            files.release_cached(item.fd)
    placed: list[Finished] = []
    for item in batch:
        os.close(item.fd)
        try:
            files.move_into_place(item.temp, item.destination)
        except PartdlError as exc:
            item.done(exc)
            continue
        placed.append(item)
    if durable:
        flush_folders({os.path.dirname(item.destination) for item in placed})
    for item in placed:
        item.done(None)


def _discard(item: Finished, error: PartdlError) -> None:
    with contextlib.suppress(OSError):
        os.close(item.fd)
    files.remove_quietly(item.temp)
    item.done(error)
