"""A listing read on a thread of its own, a bounded number of keys ahead of its use.

A tree's listing arrives a page at a time, and each page is a request: pulled on the
scheduler's thread, the request for the next page waited with the pool running dry
(tens of milliseconds a page on loopback, hundreds against a remote store, once every
1,000 keys). Read ahead, the next page is on its way while the keys of the last one
are being fetched; at most ``batch x depth`` keys are queued (and one batch is being
filled), so memory stays flat however long the listing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

# A page of 1,000 keys is ten batches: the pages of every store partdl lists are whole
# multiples of it, so no key waits in a part-filled batch for the next page.
BATCH = 100
DEPTH = 20
# How often a producer blocked on a full queue looks whether its reader has gone.
_POLL = 0.25


class _End(NamedTuple):
    """The last item of the queue: the listing ended, or raised ``error``."""

    error: BaseException | None


class ReadAhead(Generic[T]):
    """The items of ``source``, in order, pulled on a thread named ``name``.

    Iterate it once; :meth:`start` begins the reading before that. Items reach the
    reader ``batch`` at a time, and at most ``depth`` batches wait for it; an error of
    the source is raised to the reader after the items before it. :meth:`close`
    (``contextlib.closing`` calls it) stops the thread after its current step and
    closes the source there.
    """

    def __init__(
        self,
        source: Iterable[T],
        *,
        batch: int = BATCH,
        depth: int = DEPTH,
        name: str = "partdl-list",
    ) -> None:
        if batch < 1 or depth < 1:
            raise ValueError(f"batch and depth must be positive, got {batch} and {depth}")
        self._batch = batch
        self._queue: queue.Queue[list[T] | _End] = queue.Queue(depth)
        self._stop = threading.Event()
        self._iterated = False
        self._thread = threading.Thread(
            target=self._produce, args=(iter(source),), name=name, daemon=True
        )

    def start(self) -> None:
        """Start reading now, before the first item is asked for (iterating starts it too)."""
        if self._thread.ident is None:
            self._thread.start()

    def __iter__(self) -> Iterator[T]:
        if self._iterated:
            raise RuntimeError("a ReadAhead is iterated once")
        self._iterated = True
        self.start()
        while True:
            got = self._queue.get()
            if isinstance(got, _End):
                self._thread.join()
                if got.error is not None:
                    raise got.error
                return
            yield from got

    def close(self) -> None:
        """Stop reading ahead; the source is closed on its thread once its step returns."""
        self._stop.set()

    # -- the listing's thread ------------------------------------------------------------

    def _produce(self, items: Iterator[T]) -> None:
        try:
            self._pump(items)
        finally:
            close = getattr(items, "close", None)  # a generator: its connection is let go
            if close is not None:
                close()

    def _pump(self, items: Iterator[T]) -> None:
        batch: list[T] = []
        end = _End(None)
        try:
            for item in items:
                batch.append(item)
                if len(batch) >= self._batch:
                    if not self._put(batch):
                        return
                    batch = []
        except BaseException as exc:  # handed to the reader, which raises it
            end = _End(exc)
        if not batch or self._put(batch):
            self._put(end)

    def _put(self, got: list[T] | _End) -> bool:
        """Queue ``got``; False once the reader has gone."""
        while not self._stop.is_set():
            try:
                self._queue.put(got, timeout=_POLL)
            except queue.Full:
                continue
            return True
        logger.debug("listing stopped: its reader has gone")
        return False
