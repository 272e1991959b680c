"""Running planned objects: THE SEAM between the batch layer and the transfers.

:func:`execute` takes the stream of :class:`PlannedObject` values that planning
(:mod:`partdl.batch`) makes and yields one :class:`ObjectOutcome` per object. The
interim implementation here keeps the issue's bounds with what the engine offers
today: a pool of ``task_num`` threads for objects of one part (one GET, no HEAD:
:class:`SmallFetcher`), and the engine, one object at a time with ``task_num`` parts,
for larger ones, run only while no small GET is in flight. The shared scheduler
replaces :func:`execute`; everything else stays.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from . import checkpoint as codec
from . import files
from .backend import Backend, RangeBody
from .crc import ChecksumAlgorithm, updater
from .engine import download
from .errors import IntegrityError, ObjectChangedDuringRead, PartdlError, TransientError
from .listing import ListedObject, WholeObjectBackend, mtime_ns
from .model import Checksum, DownloadResult, ObjectStat
from .transfer import TransferOptions
from .worker import Attempts, Stopped, pwrite_all

logger = logging.getLogger("partdl")

# How often the orchestrator wakes to report progress while it waits.
_TICK = 0.1


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


@dataclass(frozen=True, slots=True)
class PlannedObject:
    """One object to fetch, as planning hands it to :func:`execute`."""

    key: str
    backend: WholeObjectBackend
    destination: str
    listed: ListedObject | None
    """Size, ETag and Last-Modified from the listing; None for a key given by name."""
    checkpoint_file: str | None
    """Where a large object's checkpoint goes (None: beside the destination)."""
    relative: str | None = None
    """The object's path in its tree's state, or None outside a tree."""


class Meter:
    """Bytes in place across the batch: workers add, the calling thread reports."""

    def __init__(self, report: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._bytes = 0
        self._engine = 0
        self._report = report

    def add(self, count: int) -> None:
        with self._lock:
            self._bytes += count

    def engine_progress(self, consumed: int, total: int) -> None:
        """The engine's ``progress_callback`` for the large object it is running."""
        self._engine = consumed
        self._report()

    def engine_done(self, keep: bool) -> None:
        with self._lock:
            if keep:
                self._bytes += self._engine
            self._engine = 0

    @property
    def value(self) -> int:
        return self._bytes + self._engine

    def tick(self) -> None:
        self._report()


# -- the seam ----------------------------------------------------------------------------


def execute(
    plans: Iterable[PlannedObject], options: TransferOptions, meter: Meter
) -> Iterator[ObjectOutcome]:
    """Fetch every planned object; yield one outcome per object, on the calling thread.

    This is the one place the batch layer runs transfers, so the shared scheduler can
    take its place. Its contract: ``plans`` is pulled on the calling thread (pulling
    may block on a listing page and may call the batch's callbacks); at no moment more
    than ``options.task_num`` GETs are in flight; an object that ``fits_one_part``
    and has a listing costs one GET and no HEAD (:class:`SmallFetcher`), verified and
    renamed into place; larger ones go through the engine with the checkpoint
    ``plan.checkpoint_file``; workers add bytes to ``meter`` and ``meter.tick()`` is
    called at least every 0.1 s; an outcome is yielded only once its file is in place
    (or the object failed). Closing the generator stops every worker first.
    """
    yield from _InterimScheduler(options, meter).run(plans)


class _InterimScheduler:
    """Small objects on a pool of ``task_num``; a large one only while the pool is idle."""

    def __init__(self, options: TransferOptions, meter: Meter) -> None:
        self._options = options
        self._meter = meter
        self._stop = threading.Event()
        self._small = SmallFetcher(options, self._stop, meter)
        self._pending: set[Future[ObjectOutcome | PlannedObject]] = set()
        self._deferred: deque[PlannedObject] = deque()

    def run(self, plans: Iterable[PlannedObject]) -> Iterator[ObjectOutcome]:
        window = 2 * self._options.task_num
        with ThreadPoolExecutor(self._options.task_num, thread_name_prefix="partdl") as pool:
            try:
                for plan in plans:
                    if plan.listed is None or self._options.fits_one_part(plan.listed.size):
                        while len(self._pending) >= window:
                            yield from self._collect(_TICK)
                        self._pending.add(pool.submit(self._small.fetch, plan))
                    else:
                        # Parts of a started object go first: it runs alone, with
                        # every connection, once the small GETs in flight are done.
                        yield from self._drain()
                        yield run_large(plan, self._options, self._meter)
                    yield from self._collect(0)
                yield from self._drain()
            finally:
                if self._pending:
                    self._stop.set()
                    for future in self._pending:
                        future.cancel()
                    wait(self._pending)

    def _collect(self, timeout: float) -> Iterator[ObjectOutcome]:
        done, self._pending = wait(self._pending, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            outcome = future.result()
            if isinstance(outcome, PlannedObject):
                self._deferred.append(outcome)
            else:
                yield outcome
        self._meter.tick()

    def _drain(self) -> Iterator[ObjectOutcome]:
        while self._pending or self._deferred:
            while self._pending:
                yield from self._collect(_TICK)
            while self._deferred:
                yield run_large(self._deferred.popleft(), self._options, self._meter)


# -- one small object: one GET ----------------------------------------------------------


class _Buffers(threading.local):
    buffer: bytearray | None = None


class SmallFetcher:
    """Fetches an object of one part with one GET, on a pool thread.

    The listing pinned the object: the GET carries ``If-Match`` on its ETag, and the
    answer's own headers give the size and the checksum. The body goes to a temp file
    beside the destination, is checked, takes the object's Last-Modified as mtime,
    and is renamed into place. A 412 (changed since the listing) or an object that
    turns out larger than one part is handed back (returned as its plan) for the
    engine, which HEADs and pins the new version.
    """

    def __init__(self, options: TransferOptions, stop: threading.Event, meter: Meter) -> None:
        self._options = options
        self._stop = stop
        self._meter = meter
        self._buffers = _Buffers()

    def fetch(self, plan: PlannedObject) -> ObjectOutcome | PlannedObject:
        try:
            return self._fetch(plan)
        except ObjectChangedDuringRead:
            return plan
        except PartdlError as exc:
            return _failed(plan, exc)

    def _fetch(self, plan: PlannedObject) -> ObjectOutcome | PlannedObject:
        etag = plan.listed.etag if plan.listed else None
        attempts = Attempts(self._options.retry, self._stop, f"GET {plan.backend.source}")
        integrity_failures = 0
        while True:
            try:
                stat, body = plan.backend.read_whole(etag)
            except TransientError as exc:
                attempts.failed(exc)
                continue
            if plan.listed is None and not self._options.fits_one_part(stat.size):
                body.close()
                return plan
            try:
                checksum = self._write(plan, stat, body)
            except TransientError as exc:
                attempts.failed(exc)
                continue
            if checksum is None:
                integrity_failures += 1
                message = f"{plan.backend.source}: the bytes do not match the server's checksum"
                if integrity_failures > 1:
                    raise IntegrityError(message)
                logger.warning("%s; downloading it once more", message)
                continue
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
            return _done(plan, result)

    def _view(self) -> memoryview:
        if self._buffers.buffer is None:
            self._buffers.buffer = bytearray(self._options.chunk_size)
        return memoryview(self._buffers.buffer)

    def _write(self, plan: PlannedObject, stat: ObjectStat, body: RangeBody) -> Checksum | None:
        """Stream ``body`` into a new temp file and rename it into place if it checks out.

        Returns the checksum, or None (and nothing written) when it does not match.
        """
        destination = plan.destination
        temp = files.new_temp_path(destination)
        algorithm = codec.part_algorithm(stat)
        update = updater(algorithm)
        written = crc = 0
        try:
            fd = files.create_temp(temp, stat.size)
        except BaseException:
            body.close()
            raise
        try:
            view = self._view()
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
            _commit(fd, temp, destination, when)
        except BaseException as exc:
            if isinstance(exc, TransientError):
                self._meter.add(-written)
            with contextlib.suppress(OSError):
                os.close(fd)
            files.remove_quietly(temp)
            raise
        return Checksum(algorithm, crc)


def _listed_modified(plan: PlannedObject) -> str | None:
    return plan.listed.last_modified if plan.listed else None


def _commit(fd: int, temp: str, destination: str, when: int | None) -> None:
    try:
        os.fchmod(fd, files.final_mode(destination))
        if when is not None:
            os.utime(fd, ns=(time.time_ns(), when))
        os.fsync(fd)
    except OSError as exc:
        raise files.local_error(exc, temp, "finish") from exc
    os.close(fd)
    try:
        os.replace(temp, destination)
    except OSError as exc:
        raise files.local_error(exc, destination, "move the download into") from exc
    files.fsync_directory(os.path.dirname(destination))


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


def _done(plan: PlannedObject, result: DownloadResult) -> ObjectOutcome:
    return ObjectOutcome(
        plan.key,
        plan.destination,
        Status.DOWNLOADED,
        result.size,
        result=result,
        source=plan.backend.source,
        relative=plan.relative,
    )


# -- one large object: the engine --------------------------------------------------------


def run_large(plan: PlannedObject, options: TransferOptions, meter: Meter) -> ObjectOutcome:
    """Download one object with the engine: HEAD, parts on ``task_num``, checkpoint."""
    recorder = _Recorder(plan.backend)
    try:
        result = download(
            recorder,
            plan.destination,
            part_size=options.part_size,
            task_num=options.task_num,
            checkpoint=options.checkpoint,
            checkpoint_file=plan.checkpoint_file if options.checkpoint else None,
            progress_callback=meter.engine_progress,
            retry=options.retry,
            chunk_size=options.chunk_size,
        )
    except PartdlError as exc:
        meter.engine_done(keep=False)
        return _failed(plan, exc)
    except BaseException:
        meter.engine_done(keep=False)
        raise
    meter.engine_done(keep=True)
    last_modified = recorder.seen.last_modified if recorder.seen else None
    when = mtime_ns(last_modified or _listed_modified(plan))
    if when is not None:
        with contextlib.suppress(OSError):
            os.utime(plan.destination, ns=(time.time_ns(), when), follow_symlinks=False)
    return _done(plan, result)


class _Recorder:
    """The backend, keeping the engine's last HEAD (for the file's mtime)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.seen: ObjectStat | None = None

    @property
    def source(self) -> str:
        return self._backend.source

    def stat(self) -> ObjectStat:
        self.seen = self._backend.stat()
        return self.seen

    def read(self, start: int, end: int, stat: ObjectStat) -> RangeBody:
        return self._backend.read(start, end, stat)
