"""Temp files created ahead, on their own thread, for the small objects of a group.

Creating a file on ext4 costs 0.15-0.35 ms of kernel time here (the inode allocator
steps over the inodes freed moments before, which a deleted tree leaves behind), as
much as all the rest of a 64 KiB object's work. The small objects of a group share
one serving loop (:data:`partdl.execute.GROUP`), so creating each temp file on that
loop put every creation in line with everything else the loop does, while the other
core idled: the loop spent 40% of a tree of 2,000 such objects in ``open``. Now the
loop asks here as it writes an object's GET, this thread creates the file while the
answer travels, and the loop takes the descriptor when the body arrives.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from concurrent.futures import CancelledError, Future

from . import files
from .errors import LocalFileError


class Opening:
    """A temp file being created beside one destination: taken or discarded, once."""

    def __init__(self, destination: str) -> None:
        self.temp = files.new_temp_path(destination)
        self._future: Future[int] = Future()
        self._settled = False

    def take(self) -> int:
        """The temp file's descriptor, once it is created; raises what creating it raised."""
        self._settled = True
        try:
            return self._future.result()
        except CancelledError:
            # Only a run that is closing cancels; its loop meets the stop next.
            raise LocalFileError(0, f"cannot create {self.temp}: the run stopped") from None

    def discard(self) -> None:
        """Give the file up if it was not taken: it is removed once it exists."""
        if self._settled:
            return
        self._settled = True
        if not self._future.cancel():
            self._future.add_done_callback(self._remove)

    def create(self) -> None:
        """On the opener's thread: create the file, unless it was discarded first."""
        if not self._future.set_running_or_notify_cancel():
            return
        try:
            fd = files.create_temp(self.temp, 0, reserve=False)
        except LocalFileError as exc:
            self._future.set_exception(exc)
        else:
            self._future.set_result(fd)

    def _remove(self, future: Future[int]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        with contextlib.suppress(OSError):
            os.close(future.result())
        files.remove_quietly(self.temp)


class Opener:
    """The one thread that creates the temp files a group's loop asks for, in order.

    It starts with the first request, so a run with no groups never has it. What
    waits here is bounded by the GETs in flight: a loop asks as it writes a GET.
    """

    def __init__(self) -> None:
        self._pending: deque[Opening] = deque()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def ask(self, destination: str) -> Opening:
        opening = Opening(destination)
        with self._lock:
            if self._closing:
                opening.discard()
                return opening
            self._pending.append(opening)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="partdl-open", daemon=True)
                self._thread.start()
            elif len(self._pending) == 1:
                self._lock.notify()
        return opening

    def close(self) -> None:
        """Stop the thread; a request it did not reach is cancelled (taking it raises)."""
        with self._lock:
            self._closing = True
            pending, self._pending = self._pending, deque()
            self._lock.notify()
            thread = self._thread
        for opening in pending:
            opening.discard()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._lock.wait()
                if not self._pending:
                    return
                opening = self._pending.popleft()
            opening.create()
