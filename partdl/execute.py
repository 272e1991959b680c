"""Running planned objects: THE SEAM between the batch layer and the transfers.

:func:`execute` takes the stream of :class:`PlannedObject` values that planning
(:mod:`partdl.batch`) makes and reports one :class:`ObjectOutcome` per object as it
ends. Every object goes through ONE :class:`partdl.scheduler.Scheduler`: ``task_num``
serving loops on one pool, whatever the objects. An object of one part is a
:class:`~partdl.scheduler.Task` those loops run (one GET, no HEAD:
:class:`SmallFetcher`; up to ``GROUP_OBJECTS`` of the smallest share one loop,
``GROUP`` of their GETs in flight together); a larger one is an
:class:`~partdl.engine.ObjectDownload` whose parts are a job on the same board, so
small and large objects overlap and an idle loop splits the straggler of whichever
object it is. The steps of a large object that send no GET of data (its HEAD, the
verification of its checkpoint, the checksum compare and the commit) run on a couple
of side threads, never on the pool.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, cast

from . import checkpoint as codec
from . import files
from .backend import RangeBody
from .commit import Committer, Finished
from .crc import ChecksumAlgorithm, updater
from .engine import ObjectDownload, verify_here
from .errors import (
    IntegrityError,
    ObjectChangedDuringRead,
    PartdlError,
    TransientError,
    UnknownLength,
)
from .listing import ListedObject, PendingWhole, PipelinedBackend, WholeObjectBackend, mtime_ns
from .model import Checksum, DownloadResult, ObjectStat
from .options import TransferOptions, make_target
from .scheduler import Job, Scheduler, Task, Work
from .worker import Attempts, PartDone, Progress, Stopped, pwrite_all

logger = logging.getLogger("partdl")

# Threads for the steps of large objects that send no GET of data (HEAD, verifying a
# checkpoint, committing): as many large objects are prepared ahead of the loops.
SIDE_THREADS = 2
# Objects up to GROUP_MAX_SIZE are fetched GROUP_OBJECTS at a time by one serving loop,
# up to GROUP of their GETs in flight together (partdl's own clients only). Such an
# object costs far more CPU than bytes, and eight loops each handing the GIL over at
# every system call of its GET spent a third more CPU (in context switches) than
# fewer loops keeping the same eight GETs in flight: 2,000 objects of 64 KiB to the
# disk took 2.32, 2.23 and 2.06 s (medians of six, caches dropped before each) with
# groups of two, four and eight. The size bound is the kernel's first receive buffer
# (Linux: 128 KiB), so a whole answer waits in it while the loop reads another, its
# sender never held back by the window; larger objects are bound by bytes: one loop
# each. A group holds more objects than it has GETs in flight, since its last few
# GETs run with the rest of its grant idle, and the next group starts only after the
# orchestrator heard: groups of 32 took 0.75 s against 0.82 s for groups of 8 (2,000
# objects of 64 KiB into fresh folders, six alternating runs).
GROUP = 8
GROUP_OBJECTS = 32
GROUP_MAX_SIZE = 128 * 1024
# How long a group waits for any of its answers to begin before reading the first one
# under that GET's own read timeout.
_ANSWER_WAIT = 1.0


class Status(enum.Enum):
    DOWNLOADED = "downloaded"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ObjectOutcome:
    """What became of one object; passed to ``on_object`` as each one ends."""

    key: str
    path: str
    status: Status
    size: int
    error: PartdlError | None = None
    result: DownloadResult | None = None
    """For a downloaded object: its checksum, whether it was verified, its parts."""
    source: str = ""
    """The backend's identity of the object (``oss://bucket/key``), for the tree's state."""
    relative: str | None = None
    """The object's path in its tree's state (:attr:`PlannedObject.relative`)."""
    mtime_ns: int | None = None
    """For a downloaded object: the mtime of the file it put in place, as the tree's
    state records it (taken before the outcome reached the calling thread)."""


class PlannedObject(NamedTuple):
    """One object to fetch, as planning hands it to :func:`execute`."""

    key: str
    backend: WholeObjectBackend
    destination: str
    listed: ListedObject | None
    """Size, ETag and Last-Modified from the listing; None for a key given by name."""
    relative: str | None = None
    """The object's path in its tree's state, or None outside a tree."""
    root: str | None = None
    """The tree's directory, whose state folder keeps a large object's checkpoint."""

    @property
    def checkpoint_file(self) -> str | None:
        """Where the checkpoint goes if the object is large (None: beside the destination).

        Computed only when asked: most objects of a tree take one GET and never need one.
        """
        if self.root is None or self.relative is None:
            return None
        from .state import checkpoint_path  # the tree's state, SQLite with it: trees only

        return checkpoint_path(self.root, self.relative)


class Meter:
    """Bytes in place across the batch: workers add, the calling thread reports."""

    def __init__(self, report: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._bytes = 0
        self._large: set[Progress] = set()
        self._report = report

    def add(self, count: int) -> None:
        with self._lock:
            self._bytes += count

    def track(self, progress: Progress) -> None:
        """Count a large object's own progress while it runs (calling thread)."""
        self._large.add(progress)

    def untrack(self, progress: Progress, *, keep: bool) -> None:
        self._large.discard(progress)
        if keep:
            self.add(progress.value)

    @property
    def value(self) -> int:
        return self._bytes + sum(progress.value for progress in self._large)

    def tick(self) -> None:
        self._report()


# -- the seam ----------------------------------------------------------------------------


def execute(
    plans: Iterable[PlannedObject],
    options: TransferOptions,
    meter: Meter,
    on_outcome: Callable[[ObjectOutcome], None],
) -> None:
    """Fetch every planned object; call ``on_outcome`` once per object, on the calling thread.

    This is the one place the batch layer runs transfers. Its contract: ``plans`` is
    pulled on the calling thread, as the loops run short of work (pulling may block
    on a listing page and may call the batch's callbacks); at no moment more than
    ``options.task_num`` GETs are in flight; an object that ``fits_one_part`` and has
    a listing costs one GET and no HEAD (:class:`SmallFetcher`), verified and renamed
    into place; larger ones go through the engine with the checkpoint
    ``plan.checkpoint_file``; workers add bytes to ``meter`` and ``meter.tick()`` is
    called at least every 0.1 s; an outcome is reported only once its file is in place
    (or the object failed). An exception (from ``on_outcome``, from pulling, Ctrl-C)
    stops every worker and leaves each large object resumable before it propagates.
    """
    with (
        Scheduler(options.task_num, options.chunk_size) as scheduler,
        ThreadPoolExecutor(SIDE_THREADS, thread_name_prefix="partdl-side") as side,
    ):
        committer = Committer(durable=options.fsync)
        run = _Run(plans, options, meter, on_outcome, scheduler, side, committer)
        try:
            scheduler.run(run, on_tick=meter.tick)
        except BaseException as exc:
            run.stop(side, exc)
            raise
        finally:
            committer.close(discard=True)  # empty by now unless the run failed


@dataclass(eq=False)
class _Large:
    """A large object in the run: its lifecycle, its lock, and its job on the board."""

    plan: PlannedObject
    download: ObjectDownload
    lock: files.DestinationLock | None = None
    job: Job | None = None


class _SideDone(NamedTuple):
    """What a side step of a large object came to: a job for the board, a result, an error."""

    large: _Large
    value: Job | DownloadResult | BaseException
    mtime: int | None = None
    """For a result: the mtime of the file in place, taken on the side thread."""


class _Run:
    """One execution's feed of the shared scheduler (see :class:`partdl.scheduler.Feed`).

    Small objects become tasks as the board runs short; a large one is handed to a
    side thread to be pinned and opened, and its job joins the board when ready,
    meanwhile the small objects behind it keep the loops busy. Everything here runs
    on the calling thread; side threads report back through ``call_soon``.
    """

    def __init__(
        self,
        plans: Iterable[PlannedObject],
        options: TransferOptions,
        meter: Meter,
        on_outcome: Callable[[ObjectOutcome], None],
        scheduler: Scheduler,
        side: ThreadPoolExecutor,
        committer: Committer,
    ) -> None:
        self._plans: Iterator[PlannedObject] | None = iter(plans)
        self._options = options
        self._meter = meter
        self._on_outcome = on_outcome
        self._scheduler = scheduler
        self._side = side
        self._small_stop = threading.Event()
        self._small = SmallFetcher(
            options, self._small_stop, meter, committer=committer, deliver=self._deliver
        )
        self._committing = 0
        """Small objects with the group committer: fetched, not yet reported."""
        self._tasks: set[Task] = set()
        self._held: PlannedObject | None = None
        """The plan pulled after a group of small objects, which did not fit it."""
        self._width = min(GROUP, options.task_num)
        self._pipelined: dict[type, bool] = {}
        self._waiting: deque[PlannedObject] = deque()
        """Large objects not started yet: handed back by a small GET, or held for a side thread."""
        self._ready: deque[Job] = deque()
        self._on_board: dict[Job, _Large] = {}
        self._live: set[_Large] = set()
        self._side_busy = 0

    # -- the feed ------------------------------------------------------------------------

    def next(self) -> Work | None:
        if self._ready:
            return self._ready.popleft()
        while True:
            handed_back = bool(self._waiting)
            plan = self._waiting.popleft() if handed_back else self._pull()
            if plan is None:
                return None
            if not handed_back and self._is_small(plan):
                task = self._small_task(plan)
                self._tasks.add(task)
                return task
            if self._side_busy >= SIDE_THREADS:
                self._waiting.appendleft(plan)
                return None
            self._start_large(plan)

    def finished(self) -> bool:
        return (
            self._plans is None
            and self._held is None
            and not self._waiting
            and not self._tasks
            and not self._live
            and not self._ready
            and self._committing <= 0
        )

    def on_part(self, job: Job, done: PartDone) -> None:
        self._on_board[job].download.record(done)

    def on_settled(self, work: Work, error: BaseException | None, result: object) -> None:
        if isinstance(work, Task):
            self._tasks.discard(work)
            if error is not None:
                raise error  # not a PartdlError: SmallFetcher reports those
            for each in result if isinstance(result, list) else (result,):
                self._small_settled(each)
            return
        large = self._on_board.pop(work)
        large.job = None
        self._on_side(large, lambda: self._settle(large, error))

    def _small_settled(self, result: object) -> None:
        if isinstance(result, PlannedObject):
            self._waiting.append(result)  # changed since the listing, or larger
        elif result is COMMITTING:
            # The committer may already have reported it (the count dips below 0
            # for a moment); either way the object counts as done only then.
            self._committing += 1
        else:
            assert isinstance(result, ObjectOutcome)
            self._on_outcome(result)

    def _deliver(self, outcome: ObjectOutcome) -> None:
        """From the committer's thread: a small object is in place (or failed there)."""

        def committed() -> None:
            self._committing -= 1
            self._on_outcome(outcome)

        # False once the run is over: an outcome nobody waits for any more.
        self._scheduler.call_soon(committed)

    # -- planning ----------------------------------------------------------------------

    def _pull(self) -> PlannedObject | None:
        held, self._held = self._held, None
        if held is not None:
            return held
        if self._plans is None:
            return None
        plan = next(self._plans, None)
        if plan is None:
            self._plans = None
        return plan

    def _is_small(self, plan: PlannedObject) -> bool:
        # Without a listing the GET itself tells the size: a larger object is handed back.
        return plan.listed is None or self._options.fits_one_part(plan.listed.size)

    def _small_task(self, plan: PlannedObject) -> Task:
        """``plan``'s GET as a task, with those of the small objects after it if it groups."""
        plans = [plan]
        if self._groups(plan):
            while len(plans) < GROUP_OBJECTS and (following := self._pull()) is not None:
                if not self._groups(following):
                    self._held = following
                    break
                plans.append(following)
        if len(plans) == 1:
            return Task(functools.partial(self._small.fetch_alone, plan), self._small_stop)
        group = functools.partial(self._small.fetch_group, tuple(plans))
        return Task(group, self._small_stop, width=min(len(plans), self._width))

    def _groups(self, plan: PlannedObject) -> bool:
        """Whether ``plan``'s GET may share a serving loop with other small objects'."""
        listed = plan.listed
        if self._width < 2 or listed is None or listed.size > GROUP_MAX_SIZE:
            return False
        if not self._options.fits_one_part(listed.size):
            return False
        kind = type(plan.backend)
        pipelined = self._pipelined.get(kind)
        if pipelined is None:
            pipelined = self._pipelined[kind] = isinstance(plan.backend, PipelinedBackend)
        return pipelined

    # -- large objects -------------------------------------------------------------------

    def _start_large(self, plan: PlannedObject) -> None:
        try:
            target = make_target(
                plan.destination, plan.checkpoint_file, checkpoint=self._options.checkpoint
            )
        except PartdlError as exc:
            self._on_outcome(_failed(plan, exc))
            return
        listed = plan.listed.last_modified if plan.listed else None
        download = ObjectDownload(
            plan.backend, target, self._options, last_modified=listed, stamp_mtime=True
        )
        large = _Large(plan, download)
        self._live.add(large)
        self._meter.track(download.progress)
        self._on_side(large, lambda: self._begin(large))

    def _begin(self, large: _Large) -> Job:
        """On a side thread: lock the destination, pin the object, open its temp file."""
        if large.lock is None:
            lock = files.DestinationLock(large.download.destination)
            lock.__enter__()
            large.lock = lock
        return large.download.begin(verify_here)

    def _settle(self, large: _Large, error: BaseException | None) -> Job | DownloadResult:
        """On a side thread: the checksum compare and the commit, or pin it again."""
        result = large.download.settle(error)
        return result if result is not None else large.download.begin(verify_here)

    def _on_side(self, large: _Large, step: Callable[[], Job | DownloadResult]) -> None:
        self._side_busy += 1

        def run() -> None:
            mtime = None
            try:
                value: Job | DownloadResult | BaseException = step()
                if isinstance(value, DownloadResult):
                    mtime = _mtime_of(large.download.destination)
            except BaseException as exc:
                value = exc
            self._scheduler.call_soon(lambda: self._side_done(_SideDone(large, value, mtime)))

        self._side.submit(run)

    def _side_done(self, done: _SideDone) -> None:
        self._side_busy -= 1
        large, value = done.large, done.value
        if isinstance(value, Job):
            large.job = value
            self._on_board[value] = large
            self._ready.append(value)
            return
        self._live.discard(large)
        self._release(large)
        if isinstance(value, DownloadResult):
            self._meter.untrack(large.download.progress, keep=True)
            self._on_outcome(_done(large.plan, value, done.mtime))
        elif isinstance(value, PartdlError):
            self._meter.untrack(large.download.progress, keep=False)
            self._on_outcome(_failed(large.plan, value))
        else:
            raise value

    @staticmethod
    def _release(large: _Large) -> None:
        lock, large.lock = large.lock, None
        if lock is not None:
            lock.__exit__(None, None, None)

    # -- stopping ----------------------------------------------------------------------

    def stop(self, side: ThreadPoolExecutor, exc: BaseException) -> None:
        """Everything stops: wait for the side threads, keep each large object resumable."""
        self._small_stop.set()
        for large in self._live:
            large.download.stop.set()
        side.shutdown(wait=True, cancel_futures=True)
        for large in self._live:
            # Also a job whose news was lost as the run ended: abort knows its own.
            with contextlib.suppress(PartdlError):
                large.download.abort(exc)
            self._release(large)


# -- one small object: one GET ----------------------------------------------------------


class SmallFetcher:
    """Fetches an object of one part with one GET, on a serving loop, into its buffer.

    The listing pinned the object: the GET carries ``If-Match`` on its ETag, and the
    answer's own headers give the size and the checksum. The body goes to a temp file
    beside the destination, is checked, takes the object's Last-Modified as mtime,
    and is renamed into place. A 412 (changed since the listing) or an object that
    turns out larger than one part is handed back (returned as its plan) for the
    engine, which HEADs and pins the new version.
    """

    def __init__(
        self,
        options: TransferOptions,
        stop: threading.Event,
        meter: Meter,
        *,
        committer: Committer,
        deliver: Callable[[ObjectOutcome], None],
    ) -> None:
        self._options = options
        self._stop = stop
        self._meter = meter
        self._committer = committer
        self._deliver = deliver
        # Read once per run, not per file (a umask changed during the run is not seen).
        self._umask = files.current_umask()

    def fetch(
        self, plan: PlannedObject, view: memoryview, sent: PendingWhole | None = None
    ) -> Placed | PlannedObject:
        """Fetch one small object; ``sent`` is its GET if already written (a group's)."""
        try:
            return self._fetch(plan, view, sent)
        except (ObjectChangedDuringRead, UnknownLength):
            return plan  # for the engine: a HEAD or a ranged probe may say what the GET did not
        except PartdlError as exc:
            return _failed(plan, exc)

    def fetch_alone(
        self, plan: PlannedObject, view: memoryview, width: int
    ) -> Placed | PlannedObject:
        """A task's one object (the grant of one GET is all it uses)."""
        return self.fetch(plan, view)

    def fetch_group(
        self, plans: tuple[PlannedObject, ...], view: memoryview, width: int
    ) -> list[Placed | PlannedObject]:
        """Fetch a few small objects on this loop, up to ``width`` GETs in flight.

        GETs are written ahead; each answer is read as it begins to arrive, so a slow
        one holds back no other, and the next GET is written as one is done. Each
        object is fetched, retried, verified and placed as :meth:`fetch` does it alone.
        """
        todo = deque(plans)
        waiting: list[tuple[PlannedObject, PendingWhole | None]] = []
        results: list[Placed | PlannedObject] = []
        try:
            while todo or waiting:
                while todo and len(waiting) < width:
                    plan = todo.popleft()
                    waiting.append((plan, self._begin(plan)))
                for index in sorted(_answered([sent for _, sent in waiting]), reverse=True):
                    plan, sent = waiting.pop(index)
                    results.append(self.fetch(plan, view, sent))
        finally:
            for _, sent in waiting:  # stopped: these answers are not read
                if sent is not None:
                    sent.close()
        return results

    def _begin(self, plan: PlannedObject) -> PendingWhole | None:
        """Write ``plan``'s GET; None if it was not (:meth:`fetch` then sends it itself
        and meets, and reports, whatever stopped it here)."""
        if self._stop.is_set():
            return None
        backend = cast(PipelinedBackend, plan.backend)
        try:
            return backend.begin_whole(plan.listed.etag if plan.listed else None)
        except PartdlError:
            return None

    def _fetch(
        self, plan: PlannedObject, view: memoryview, sent: PendingWhole | None
    ) -> Placed | PlannedObject:
        etag = plan.listed.etag if plan.listed else None
        attempts = Attempts(self._options.retry, self._stop, f"GET {plan.backend.source}")
        integrity_failures = 0
        while True:
            try:
                if sent is not None:
                    pending, sent = sent, None  # a retry sends a new GET
                    stat, body = pending.answer()
                else:
                    stat, body = plan.backend.read_whole(etag)
            except TransientError as exc:
                attempts.failed(exc)
                continue
            if plan.listed is None and not self._options.fits_one_part(stat.size):
                body.close()
                return plan
            try:
                written = self._write(plan, stat, body, view)
            except TransientError as exc:
                attempts.failed(exc)
                continue
            if written is None:
                integrity_failures += 1
                message = f"{plan.backend.source}: the bytes do not match the server's checksum"
                if integrity_failures > 1:
                    raise IntegrityError(message)
                logger.warning("%s; downloading it once more", message)
                continue
            checksum = written.checksum
            result = DownloadResult(
                path=plan.destination,
                size=stat.size,
                etag=stat.etag,
                crc64=checksum.value if checksum.algorithm is ChecksumAlgorithm.CRC64XZ else None,
                checksum=checksum,
                verified=stat.checksum is not None,
                parts_total=1 if stat.size else 0,
                parts_fetched=1 if stat.size else 0,
                parts_reused=0,
                restarts=integrity_failures,
            )
            return self._place(plan, written, _done(plan, result, written.mtime))

    def _write(
        self, plan: PlannedObject, stat: ObjectStat, body: RangeBody, view: memoryview
    ) -> _Written | None:
        """Stream ``body`` into a new temp file and finish it (mode, mtime) if it checks out.

        Returns the finished file, its descriptor still open, or None (and nothing left)
        when the checksum does not match.
        """
        destination = plan.destination
        temp = files.new_temp_path(destination)
        algorithm = codec.part_algorithm(stat)
        update = updater(algorithm)
        written = crc = 0
        try:
            # No reservation: the bytes follow at once, and a full disk fails the write.
            fd = files.create_temp(temp, stat.size, reserve=False)
        except BaseException:
            body.close()
            raise
        try:
            try:
                while written < stat.size:
                    if self._stop.is_set():
                        raise Stopped
                    count = body.readinto(view[: min(len(view), stat.size - written)])
                    if count <= 0:
                        raise TransientError(
                            f"short body: {plan.backend.source} ended after {written} "
                            f"of {stat.size} bytes"
                        )
                    pwrite_all(fd, view[:count], written, temp)
                    crc = update(crc, view[:count])
                    written += count
                    self._meter.add(count)
            finally:
                body.close()
            if stat.checksum is not None and crc != stat.checksum.value:
                self._meter.add(-written)
                os.close(fd)
                files.remove_quietly(temp)
                return None
            when = mtime_ns(stat.last_modified or _listed_modified(plan))
            mtime = _finish(fd, temp, files.final_mode(destination, self._umask), when)
        except BaseException as exc:
            if isinstance(exc, TransientError):
                self._meter.add(-written)
            with contextlib.suppress(OSError):
                os.close(fd)
            files.remove_quietly(temp)
            raise
        return _Written(Checksum(algorithm, crc), mtime, fd, temp)

    def _place(self, plan: PlannedObject, written: _Written, outcome: ObjectOutcome) -> Placed:
        """Hand a verified temp file to the group committer, which puts it into place."""
        deliver = self._deliver

        def done(error: PartdlError | None) -> None:
            deliver(outcome if error is None else _failed(plan, error))

        self._committer.submit(Finished(written.fd, written.temp, plan.destination, done))
        return COMMITTING


def _listed_modified(plan: PlannedObject) -> str | None:
    return plan.listed.last_modified if plan.listed else None


class _Written(NamedTuple):
    """A verified temp file, its mode and mtime set, its descriptor still open."""

    checksum: Checksum
    mtime: int
    fd: int
    temp: str


class _Committing(enum.Enum):
    COMMITTING = "committing"


COMMITTING = _Committing.COMMITTING
"""A small object's outcome comes later, from the group committer."""

Placed = ObjectOutcome | _Committing


def _finish(fd: int, temp: str, mode: int, when: int | None) -> int:
    """Give a small object's temp file its mode and mtime; return the mtime as the file
    system keeps it (``when``, to its precision), which the tree's state records."""
    try:
        os.fchmod(fd, mode)
        if when is not None:
            os.utime(fd, ns=(time.time_ns(), when))
        return os.fstat(fd).st_mtime_ns
    except OSError as exc:
        raise files.local_error(exc, temp, "finish") from exc


def _answered(sent: list[PendingWhole | None]) -> list[int]:
    """Which of a group's GETs to read now: those whose answer has begun to arrive, or
    is already known (not written, or failed to be), waiting up to ``_ANSWER_WAIT`` for
    one; if none came by then, the first, whose own read timeout then applies."""
    if len(sent) == 1:
        return [0]  # nothing to choose from: the read itself waits
    sockets: dict[int, int] = {}
    known = []
    for index, each in enumerate(sent):
        fd = -1 if each is None else each.fileno()
        if fd < 0:
            known.append(index)
        else:
            sockets[fd] = index
    if known:
        return known
    return [sockets[fd] for fd in _readable(list(sockets), _ANSWER_WAIT)] or [0]


def _readable(fds: list[int], timeout: float) -> list[int]:
    if hasattr(select, "poll"):  # no limit on descriptor numbers, unlike select()
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        return [fd for fd, _ in poller.poll(timeout * 1000)]
    readable, _, _ = select.select(fds, [], [], timeout)
    return readable


def _mtime_of(path: str) -> int | None:
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return None


def _failed(plan: PlannedObject, exc: PartdlError) -> ObjectOutcome:
    size = plan.listed.size if plan.listed else 0
    return ObjectOutcome(
        plan.key,
        plan.destination,
        Status.FAILED,
        size,
        error=exc,
        source=plan.backend.source,
        relative=plan.relative,
    )


def _done(plan: PlannedObject, result: DownloadResult, mtime: int | None = None) -> ObjectOutcome:
    return ObjectOutcome(
        plan.key,
        plan.destination,
        Status.DOWNLOADED,
        result.size,
        result=result,
        source=plan.backend.source,
        relative=plan.relative,
        mtime_ns=mtime,
    )
