"""The fetch loop: one pool of ``task_num`` connections running the work of many objects.

Two kinds of work go on the board. A :class:`Job` is one temp file to fill (its
:class:`PartWorker`) and the parts it still lacks; a :class:`Task` is one unit a loop
runs whole with its own chunk buffer (a small object's single GET, or a few small
objects' GETs kept in flight together, up to the task's *width*). :meth:`Scheduler.run`
runs ``task_num`` serving loops on the pool, and a loop starts work only while a GET
is free: a range takes one, a task as many as it can use of those free (its grant),
so at no moment are more than ``task_num`` in flight, however many jobs and tasks
are fed; work is taken in the order it was fed, so parts of jobs already started go
first. A
:class:`Feed` supplies the work lazily and hears back on the orchestrator thread;
:meth:`Scheduler.fetch` is the same for a fixed list of jobs. The loops share one
:class:`_Board` (one lock, one owner of every piece of thread-shared state):

- **Splitting.** A loop with nothing left to start takes over the back of the
  in-flight range expected to finish last: the running worker stops at the split
  point (its GET is closed there) and the idle one fetches the rest on a new GET.
  The split is weighted by the two connections' rates, so a fast newcomer takes most
  of a straggler's remainder; between equals it is the back half. The same move
  removes the idle tail of the last round of parts.
- **Abandoning.** A connection delivering far below its peers (under
  ``1/SLOW_FACTOR`` of their median, judged once its body has flowed for
  ``SLOW_AGE`` seconds, or for ``EARLY_AGE`` once it is ``SLOW_DEFICIT`` bytes behind
  them, and with more than another ``SLOW_AGE`` of bytes to go at its rate) is closed
  and its range resumed on a new one by the same worker. Waiting for
  response headers is not judged here: that is the SDK's read timeout. Each range is
  abandoned at most ``MAX_ABANDONS`` times and a run at most ``task_num`` times plus
  one in four of its GETs, so a uniformly slow link, where nobody is far below
  anybody, never churns.
- **Exact checkpoints.** A part is reported (and so recorded) only once every piece
  of it has all its bytes; its CRC is the pieces' CRCs combined in order. A process
  killed mid-split resumes with that part simply missing.

Memory stays ``task_num x chunk_size``: one buffer per loop, whatever the jobs.
The orchestrator thread alone calls into the scheduler (other threads may only
:meth:`Scheduler.call_soon`); it receives parts through the feed's ``on_part`` and
runs ``on_tick`` (progress, pause/cancel) about every ``TICK``.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import TracebackType
from typing import NamedTuple, Protocol, TypeVar

from .crc import ChecksumAlgorithm, combine_all
from .errors import PartdlError
from .plan import KiB, MiB, Part
from .worker import PartDone, PartWorker, Reconnect, Stopped, chunk_buffer

logger = logging.getLogger("partdl")

T = TypeVar("T")
R = TypeVar("R")

# How often the orchestrator wakes to report progress and look for slow connections.
TICK = 0.1
# Neither side of a split is smaller than this: below it a new GET's round trip and
# slow start cost more than they save.
MIN_SPLIT = 1 * MiB
_SPLIT_ALIGN = 64 * KiB
# A connection is abandoned when under 1/SLOW_FACTOR of its peers' median rate...
SLOW_FACTOR = 5
# ...judged once its body has flowed for SLOW_AGE seconds (a quarter second misjudged
# even connections on a loaded machine: a uniformly slow link was churned)...
SLOW_AGE = 0.5
# ...or already after EARLY_AGE when it has fallen SLOW_DEFICIT bytes behind what the
# connections running beside it delivered in the same time: far more than a new
# connection costs, so waiting longer only loses more. Only fast peers build such a
# deficit that soon, so a slow link is judged as before.
EARLY_AGE = 0.1
SLOW_DEFICIT = 4 * MiB
MAX_ABANDONS = 2
# Reads are sized to return within about this long (seconds), so a worker on a slow
# connection still sees a split or an abandon promptly; a new connection starts small.
_READ_SLICE = 0.05
_FIRST_READ = 64 * KiB
_MIN_READ = 16 * KiB
# Finished connections remembered for the reference rate.
_RATE_HISTORY = 16


def crawling(rate: float, age: float, left: int, *, reference: float, running: float) -> bool:
    """Whether a connection at ``rate`` (bytes/s, its body flowing for ``age`` s, ``left``
    bytes to go) is worth abandoning.

    ``reference`` is its peers' median rate, finished connections included; ``running``
    the median of the connections running beside it now, the only ones that can show
    what it missed in the same time (the early rule).
    """
    if age < EARLY_AGE or left <= rate * SLOW_AGE:  # too soon, or about to finish anyway
        return False
    if age >= SLOW_AGE:
        return rate * SLOW_FACTOR < reference
    return rate * SLOW_FACTOR < running and (running - rate) * age >= SLOW_DEFICIT


@dataclass(frozen=True, eq=False)
class Job:
    """One file to fill: its worker, the parts it lacks (in order) and their checksum."""

    worker: PartWorker
    parts: Sequence[Part]
    algorithm: ChecksumAlgorithm
    splittable: bool = True
    """False for a server that ignores byte ranges: each GET starts at byte 0, so a
    range taken over or resumed elsewhere would read everything before it again."""

    @property
    def stop(self) -> threading.Event:
        return self.worker.stop


@dataclass(frozen=True, eq=False)
class Task:
    """One unit of work a serving loop runs whole: a small object's one GET, or the
    GETs of a few small objects that the loop keeps in flight together.

    ``run`` is handed the loop's chunk buffer and how many GETs it may keep in flight
    (its grant: at least one, at most its ``width``, as many as were free when it
    started), and returns the task's result, which the feed's ``on_settled``
    receives; it must return promptly once ``stop`` is set. A task is never split nor
    abandoned, and its failure is its own.
    """

    run: Callable[[memoryview, int], object]
    stop: threading.Event
    width: int = 1
    """The GETs it could keep in flight: it is granted up to that many of ``task_num``."""


Work = Job | Task


class Feed(Protocol):
    """Where :meth:`Scheduler.run` takes its work from and reports back to.

    Every method is called on the orchestrator thread.
    """

    def next(self) -> Work | None:
        """The next job or task, or None when there is nothing to add just now."""
        ...

    def finished(self) -> bool:
        """True once nothing more will come and everything fed has settled."""
        ...

    def on_part(self, job: Job, done: PartDone) -> None:
        """A part of ``job`` has all its bytes."""
        ...

    def on_settled(self, work: Work, error: BaseException | None, result: object) -> None:
        """``work`` is over: every part of a job is in (``error`` None) or it failed."""
        ...


class Stats(NamedTuple):
    """What the last :meth:`Scheduler.fetch` did beyond one GET per part."""

    gets: int = 0
    splits: int = 0
    abandons: int = 0


# -- shared state (behind the board's lock) ---------------------------------------------


@dataclass(eq=False, slots=True)
class _JobState:
    job: Job
    pending: deque[Part]
    parts_left: int
    inflight: int = 0
    error: BaseException | None = None
    settled: bool = False


@dataclass(eq=False, slots=True)
class _TaskState:
    task: Task
    taken: bool = False
    grant: int = 0


@dataclass(eq=False, slots=True)
class _Assembly:
    """One part being filled by one or more pieces."""

    part: Part
    pieces: list[_Piece] = field(default_factory=list)
    unfinished: int = 0


@dataclass(eq=False, slots=True)
class _Piece:
    """``[start, end)`` of one part, held by one worker; ``end`` only ever moves down."""

    state: _JobState
    assembly: _Assembly
    start: int
    end: int
    written: int = 0
    claimed_to: int = 0
    """No split point may fall before this: the worker's current read may fill up to it."""
    receiving_since: float | None = None
    """When the current connection's body began (after its headers): rates count from it."""
    connection_bytes: int = 0
    abandon: bool = False
    abandons: int = 0
    crc: int = 0

    @property
    def position(self) -> int:
        return self.start + self.written

    def age(self, now: float) -> float:
        return 0.0 if self.receiving_since is None else now - self.receiving_since

    def rate(self, now: float) -> float | None:
        age = self.age(now)
        return self.connection_bytes / age if age > 0 else None


class _PartFinished(NamedTuple):
    job: Job
    done: PartDone


class _Settled(NamedTuple):
    work: Work
    error: BaseException | None
    result: object = None


class _Hungry(NamedTuple):
    """The board is running out of work: the orchestrator may feed more."""


class _Call(NamedTuple):
    """A function another thread wants run on the orchestrator thread."""

    fn: Callable[[], None]


_Event = _PartFinished | _Settled | _Hungry | _Call


class _Board:
    """Every piece of state the serving loops share, behind one lock (a Condition)."""

    def __init__(self, task_num: int, events: queue.SimpleQueue[_Event]) -> None:
        self._lock = threading.Condition()
        self._task_num = task_num
        self._events = events
        # In the order fed; keyed by the work itself so that forgetting one is cheap.
        self._jobs: dict[Work, _JobState | _TaskState] = {}
        self._running: set[_Piece] = set()
        self._history: deque[float] = deque(maxlen=_RATE_HISTORY)
        self._closed = False
        self._hungry_told = False
        self._free = task_num
        """GETs that may still start: ``task_num`` less those of the work running."""
        self.gets = self.splits = self.abandons = 0

    # -- the orchestrator's side -----------------------------------------------------

    def add(self, work: Work) -> None:
        with self._lock:
            self._hungry_told = False
            if isinstance(work, Task):
                if not 1 <= work.width <= self._task_num:
                    raise ValueError(f"a task of width {work.width} in a pool of {self._task_num}")
                self._jobs[work] = _TaskState(work)
                # One task is one loop's work: waking every idle loop for it would make
                # them all contend for the lock (and the GIL) to find it taken; and
                # none is woken while the GETs in flight leave no room.
                if self._free > 0:
                    self._lock.notify()
                return
            state = _JobState(work, deque(work.parts), parts_left=len(work.parts))
            self._jobs[work] = state
            self._settle(state)
            if self._free > 0:
                self._lock.notify_all()  # idle loops may split the parts others start

    def forget(self, work: Work) -> None:
        with self._lock:
            self._jobs.pop(work, None)

    def hungry(self) -> bool:
        with self._lock:
            return self._is_hungry()

    def _is_hungry(self) -> bool:
        """No job has a part left to start, and fewer than ``task_num`` tasks wait.

        Tasks are kept a few ahead so that a loop finishing one finds the next at once;
        a job's parts are all fed with it.
        """
        waiting = 0
        for state in self._jobs.values():
            if isinstance(state, _TaskState):
                waiting += 0 if state.taken else state.task.width
            elif state.pending and state.error is None:
                return False
        return waiting < self._task_num

    def close(self) -> None:
        """Stop every job and task and let every loop return once its worker has let go."""
        with self._lock:
            self._closed = True
            for work in self._jobs:
                work.stop.set()
            self._lock.notify_all()

    def check_slow(self, now: float) -> None:
        """Mark connections delivering far below their peers for a new connection."""
        with self._lock:
            budget = self._task_num + self.gets // 4 - self.abandons
            judged = [
                (piece, rate)
                for piece in self._running
                if piece.age(now) >= EARLY_AGE
                and (rate := piece.rate(now)) is not None
                and piece.state.error is None
            ]
            for piece, rate in judged:
                if budget <= 0:
                    return
                if piece.abandon or piece.abandons >= MAX_ABANDONS:
                    continue
                if not piece.state.job.splittable:  # a new connection restarts at byte 0
                    continue
                peers = [other for candidate, other in judged if candidate is not piece]
                reference = self._reference(peers)
                if reference is None:
                    continue
                running = _median(peers) if peers else 0.0
                left = piece.end - piece.position
                age = piece.age(now)
                if not crawling(rate, age, left, reference=reference, running=running):
                    continue
                piece.abandon = True
                piece.abandons += 1
                self.abandons += 1
                budget -= 1
                logger.info(
                    "part %d: abandoning a connection at %.0f KiB/s (peers %.0f KiB/s)",
                    piece.assembly.part.index,
                    rate / KiB,
                    reference / KiB,
                )

    # -- the serving loops' side -----------------------------------------------------

    def take(self) -> _Piece | _TaskState | None:
        """The next piece of work, waiting for one; None once the board is closed."""
        with self._lock:
            while not self._closed:
                work = self._next_work()
                if not self._hungry_told and self._is_hungry():
                    self._hungry_told = True
                    self._events.put(_Hungry())
                if work is None and self._free > 0:
                    work = self._split(time.monotonic())
                if work is not None:
                    if isinstance(work, _TaskState):
                        work.grant = min(work.task.width, self._free)
                        self._free -= work.grant
                    else:
                        self._free -= 1
                        self._running.add(work)
                        work.state.inflight += 1
                    if self._free > 0:
                        self._lock.notify()  # GETs left over (a wide task ended): pass them on
                    return work
                self._lock.wait()
            return None

    def _next_work(self) -> _Piece | _TaskState | None:
        """The first work fed, if any GET is free."""
        if self._free <= 0:
            return None
        for state in self._jobs.values():
            if isinstance(state, _TaskState):
                if not state.taken:
                    state.taken = True
                    return state
            elif state.pending and state.error is None:
                part = state.pending.popleft()
                assembly = _Assembly(part)
                return self._new_piece(state, assembly, part.start, part.end)
        return None

    def task_done(self, state: _TaskState, result: object, error: BaseException | None) -> None:
        # The orchestrator forgets the task when it hears; its GETs are free at once.
        with self._lock:
            self._free += state.grant  # this loop takes more at once: no one to wake
        self._events.put(_Settled(state.task, error, result))

    def _new_piece(self, state: _JobState, assembly: _Assembly, start: int, end: int) -> _Piece:
        piece = _Piece(state, assembly, start, end, claimed_to=start)
        assembly.pieces.append(piece)
        assembly.unfinished += 1
        return piece

    def _split(self, now: float) -> _Piece | None:
        """Cut the range expected to finish last; the caller takes its back."""
        mature = (p.rate(now) for p in self._running if p.age(now) >= SLOW_AGE)
        reference = self._reference([rate for rate in mature if rate])
        best: tuple[float, _Piece, int] | None = None
        for piece in self._running:
            job = piece.state.job
            if piece.state.error is not None or job.stop.is_set() or not job.splittable:
                continue
            low = max(piece.claimed_to, piece.position)
            room = piece.end - low
            if room < 2 * MIN_SPLIT:
                continue
            rate = piece.rate(now) if piece.age(now) >= SLOW_AGE else None
            rate = rate or reference or 1.0
            eta = room / rate
            if best is None or eta > best[0]:
                best = (eta, piece, low)
        if best is None:
            return None
        _, piece, low = best
        rate = piece.rate(now)
        # A connection delivering nothing keeps only what it has claimed.
        share = rate / (rate + reference) if rate is not None and reference else 0.5
        room = piece.end - low
        cut = low + int(room * share)
        cut = -(-cut // _SPLIT_ALIGN) * _SPLIT_ALIGN
        cut = min(max(cut, low), piece.end - MIN_SPLIT)
        back = self._new_piece(piece.state, piece.assembly, cut, piece.end)
        piece.end = cut
        self.splits += 1
        logger.debug(
            "part %d: split at byte %d (%d bytes left on the running connection)",
            piece.assembly.part.index,
            cut,
            cut - piece.position,
        )
        return back

    def _reference(self, rates: Iterable[float]) -> float | None:
        samples = [*self._history, *rates]
        return _median(samples) if samples else None

    def finish(self, piece: _Piece, crc: int) -> None:
        with self._lock:
            piece.crc = crc
            self._let_go(piece)
            rate = piece.rate(time.monotonic())
            if rate is not None and piece.connection_bytes:
                self._history.append(rate)
            assembly, state = piece.assembly, piece.state
            assembly.unfinished -= 1
            if assembly.unfinished == 0:
                pieces = sorted(assembly.pieces, key=lambda p: p.start)
                value = pieces[0].crc  # a part in one piece, by far the most common
                if len(pieces) > 1:
                    value = combine_all(
                        state.job.algorithm, ((p.crc, p.end - p.start) for p in pieces)
                    )
                done = PartDone(assembly.part.index, value, fetched=True)
                self._events.put(_PartFinished(state.job, done))
                state.parts_left -= 1
            self._settle(state)
            self._lock.notify_all()

    def fail(self, piece: _Piece, error: BaseException) -> None:
        with self._lock:
            self._let_go(piece)
            state = piece.state
            if state.error is None:
                # The first failure is the job's; its other pieces stop (Stopped).
                state.error = error
                state.pending.clear()
                state.job.stop.set()
            self._settle(state)
            self._lock.notify_all()

    def _let_go(self, piece: _Piece) -> None:
        self._running.discard(piece)
        piece.state.inflight -= 1
        self._free += 1

    def _settle(self, state: _JobState) -> None:
        if state.settled or state.inflight:
            return
        if state.error is not None or state.parts_left == 0:
            state.settled = True
            self._events.put(_Settled(state.job, state.error))

    # -- a worker's view of its piece (the Span protocol) ----------------------------

    def open(self, piece: _Piece) -> tuple[int, int]:
        with self._lock:
            if piece.state.job.stop.is_set():
                raise Stopped
            piece.receiving_since = None
            piece.connection_bytes = 0
            piece.abandon = False
            piece.claimed_to = piece.position
            self.gets += 1
            return piece.position, piece.end

    def claim(self, piece: _Piece, limit: int) -> int:
        with self._lock:
            if piece.state.job.stop.is_set():
                raise Stopped
            left = piece.end - piece.position
            if left <= 0:
                return 0
            if piece.abandon:
                piece.abandon = False
                raise Reconnect
            if piece.receiving_since is None:
                piece.receiving_since = time.monotonic()
                size = _FIRST_READ
            elif piece.connection_bytes == 0:
                size = _FIRST_READ
            else:
                rate = piece.rate(time.monotonic()) or 0.0
                size = max(_MIN_READ, int(rate * _READ_SLICE))
            want = min(limit, left, size)
            piece.claimed_to = piece.position + want
            return want

    def advance(self, piece: _Piece, count: int) -> None:
        with self._lock:
            piece.written += count
            piece.connection_bytes += count

    def bounds(self, piece: _Piece) -> tuple[int, int]:
        with self._lock:
            return piece.start, piece.end


class _SpanView(NamedTuple):
    """A piece as its worker sees it: the :class:`partdl.worker.Span` protocol."""

    board: _Board
    piece: _Piece

    @property
    def what(self) -> str:
        return f"part {self.piece.assembly.part.index}"

    def open(self) -> tuple[int, int]:
        return self.board.open(self.piece)

    def claim(self, limit: int) -> int:
        return self.board.claim(self.piece, limit)

    def advance(self, count: int) -> None:
        self.board.advance(self.piece, count)

    def bounds(self) -> tuple[int, int]:
        return self.board.bounds(self.piece)


class Scheduler:
    """The thread pool of one download (or of many), and the loops that run on it.

    Use as a context manager; only the thread that made it may call it, but for
    :meth:`call_soon`.
    """

    def __init__(self, task_num: int, chunk_size: int) -> None:
        self._task_num = task_num
        self._chunk_size = chunk_size
        self._pool = ThreadPoolExecutor(task_num, thread_name_prefix="partdl")
        self._events: queue.SimpleQueue[_Event] | None = None
        self.stats = Stats()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True)

    def call_soon(self, fn: Callable[[], None]) -> bool:
        """From any thread: run ``fn`` on the orchestrator thread, waking it now.

        Returns False (and ``fn`` never runs) when no :meth:`run` is in progress.
        """
        events = self._events
        if events is None:
            return False
        events.put(_Call(fn))
        return True

    def run(self, feed: Feed, *, on_tick: Callable[[], None]) -> None:
        """Run the feed's work until it is finished.

        Work is taken from ``feed`` whenever the board runs short. A job's or a task's
        failure is reported to the feed and stops it alone. An exception from the
        feed or from ``on_tick`` stops everything and propagates, once no worker is
        left writing.
        """
        events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        task_num = self._task_num
        board = _Board(task_num, events)
        self._events = events
        # The loops start before the first work is asked for: their threads come up while
        # the feed waits for its first HEAD or listing page, not one by one behind the
        # first GET (the pool starts each thread and waits for it, 2-3 ms apiece then).
        loops: list[Future[None]] = []
        try:
            self._start_loops(board, loops)
            while True:
                while board.hungry():
                    work = feed.next()
                    if work is None:
                        break
                    board.add(work)
                if feed.finished():
                    return
                self._drain(board, events, feed)
                board.check_slow(time.monotonic())
                on_tick()
                for loop in loops:
                    if loop.done():
                        loop.result()  # a loop only ends early on a bug: surface it
        finally:
            self._events = None
            board.close()
            wait(loops)
            self.stats = Stats(board.gets, board.splits, board.abandons)

    def _start_loops(self, board: _Board, loops: list[Future[None]]) -> None:
        try:
            for _ in range(self._task_num):
                loops.append(self._pool.submit(self._serve, board))
        except RuntimeError as exc:  # "can't start new thread": out of threads or memory
            raise PartdlError(
                f"could not start {self._task_num} download threads ({len(loops)} started: "
                f"{exc}); lower task_num"
            ) from exc

    def fetch(
        self,
        jobs: Iterable[Job],
        *,
        on_part: Callable[[Job, PartDone], None],
        on_tick: Callable[[], None],
    ) -> dict[Job, BaseException | None]:
        """Fetch every job's parts; return each job's error, or None where it completed.

        ``jobs`` is read lazily: the next job is taken only once every part of those
        before it has started. A job's failure stops that job alone. An exception from
        ``on_part``, ``on_tick`` or ``jobs`` stops everything and propagates, once no
        worker is left writing.
        """
        feed = _JobList(jobs, on_part)
        self.run(feed, on_tick=on_tick)
        return feed.outcome

    @staticmethod
    def _drain(board: _Board, events: queue.SimpleQueue[_Event], feed: Feed) -> None:
        """Handle the events that arrive within one tick."""
        try:
            event: _Event | None = events.get(timeout=TICK)
        except queue.Empty:
            return
        while event is not None:
            if isinstance(event, _PartFinished):
                feed.on_part(event.job, event.done)
            elif isinstance(event, _Settled):
                board.forget(event.work)
                feed.on_settled(event.work, event.error, event.result)
            elif isinstance(event, _Call):
                event.fn()
            try:
                event = events.get_nowait()
            except queue.Empty:
                event = None

    def _serve(self, board: _Board) -> None:
        view = chunk_buffer(self._chunk_size)
        while (work := board.take()) is not None:
            if isinstance(work, _TaskState):
                try:
                    result = work.task.run(view, work.grant)
                except Exception as exc:
                    board.task_done(work, None, exc)
                else:
                    board.task_done(work, result, None)
                continue
            worker = work.state.job.worker
            try:
                crc = worker.fetch(_SpanView(board, work), view)
            except Exception as exc:
                board.fail(work, exc)
            else:
                board.finish(work, crc)

    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        consume: Callable[[R], None],
        *,
        stop: threading.Event,
        on_tick: Callable[[], None],
    ) -> None:
        """Run ``fn`` over ``items`` on the pool and hand each result to ``consume``.

        For work that opens no connection (verifying parts on disk), and only between
        runs: while :meth:`run` is in progress the loops hold every thread of the pool.
        A bounded window of futures (twice the pool) keeps memory flat at 100,000
        parts. On any error, including one from ``consume`` or ``on_tick``, ``stop`` is
        set and every running task is waited for before it propagates.
        """
        if self._events is not None:
            raise RuntimeError("Scheduler.map cannot run while the loops hold the pool")
        todo = iter(items)
        window = 2 * self._task_num
        pending: set[Future[R]] = {
            self._pool.submit(fn, item) for item in itertools.islice(todo, window)
        }
        try:
            while pending:
                done, pending = wait(pending, timeout=TICK, return_when=FIRST_COMPLETED)
                for future in done:
                    consume(future.result())
                    for item in itertools.islice(todo, 1):
                        pending.add(self._pool.submit(fn, item))
                on_tick()
        finally:
            if pending:
                stop.set()
                for future in pending:
                    future.cancel()
                wait(pending)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


class _JobList:
    """The feed of :meth:`Scheduler.fetch`: a lazy list of jobs and their outcome."""

    def __init__(self, jobs: Iterable[Job], on_part: Callable[[Job, PartDone], None]) -> None:
        self._jobs: Iterator[Job] | None = iter(jobs)
        self._on_part = on_part
        self._added = 0
        self.outcome: dict[Job, BaseException | None] = {}

    def next(self) -> Work | None:
        if self._jobs is None:
            return None
        job = next(self._jobs, None)
        if job is None:
            self._jobs = None
            return None
        self._added += 1
        return job

    def finished(self) -> bool:
        return self._jobs is None and len(self.outcome) == self._added

    def on_part(self, job: Job, done: PartDone) -> None:
        self._on_part(job, done)

    def on_settled(self, work: Work, error: BaseException | None, result: object) -> None:
        assert isinstance(work, Job)
        self.outcome[work] = error
