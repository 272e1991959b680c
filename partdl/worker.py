"""What runs on the pool's threads: fetch one range of a part, or verify one part on disk.

A worker shares with the rest only the :class:`Progress` counter, its job's stop
event and the :class:`Span` it fills, whose methods take the scheduler's lock;
results go back as CRCs and :class:`PartDone` values.
"""

from __future__ import annotations

import logging
import mmap
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .backend import Backend
from .crc import Updater
from .errors import TransferError, TransientError
from .files import local_error
from .model import ObjectStat
from .plan import Part
from .retry import RetryPolicy

logger = logging.getLogger("partdl")


class Stopped(Exception):
    """Raised on a worker thread when the orchestrator asked every worker to stop."""


@dataclass(frozen=True, slots=True)
class PartDone:
    index: int
    crc: int
    fetched: bool


class Progress:
    """Bytes in place so far: the one counter workers update, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self, count: int) -> None:
        with self._lock:
            self._value += count

    def reset(self, value: int = 0) -> None:
        with self._lock:
            self._value = value

    @property
    def value(self) -> int:
        return self._value


class Attempts:
    """The failures in a row of one operation, under a :class:`RetryPolicy`.

    ``failed`` either raises :class:`TransferError` (the policy gives up: too many
    failures in a row, or its deadline has passed) or waits the backoff, waking early
    with :class:`Stopped` once ``stop`` is set. An attempt that made progress (a
    resumed part that received bytes) starts the count again from one.
    """

    def __init__(self, policy: RetryPolicy, stop: threading.Event, what: str) -> None:
        self._policy = policy
        self._stop = stop
        self._what = what
        self._started = time.monotonic()
        self._failures = 0

    def failed(self, exc: TransientError, *, progressed: bool = False) -> None:
        self._failures = 1 if progressed else self._failures + 1
        elapsed = time.monotonic() - self._started
        if self._policy.gives_up(self._failures, elapsed):
            raise TransferError(
                f"{self._what} gave up after {_attempts(self._failures)} in a row "
                f"({elapsed:.1f} s): {exc}"
            ) from exc
        delay = self._policy.backoff_for(self._failures, random.random())
        logger.debug("%s: %s; retrying in %.2f s", self._what, exc, delay)
        if self._stop.wait(delay):
            raise Stopped from exc


def _attempts(count: int) -> str:
    return "1 failed attempt" if count == 1 else f"{count} failed attempts"


class _Buffers(threading.local):
    """One reusable chunk buffer per pool thread: memory is task_num x chunk_size."""

    buffer: mmap.mmap | None = None


_BUFFERS = _Buffers()


def chunk_buffer(size: int) -> memoryview:
    """This thread's buffer of ``size`` bytes, for fetching and verifying alike."""
    buffer = _BUFFERS.buffer
    if buffer is None or len(buffer) != size:
        # Anonymous memory, not a bytearray: a bytearray is zeroed while its thread
        # holds the GIL (a page fault per 4 KiB, 0.65 ms per MiB on this VM), which
        # held back the start of every other loop; these pages are first touched by
        # the kernel as it receives into them, with the GIL released.
        buffer = _BUFFERS.buffer = mmap.mmap(-1, size)
    return memoryview(buffer)


WRITE_SLICE = 256 * 1024
"""The most one ``pwrite`` writes. The page cache takes a folio as large as the write
(up to 2 MiB): 1 GiB written 1 MiB at a time took 0.45 s of kernel time on the
benchmark VM, 256 KiB at a time 0.28 s, 64 KiB 0.33 s (benchmarks/notes.md)."""


def pwrite_all(fd: int, data: memoryview, offset: int, path: str) -> None:
    try:
        while data:
            written = os.pwrite(fd, data[:WRITE_SLICE], offset)
            data, offset = data[written:], offset + written
    except OSError as exc:
        raise local_error(exc, path, "write to") from exc


class Reconnect(Exception):
    """Raised by :meth:`Span.claim` when the scheduler gave up on this span's connection."""


class Span(Protocol):
    """A byte range a worker fills, whose end the scheduler may move closer (a split).

    Every method takes the scheduler's lock for a moment; between two of them the
    worker reads the socket and writes the file without it.
    """

    @property
    def what(self) -> str:
        """How logs and errors name the range (``part 3``)."""
        ...

    def open(self) -> tuple[int, int]:
        """``[position, end)`` still to fetch, as a new GET is about to ask for it."""
        ...

    def claim(self, limit: int) -> int:
        """Bytes the next read may fill (0: the span is complete, perhaps cut short).

        Raises :class:`Stopped` once the job must stop, :class:`Reconnect` when its
        connection is to be abandoned for a new one.
        """
        ...

    def advance(self, count: int) -> None:
        """``count`` more bytes are written at the position."""
        ...

    def bounds(self) -> tuple[int, int]:
        """``[start, end)`` as it finally is."""
        ...


@dataclass(slots=True)
class _Cursor:
    written: int = 0
    crc: int = 0


class PartWorker:
    """Fetches ranges of one object into its temp file and verifies parts already there."""

    def __init__(
        self,
        *,
        backend: Backend,
        stat: ObjectStat,
        fd: int,
        temp_path: str,
        update: Updater,
        retry: RetryPolicy,
        chunk_size: int,
        stop: threading.Event,
        progress: Progress,
        writeback: Callable[[int, int], None] | None = None,
    ) -> None:
        self._backend = backend
        self._stat = stat
        self._fd = fd
        self._temp_path = temp_path
        self._update = update
        self._retry = retry
        self._chunk_size = chunk_size
        self._stop = stop
        self._progress = progress
        self._writeback = writeback

    @property
    def stop(self) -> threading.Event:
        return self._stop

    def fetch(self, span: Span, view: memoryview) -> int:
        """Download ``span`` through ``view``; return the CRC of its bytes.

        A retry resumes at the first byte not yet written; so does a connection the
        scheduler abandoned, which costs no attempt and no backoff.
        """
        cursor = _Cursor()
        attempts = Attempts(self._retry, self._stop, span.what)
        while True:
            before = cursor.written
            try:
                self._stream(span, cursor, view)
                break
            except Reconnect:
                continue
            except TransientError as exc:
                # The bytes written so far stay, with their CRC and their progress:
                # the next attempt asks only for the rest.
                attempts.failed(exc, progressed=cursor.written > before)
        if self._writeback is not None:
            start, end = span.bounds()
            self._writeback(start, end - start)
        return cursor.crc

    def _stream(self, span: Span, cursor: _Cursor, view: memoryview) -> None:
        position, end = span.open()
        if position >= end:
            return
        body = self._backend.read(position, end, self._stat)
        try:
            while want := span.claim(len(view)):
                count = body.readinto(view[:want])
                if count <= 0:
                    raise TransientError(
                        f"short body: {span.what} ended {end - position} bytes early"
                    )
                chunk = view[:count]
                pwrite_all(self._fd, chunk, position, self._temp_path)
                cursor.crc = self._update(cursor.crc, chunk)
                cursor.written += count
                position += count
                span.advance(count)
                self._progress.add(count)
        finally:
            body.close()

    def verify(self, part: Part, expected_crc: int) -> PartDone | None:
        """Re-read a part recorded as complete; None if its bytes no longer match."""
        view = chunk_buffer(self._chunk_size)
        crc, offset = 0, part.start
        while offset < part.end:
            if self._stop.is_set():
                raise Stopped
            want = min(len(view), part.end - offset)
            try:
                count = os.preadv(self._fd, [view[:want]], offset)
            except OSError as exc:
                raise local_error(exc, self._temp_path, "read") from exc
            if count <= 0:
                return None
            crc = self._update(crc, view[:count])
            offset += count
        if crc != expected_crc:
            return None
        self._progress.add(part.size)
        return PartDone(part.index, crc, fetched=False)
