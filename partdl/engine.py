"""The orchestrator: one HEAD, a plan, resume or start fresh, verification, one rename.

The fetching itself runs in :mod:`partdl.scheduler`, which owns the pool; this
module decides what to fetch and what to keep. It alone owns the checkpoint and the
list of finished parts, so neither needs a lock: the scheduler hands finished parts
back on this thread as :class:`PartDone` values.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import checkpoint as codec
from . import files
from .backend import Backend, RangeBody
from .control import Control, ControlAction
from .crc import ChecksumAlgorithm, combine_all, crc64, updater
from .errors import (
    DownloadCancelledError,
    DownloadPausedError,
    IntegrityError,
    LocalFileError,
    NotFoundError,
    ObjectChangedDuringRead,
    ObjectChangedError,
    TransferError,
    TransientError,
)
from .listing import mtime_ns
from .model import Checksum, DownloadResult, ObjectStat
from .options import ProgressCallback, Target, TransferOptions
from .plan import MiB, Part, choose_part_size, plan_parts
from .scheduler import Job, Scheduler
from .worker import Attempts, PartDone, PartWorker, Progress, chunk_buffer, pwrite_all

if TYPE_CHECKING:
    from .api import download as download  # noqa: PLC0414 (re-exported for the CLI)

logger = logging.getLogger("partdl")

# A changed ETag restarts the download from scratch at most this many times.
MAX_RESTARTS = 3
# A checkpoint larger than this is not one partdl wrote (100,000 parts take ~5 MB).
_CHECKPOINT_READ_LIMIT = 256 * MiB


@dataclass(slots=True)
class _Job:
    """One temp file being filled for one version of the object."""

    stat: ObjectStat
    parts: tuple[Part, ...]
    fd: int
    temp_path: str
    checkpoint: files.CheckpointFile | None
    done: dict[int, int] = field(default_factory=dict)
    reused: int = 0
    fetched: int = 0
    in_place: bool = False
    """``temp_path`` is the destination itself, already complete (see ``_adopt``)."""

    @property
    def part_size(self) -> int:
        return self.parts[0].size if self.parts else 0

    def record(self, result: PartDone) -> None:
        self.done[result.index] = result.crc
        if result.fetched:
            self.fetched += 1
        if self.checkpoint is not None:
            self.checkpoint.record(result.index, result.crc)

    def suspend(self, *, durable: bool) -> None:
        """Stop for now: keep what a later run can resume, remove what it cannot.

        With ``durable`` the journal is fsynced, so that a resume after a power cut
        still knows its parts; scratch data (``fsync=False``) is left to the kernel.
        """
        if self.checkpoint is None or not (self.stat.ranged or self.done):
            # Without ranges the one stream can only start over: keep nothing to resume.
            self.discard()
            return
        os.close(self.fd)
        try:
            self.checkpoint.close(durable=durable)
        except LocalFileError:
            logger.exception("could not save the checkpoint %s", self.checkpoint.path)

    def discard(self) -> None:
        os.close(self.fd)
        self._drop_temp()
        if self.checkpoint is not None:
            self.checkpoint.delete()

    def _drop_temp(self) -> None:
        # An adopted destination is the user's file, never a temp file to throw away.
        if not self.in_place:
            files.remove_quietly(self.temp_path)

    def commit(self, destination: str, *, durable: bool, mtime: int | None = None) -> None:
        """Move the complete file into place; with ``durable``, so that it survives a power cut.

        The durable order: the data (mostly written back already, see
        ``files.start_writeback``) and the file's mode are fsynced, the temp file is
        renamed over the destination, the checkpoint is removed, and only then is the
        directory fsynced, so that both the rename and the removal are on disk when
        this returns. A crash between any two steps leaves a state the next run
        resolves without a wrong file (see docs/reliability.md).
        """
        if self.checkpoint is not None:
            self.checkpoint.close()
        try:
            if not self.in_place:
                # Private (0600) while incomplete; once complete, the mode any new file
                # would get, or the mode of the file it replaces.
                os.fchmod(self.fd, files.final_mode(destination))
            if mtime is not None:
                os.utime(self.fd, ns=(time.time_ns(), mtime))
            if durable:
                # An adopted destination too: the run that renamed it may not have synced.
                os.fsync(self.fd)
            os.close(self.fd)
            if not self.in_place:
                os.replace(self.temp_path, destination)
        except OSError as exc:
            raise files.local_error(exc, destination, "move the download into") from exc
        if self.checkpoint is not None:
            self.checkpoint.delete()
        if durable:
            directory = os.path.dirname(destination)
            files.fsync_directory(directory)
            if self.checkpoint is not None:
                other = os.path.dirname(self.checkpoint.path)
                if other != directory:
                    files.fsync_directory(other)


class _Reporter:
    """Calls the user's progress callback from the orchestrator thread, on change only."""

    def __init__(self, callback: ProgressCallback | None, progress: Progress) -> None:
        self._callback = callback
        self._progress = progress
        self._last = -1
        self.total = 0

    def report(self, *, force: bool = False) -> None:
        value = self._progress.value
        if self._callback is not None and (force or value != self._last):
            self._last = value
            self._callback(value, self.total)


Verify = Callable[
    [
        Callable[[tuple[Part, int]], PartDone | None],
        Iterable[tuple[Part, int]],
        Callable[[PartDone | None], None],
    ],
    None,
]
"""How recorded parts are re-read: ``verify(check, items, consume)`` (see :meth:`Scheduler.map`)."""


def verify_here(
    check: Callable[[tuple[Part, int]], PartDone | None],
    items: Iterable[tuple[Part, int]],
    consume: Callable[[PartDone | None], None],
) -> None:
    """Re-read recorded parts one after another on the calling thread (off the pool)."""
    for item in items:
        consume(check(item))


class ObjectDownload:
    """One object's lifecycle, as a job among others in a (possibly shared) scheduler.

    :meth:`begin` pins the object (a HEAD, again after a restart), resumes from its
    checkpoint (verifying recorded parts through ``verify``) or starts fresh, opens the
    temp file and returns the scheduler :class:`Job` for the parts still missing. The
    orchestrator hands each finished part to :meth:`record`, and the job's end to
    :meth:`settle`, which compares the checksum and commits (returning the result),
    or discards what is wrong and returns None: call :meth:`begin` again. An error
    from outside the job goes to :meth:`abort`. The calls come one after another,
    never at once, though not always from the same thread; that is what lets the
    temp file and the checkpoint go without a lock.
    """

    def __init__(
        self,
        backend: Backend,
        target: Target,
        options: TransferOptions,
        *,
        progress_callback: ProgressCallback | None = None,
        control: Control | None = None,
        progress: Progress | None = None,
        last_modified: str | None = None,
        stamp_mtime: bool = False,
    ) -> None:
        self._backend = backend
        self._target = target
        self._options = options
        self._control = control
        self.stop = threading.Event()
        self.progress = progress if progress is not None else Progress()
        self._reporter = _Reporter(progress_callback, self.progress)
        self._stamp_mtime = stamp_mtime
        self._listed_modified = last_modified
        self._stat: ObjectStat | None = None
        self._job: _Job | None = None
        self._writeback: files.Writeback | None = None
        self._restarts = 0
        self._integrity_failures = 0

    @property
    def source(self) -> str:
        return self._backend.source

    @property
    def destination(self) -> str:
        return self._target.destination

    # -- the lifecycle -----------------------------------------------------------------

    def begin(self, verify: Verify) -> Job:
        """Pin the object and open its temp file; the job of every part still missing."""
        stat = self._stat
        if stat is None:
            try:
                stat = self._stat = self._head()
            except NotFoundError:
                self._forget()
                raise
        job = self._job = self._open(verify, stat)
        algorithm = codec.part_algorithm(stat)
        missing = [part for part in job.parts if part.index not in job.done]
        self._reporter.report(force=True)
        # Scratch data (fsync=False) is left to the kernel: no early writeback either.
        if self._options.fsync:
            self._writeback = files.Writeback(job.fd, job.temp_path)
        worker = self._worker(job, self._writeback)
        return Job(worker, missing, algorithm, splittable=stat.ranged)

    def record(self, done: PartDone) -> None:
        assert self._job is not None
        self._job.record(done)

    def settle(self, error: BaseException | None) -> DownloadResult | None:
        """The job ended: commit and return the result, or None to begin again.

        Raises what cannot be recovered here, having kept what a later run can resume.
        """
        job = self._job
        assert job is not None
        self._job = None
        try:
            self._close_writeback(check=error is None)
        except BaseException:
            job.suspend(durable=self._options.fsync)
            raise
        if isinstance(error, ObjectChangedDuringRead):
            job.discard()
            self._restarts += 1
            if self._restarts > MAX_RESTARTS:
                raise ObjectChangedError(
                    f"{self._backend.source} changed {self._restarts} times during the download"
                ) from error
            logger.warning("%s changed during the download; starting over", self._backend.source)
            self._stat = None
            return None
        if isinstance(error, NotFoundError):
            # The object went away mid-download: nothing is left to resume.
            job.discard()
            raise error
        if error is not None:
            job.suspend(durable=self._options.fsync)
            raise error
        algorithm = codec.part_algorithm(job.stat)
        value = combine_all(algorithm, ((job.done[p.index], p.size) for p in job.parts))
        checksum = Checksum(algorithm, value)
        if job.stat.checksum is not None and checksum.value != job.stat.checksum.value:
            job.discard()
            self._integrity_failures += 1
            message = (
                f"{self._backend.source}: computed {checksum.algorithm.value} "
                f"{checksum.value} but the server published {job.stat.checksum.value}"
            )
            if self._integrity_failures > 1:
                raise IntegrityError(message)
            logger.warning("%s; downloading once more from scratch", message)
            self._restarts += 1
            self._stat = None
            return None
        when = None
        if self._stamp_mtime:
            when = mtime_ns(job.stat.last_modified or self._listed_modified)
        job.commit(self._target.destination, durable=self._options.fsync, mtime=when)
        self._reporter.report(force=True)
        return self._result(job, checksum)

    def abort(self, exc: BaseException) -> None:
        """Something outside the job stopped it: keep what can resume, unless cancelled."""
        job, self._job = self._job, None
        self.stop.set()
        if job is None:
            if isinstance(exc, _Cancelled):
                raise DownloadCancelledError("download cancelled") from None
            return
        self._close_writeback(check=False)  # the error in flight says more
        if isinstance(exc, _Cancelled):
            job.discard()
            raise DownloadCancelledError("download cancelled") from None
        job.suspend(durable=self._options.fsync)

    def tick(self) -> None:
        """Report progress and act on the Control; on the orchestrator thread."""
        self._reporter.report()
        self._check_control()

    def _close_writeback(self, *, check: bool) -> None:
        writeback, self._writeback = self._writeback, None
        if writeback is not None:
            writeback.close(check=check)

    # -- pinning -----------------------------------------------------------------------

    def _forget(self) -> None:
        """The object is gone: a checkpoint of ours for it can never be resumed."""
        path = self._target.checkpoint_path
        saved = self._load_checkpoint(path) if path else None
        if saved is None or path is None:
            return
        if (saved.source, saved.destination) != (self._backend.source, self._target.destination):
            return
        logger.info("%s no longer exists: removing its checkpoint", self._backend.source)
        if files.is_temp_for(saved.destination, saved.temp_path):
            files.remove_quietly(saved.temp_path)
        files.remove_quietly(path)

    def _head(self) -> ObjectStat:
        """Look the object up (a HEAD, or a URL's ranged GET), retrying transient
        failures like any ranged GET."""
        # No worker of this object runs meanwhile; its stop event still cuts a backoff
        # short when everything is stopping. The error the backend raises names its request.
        attempts = Attempts(self._options.retry, self.stop, f"looking up {self._backend.source}")
        while True:
            try:
                stat = self._backend.stat()
                break
            except TransientError as exc:
                attempts.failed(exc)
        if not stat.ranged:  # said here, where the plan is made, not by the backend
            logger.warning(
                "%s ignores byte ranges: downloading it as one stream", self._backend.source
            )
        return stat

    def _result(self, job: _Job, checksum: Checksum) -> DownloadResult:
        is_crc64 = checksum.algorithm is ChecksumAlgorithm.CRC64XZ
        return DownloadResult(
            path=self._target.destination,
            size=job.stat.size,
            etag=job.stat.etag,
            crc64=checksum.value if is_crc64 else None,
            checksum=checksum,
            verified=job.stat.checksum is not None,
            parts_total=len(job.parts),
            parts_fetched=job.fetched,
            parts_reused=job.reused,
            restarts=self._restarts,
        )

    # -- opening a job: resume from a checkpoint, or start fresh ---------------------

    def _open(self, verify: Verify, stat: ObjectStat) -> _Job:
        self.stop.clear()
        self._reporter.total = stat.size
        self.progress.reset()
        job = self._resume(verify, stat) if self._target.checkpoint_path else None
        return job if job is not None else self._fresh(stat)

    def _fresh(self, stat: ObjectStat) -> _Job:
        destination = self._target.destination
        part_size = choose_part_size(stat.size, self._options.part_size, ranged=stat.ranged)
        files.remove_stale_temps(destination)
        self._drop_orphaned_checkpoint()
        temp_path = files.new_temp_path(destination)
        fd = files.create_temp(temp_path, stat.size)
        checkpoint = None
        if self._target.checkpoint_path is not None:
            base = codec.Checkpoint(
                source=self._backend.source,
                destination=destination,
                temp_path=temp_path,
                stat=stat,
                part_size=part_size,
            )
            checkpoint = files.CheckpointFile(self._target.checkpoint_path, base)
            try:
                # Written before the first byte so a crash never orphans the temp file.
                checkpoint.open()
            except LocalFileError:
                os.close(fd)
                files.remove_quietly(temp_path)
                raise
        logger.info("downloading %s (%d bytes) to %s", self._backend.source, stat.size, destination)
        return _Job(stat, plan_parts(stat.size, part_size), fd, temp_path, checkpoint)

    def _drop_orphaned_checkpoint(self) -> None:
        """Remove ``<destination>.dcp`` when this run keeps its checkpoint elsewhere or none.

        Its temp file went with the stale temps, so it can never resume; left, it would
        outlive the download (a run with ``--no-checkpoint`` after an interrupted one).
        """
        default = self._target.destination + ".dcp"
        if self._target.checkpoint_path == default:
            return
        saved = self._load_checkpoint(default)
        if saved is not None and saved.destination == self._target.destination:
            logger.info("removing the checkpoint %s: this run does not use it", default)
            files.remove_quietly(default)

    def _load_checkpoint(self, path: str) -> codec.Checkpoint | None:
        data = files.read_small(path, _CHECKPOINT_READ_LIMIT)
        if data is None:
            return None
        try:
            return codec.decode(data)
        except codec.CheckpointInvalid as exc:
            # Not removed here: it may not even be ours. A fresh start replaces it.
            logger.warning("ignoring checkpoint %s: %s", path, exc)
            return None

    def _mismatch(self, saved: codec.Checkpoint, stat: ObjectStat) -> str | None:
        destination = self._target.destination
        if saved.source != self._backend.source or saved.destination != destination:
            return "it belongs to another download"
        if saved.stat != stat:
            return "the object changed since it was written"
        requested = self._options.part_size
        if requested is not None and requested != saved.part_size:
            return f"its part size {saved.part_size} differs from the requested {requested}"
        return None

    def _resume(self, verify: Verify, stat: ObjectStat) -> _Job | None:
        path = self._target.checkpoint_path
        assert path is not None
        saved = self._load_checkpoint(path)
        if saved is None:
            return None
        # The temp path comes from an untrusted file: only ever touch names partdl makes.
        ours = files.is_temp_for(self._target.destination, saved.temp_path)
        reason = self._mismatch(saved, stat) or (None if ours else "its temp path is not ours")
        fd = files.open_temp(saved.temp_path, stat.size) if reason is None else None
        if fd is None and reason is None:
            adopted = self._adopt(verify, saved, stat)
            if adopted is not None:
                return adopted
        if fd is None:
            logger.info(
                "starting over: checkpoint %s unusable (%s)", path, reason or "no temp file"
            )
            if ours:
                files.remove_quietly(saved.temp_path)
            files.remove_quietly(path)
            return None
        parts = plan_parts(stat.size, saved.part_size)
        job = _Job(stat, parts, fd, saved.temp_path, checkpoint=None)
        self._verify(verify, job, saved.parts)
        # Rewritten with only the parts that verified, which also compacts the journal.
        job.checkpoint = files.CheckpointFile(path, dataclasses.replace(saved, parts=job.done))
        try:
            job.checkpoint.open()
        except LocalFileError:
            os.close(fd)
            raise
        logger.info("resuming %s: %d of %d parts verified on disk", path, job.reused, len(parts))
        return job

    def _adopt(self, verify: Verify, saved: codec.Checkpoint, stat: ObjectStat) -> _Job | None:
        """The destination itself, when a run died between renaming it and deleting its checkpoint.

        That checkpoint records every part and its temp file is gone; if the destination
        holds exactly the recorded bytes, it is the finished download, and nothing is
        fetched again. Anything less and the caller starts over as usual.
        """
        parts = plan_parts(stat.size, saved.part_size)
        if len(saved.parts) != len(parts) or self._target.checkpoint_path is None:
            return None
        destination = self._target.destination
        fd = files.open_temp(destination, stat.size)
        if fd is None:
            return None
        checkpoint = files.CheckpointFile(self._target.checkpoint_path, saved)
        job = _Job(stat, parts, fd, destination, checkpoint, in_place=True)
        self._verify(verify, job, saved.parts)
        if job.reused != len(parts):
            os.close(fd)
            self.progress.reset()  # what verified is fetched again: count it once
            return None
        logger.info("%s already holds this version of the object", destination)
        return job

    def _verify(self, verify: Verify, job: _Job, recorded: Mapping[int, int]) -> None:
        """Re-read recorded parts; keep those whose bytes still match their CRC."""
        worker = self._worker(job)
        checks = ((job.parts[index], crc) for index, crc in sorted(recorded.items()))
        verified: dict[int, int] = {}

        def keep(result: PartDone | None) -> None:
            if result is not None:
                verified[result.index] = result.crc

        try:
            verify(lambda item: worker.verify(*item), checks, keep)
        except _Cancelled:
            job.discard()
            # The job holds no CheckpointFile until its parts are verified: remove it here.
            if self._target.checkpoint_path is not None:
                files.remove_quietly(self._target.checkpoint_path)
            raise DownloadCancelledError("download cancelled") from None
        except BaseException:
            os.close(job.fd)
            raise
        job.done = verified
        job.reused = len(verified)
        stale = len(recorded) - len(verified)
        if stale:
            logger.warning("%d recorded parts failed verification and will be fetched again", stale)

    # -- fetching ---------------------------------------------------------------------

    def _worker(self, job: _Job, writeback: files.Writeback | None = None) -> PartWorker:
        algorithm = codec.part_algorithm(job.stat)
        return PartWorker(
            backend=self._backend,
            stat=job.stat,
            fd=job.fd,
            temp_path=job.temp_path,
            update=updater(algorithm),
            retry=self._options.retry,
            chunk_size=self._options.chunk_size,
            stop=self.stop,
            progress=self.progress,
            writeback=None if writeback is None else writeback.note,
        )

    def _check_control(self) -> None:
        control = self._control
        if control is None or control.action is None:
            return
        if control.action is ControlAction.CANCEL:
            raise _Cancelled
        if self._target.checkpoint_path is None:
            raise DownloadPausedError("download paused; without a checkpoint nothing was kept")
        raise DownloadPausedError("download paused; call again to resume")


class _Cancelled(Exception):
    """Internal: the Control asked to cancel; the job is discarded, not suspended."""


class Downloader:
    """Runs one ``download`` call: one :class:`ObjectDownload` alone in its scheduler."""

    def __init__(
        self,
        backend: Backend,
        target: Target,
        options: TransferOptions,
        *,
        progress_callback: ProgressCallback | None = None,
        control: Control | None = None,
    ) -> None:
        self._target = target
        self._options = options
        self._object = ObjectDownload(
            backend, target, options, progress_callback=progress_callback, control=control
        )

    def run(self) -> DownloadResult:
        options = self._options
        with (
            files.DestinationLock(self._target.destination),
            Scheduler(options.task_num, options.chunk_size) as scheduler,
        ):
            return self._run(scheduler)

    def _run(self, scheduler: Scheduler) -> DownloadResult:
        target = self._object

        def verify(
            check: Callable[[tuple[Part, int]], PartDone | None],
            items: Iterable[tuple[Part, int]],
            consume: Callable[[PartDone | None], None],
        ) -> None:
            # Nothing is being fetched yet: the whole pool verifies.
            scheduler.map(check, items, consume, stop=target.stop, on_tick=target.tick)

        while True:
            job = target.begin(verify)
            try:
                outcome = scheduler.fetch(
                    [job], on_part=lambda _, done: target.record(done), on_tick=target.tick
                )
            except BaseException as exc:
                target.abort(exc)
                raise
            result = target.settle(outcome[job])
            if result is None:
                continue
            stats = scheduler.stats
            if stats.splits or stats.abandons:
                logger.info(
                    "%d GETs for %d parts: %d ranges split, %d slow connections abandoned",
                    stats.gets,
                    result.parts_fetched,
                    stats.splits,
                    stats.abandons,
                )
            return result


StreamOpener = Callable[[], tuple[RangeBody, str | None]]
"""Opens a whole object's body of unknown length: the body and the object's ETag."""


def stream_download(
    open_stream: StreamOpener,
    target: Target,
    options: TransferOptions,
    *,
    progress_callback: ProgressCallback | None = None,
    control: Control | None = None,
) -> DownloadResult:
    """Fetch an object no one gives a length for, as one stream read to its end.

    Without ranges or a length nothing of it can be resumed: no checkpoint is kept, and
    a failure, a pause or a cancel leaves nothing. The file is still written beside the
    destination and moved into place as every download is (durably, unless ``fsync``
    is off); its CRC-64 is computed, but there is nothing to verify it against.
    """
    with files.DestinationLock(target.destination):
        files.remove_stale_temps(target.destination)
        temp_path = files.new_temp_path(target.destination)
        fd = files.create_temp(temp_path, 0, reserve=False)
        job = _Job(ObjectStat(0, None, None, ranged=False), (), fd, temp_path, None)
        try:
            size, crc, etag = _pump(
                open_stream, fd, temp_path, options.chunk_size, progress_callback, control
            )
        except BaseException:
            job.discard()
            raise
        job.commit(target.destination, durable=options.fsync)
    return DownloadResult(
        path=target.destination,
        size=size,
        etag=etag,
        crc64=crc,
        checksum=Checksum(ChecksumAlgorithm.CRC64XZ, crc),
        verified=False,
        parts_total=1,
        parts_fetched=1,
        parts_reused=0,
        restarts=0,
    )


def _pump(
    open_stream: StreamOpener,
    fd: int,
    path: str,
    chunk_size: int,
    progress_callback: ProgressCallback | None,
    control: Control | None,
) -> tuple[int, int, str | None]:
    """Copy the stream into ``fd``: its size, CRC-64 and ETag."""
    body, etag = open_stream()
    buffer = chunk_buffer(chunk_size)
    size = crc = 0
    try:
        while count := body.readinto(buffer):
            pwrite_all(fd, buffer[:count], size, path)
            crc = crc64(buffer[:count], crc)
            size += count
            if progress_callback is not None:
                progress_callback(size, 0)  # 0: the total is not known
            if control is not None and control.action is ControlAction.CANCEL:
                raise DownloadCancelledError("download cancelled")
            if control is not None and control.action is ControlAction.PAUSE:
                raise DownloadPausedError("download paused; a stream cannot resume: nothing kept")
    except TransientError as exc:
        raise TransferError(f"{exc}; after {size} bytes of a stream that cannot resume") from exc
    finally:
        body.close()
    return size, crc, etag


def __getattr__(name: str) -> Any:
    # Compatibility for callers of the former ``partdl.engine.download`` (the CLI):
    # the entry points live in partdl.api, which imports this module.
    if name == "download":
        from .api import download

        return download
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
