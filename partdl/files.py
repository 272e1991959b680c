"""Local files: the preallocated temp file, the atomic checkpoint, the final rename.

Every file partdl creates is mode 0600 and opened with ``O_NOFOLLOW`` so that a
symlink planted at a predictable name cannot redirect writes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import random
import re
import stat
import threading

from . import checkpoint as codec
from .errors import DownloadLockedError, LocalFileError

logger = logging.getLogger("partdl")

_TEMP_SUFFIX = re.compile(r"\.partdl-[0-9a-f]{8}\.tmp")
_TEMP_NAME = re.compile(r"(.+)\.partdl-[0-9a-f]{8}\.tmp", re.DOTALL)
_STAGING_SUFFIX = re.compile(r"\.[0-9a-f]{8}\.new")
_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def local_error(exc: OSError, path: str, action: str) -> LocalFileError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return LocalFileError(exc.errno or 0, f"cannot {action} {path}: {reason}")


# Temp names come from a generator seeded once from the OS (again in a forked child,
# which must not repeat its parent's names), as ``tempfile``'s do: ``secrets`` read
# ``os.urandom`` for every name, which cost a small object more than its own
# bookkeeping. A name only has to differ from the other temp files beside the same
# destination, not to be secret: ``O_EXCL`` and ``O_NOFOLLOW`` refuse a planted file
# or link. The names keep the form every earlier partdl made, so the temp files of a
# killed run are recognised (and swept) whichever version made them.
_names = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_names.seed)


def new_temp_path(destination: str) -> str:
    # One call into C: safe from any thread without a lock.
    return f"{destination}.partdl-{_names.getrandbits(32):08x}.tmp"


def is_temp_for(destination: str, temp_path: str) -> bool:
    """Whether ``temp_path`` is a name partdl could have chosen for ``destination``."""
    if not temp_path.startswith(destination):
        return False
    return _TEMP_SUFFIX.fullmatch(temp_path[len(destination) :]) is not None


def temp_owner(name: str) -> str | None:
    """The name of the file that ``name`` would be partdl's temp file for, if any."""
    match = _TEMP_NAME.fullmatch(name)
    return None if match is None else match.group(1)


def remove_stale_temps(destination: str) -> None:
    """Remove temp files an earlier run for ``destination`` left without a usable checkpoint.

    Only names :func:`new_temp_path` makes for this destination qualify, and the caller
    holds the destination's lock, so no live download owns them.
    """
    directory, name = os.path.split(destination)
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if entry.startswith(name) and is_temp_for(name, entry):
            logger.info("removing stale temp file %s", entry)
            remove_quietly(os.path.join(directory, entry))


def create_temp(path: str, size: int, *, reserve: bool = True) -> int:
    """Create ``path`` exclusively and return its descriptor.

    With ``reserve`` the file's ``size`` bytes are allocated first, so a full disk
    shows before the first request of a large object; an object fetched by one GET
    is written at once, and the disk says so just as well on that write.
    """
    try:
        fd = os.open(path, _CREATE_FLAGS, 0o600)
    except OSError as exc:
        raise local_error(exc, path, "create") from exc
    if not reserve:
        return fd
    try:
        _preallocate(fd, size)
    except OSError as exc:
        os.close(fd)
        remove_quietly(path)
        raise local_error(exc, path, "reserve space for") from exc
    return fd


def _preallocate(fd: int, size: int) -> None:
    if size == 0:
        return
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, 0, size)
            return
        except OSError as exc:
            # Some file systems cannot reserve blocks; a sparse file still works.
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    os.ftruncate(fd, size)


def open_temp(path: str, size: int) -> int | None:
    """Reopen an existing temp file for resuming, or None if it is unusable."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size != size:
        os.close(fd)
        return None
    return fd


def remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def current_umask() -> int:
    """The process's umask, read without changing it (once per run of small objects)."""
    # /proc tells without the set-and-restore dance, which races with other threads.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def final_mode(destination: str, umask: int | None = None) -> int:
    """Permission bits for the finished file: those of the file it replaces, if any,
    else ``0666 & ~umask`` as for any file a program creates.

    ``umask`` is the one :func:`current_umask` read when the caller began; None reads
    it now.
    """
    # Most destinations do not exist yet (a tree's new files): os.access says so without
    # the cost of raising and catching an OSError, once per small object.
    if os.access(destination, os.F_OK):
        try:
            return stat.S_IMODE(os.stat(destination).st_mode)
        except OSError:
            pass
    return 0o666 & ~(current_umask() if umask is None else umask)


def move_into_place(temp: str, destination: str) -> None:
    """Rename a finished temp file over ``destination``; if that fails, the temp goes."""
    try:
        os.replace(temp, destination)
    except OSError as exc:
        remove_quietly(temp)
        raise local_error(exc, destination, "move the download into") from exc


def fsync_directory(path: str) -> None:
    """Make a rename in ``path`` durable; some file systems refuse, which is harmless."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Writeback:
    """Keeps the kernel writing a temp file back to disk while the download runs.

    Workers call :meth:`note` as each range is complete; a helper thread answers with
    ``fdatasync``, again as soon as more ranges completed during the last one, so the
    disk writes while the network delivers and the fsync before the rename finds
    little left to wait for. Measured against ``sync_file_range(WRITE)`` and
    ``posix_fadvise(DONTNEED)`` on each finished part (benchmarks/notes.md): those two
    submit the I/O on the worker's own thread and stall it behind the block layer.

    Once an ``fdatasync`` returns, the pages it wrote are clean and are released
    (``posix_fadvise(DONTNEED)``): the next ranges are written into pages the kernel
    just freed instead of fresh ones, and a download larger than the free memory does
    not push the machine's other data out of the page cache. On this VM's disk that
    took 15-33% off a durable download of 1 GiB (benchmarks/notes.md).

    An error the helper meets is kept and raised by :meth:`close`: the kernel reports
    a writeback error to one fsync only, which must not be lost on this thread.
    """

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._path = path
        self._wanted = threading.Event()
        self._closing = False
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="partdl-writeback", daemon=True)
        self._thread.start()

    def note(self, offset: int, length: int) -> None:
        """``[offset, offset + length)`` is written; called from any worker thread."""
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                return
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self._error = exc
                return
            release_cached(self._fd)

    def close(self, *, check: bool = True) -> None:
        """Stop the helper (before the descriptor closes); with ``check``, raise what it met."""
        self._closing = True
        self._wanted.set()
        self._thread.join()
        if check and self._error is not None:
            raise local_error(self._error, self._path, "write to")


def release_cached(fd: int) -> None:
    """Ask the kernel to drop ``fd``'s clean cached pages (dirty ones it starts writing).

    Only advice: where it is refused or there is no ``posix_fadvise``, nothing changes.
    """
    if _FADVISE is not None:
        with contextlib.suppress(OSError):
            _FADVISE(fd, 0, 0, os.POSIX_FADV_DONTNEED)


_FADVISE = getattr(os, "posix_fadvise", None)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new bytes.

    No fsync: a crash of the process alone never needs one, and the resume path
    re-verifies every part (see :class:`CheckpointFile`).
    """
    staging = f"{path}.{os.urandom(4).hex()}.new"
    try:
        fd = os.open(staging, _CREATE_FLAGS & ~os.O_RDWR | os.O_WRONLY, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(staging, path)
    except OSError as exc:
        remove_quietly(staging)
        raise local_error(exc, path, "write checkpoint") from exc


def remove_stale_staging(path: str) -> None:
    """Remove the copies of ``path`` that :func:`atomic_write` left when its process died.

    A kill between writing the staging copy and renaming it leaves that copy behind;
    the caller holds the destination's lock, so no live writer owns any of them.
    """
    directory, name = os.path.split(path)
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return
    for entry in entries:
        if entry.startswith(name) and _STAGING_SUFFIX.fullmatch(entry[len(name) :]):
            logger.info("removing a half-written copy of the checkpoint: %s", entry)
            remove_quietly(os.path.join(directory, entry))


def read_small(path: str, limit: int) -> bytes | None:
    """Read a file of at most ``limit`` bytes without following a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size > limit:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class CheckpointFile:
    """The on-disk checkpoint of one job: a header written atomically, then a journal.

    Each finished part is one appended line (one ``write``, with its own check), so
    recording a part costs the same at part 10 as at part 100,000, and a process
    killed at any instant leaves every part it recorded on disk. Owned by the
    orchestrator thread alone, so it needs no lock.

    Nothing is synced while the run goes on, the header included: the file system
    commits it within seconds, a header lost to a power cut before then only means the
    next run starts over, and a part recorded but lost is fetched again (a resume
    verifies every recorded part against the bytes on disk). An fsync of the header
    waited behind the journal while other files were being written, and held the
    object's first GET back by up to 50 ms (benchmarks/notes.md). :meth:`close` syncs
    the journal when a run stops early.
    """

    def __init__(self, path: str, base: codec.Checkpoint) -> None:
        self.path = path
        self.base = base
        self._fd = -1
        self._identity: tuple[int, int] | None = None

    def open(self) -> None:
        """Write the header (and the parts already known) and start the journal."""
        remove_stale_staging(self.path)
        atomic_write(self.path, codec.encode(self.base))
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
            info = os.fstat(self._fd)
        except OSError as exc:
            raise local_error(exc, self.path, "open checkpoint") from exc
        self._identity = (info.st_dev, info.st_ino)

    def record(self, index: int, crc: int) -> None:
        line = codec.encode_record(index, crc)
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                # The disk filled up part-way through the line: take the torn bytes back
                # so the journal still ends on a whole line, then report the full disk.
                # (Going on past a torn line would put it in the middle of the journal,
                # and the next run would have to distrust the whole checkpoint.)
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
        except OSError as exc:
            raise local_error(exc, self.path, "write checkpoint") from exc
        if written != len(line):
            full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise local_error(full, self.path, "write checkpoint")

    def close(self, *, durable: bool = False) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        try:
            if durable:
                os.fsync(fd)
        except OSError as exc:
            raise local_error(exc, self.path, "save checkpoint") from exc
        finally:
            os.close(fd)

    def delete(self) -> None:
        """Close and remove the checkpoint, unless another file has taken its name
        meanwhile (another download's destination, say): that one is not ours to lose."""
        self.close()
        try:
            info = os.lstat(self.path)
        except OSError:
            return
        if self._identity not in (None, (info.st_dev, info.st_ino)):
            logger.warning("%s is no longer this download's checkpoint: left as it is", self.path)
            return
        remove_quietly(self.path)


class DestinationLock:
    """An exclusive OS lock (``flock``) held for the whole of one download.

    It lives on ``<destination>.partdl.lock`` because the destination and the
    checkpoint are replaced by rename, which would leave a lock on a dead inode. The
    kernel drops the lock when the process dies, so a crash never wedges a rerun.
    """

    def __init__(self, destination: str) -> None:
        self.path = destination + ".partdl.lock"
        self._fd = -1

    def __enter__(self) -> DestinationLock:
        while True:
            try:
                fd = os.open(
                    self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
                )
            except OSError as exc:
                raise local_error(exc, self.path, "create the lock file") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DownloadLockedError(
                    f"another partdl process is downloading to {self.path[: -len('.partdl.lock')]}"
                ) from None
            # The previous holder unlinks the file as it leaves; if that happened
            # between our open and our flock, we hold a lock nobody else will see.
            if self._is_current(fd):
                self._fd = fd
                return self
            os.close(fd)

    def _is_current(self, fd: int) -> bool:
        try:
            return os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def __exit__(self, *exc_info: object) -> None:
        remove_quietly(self.path)
        os.close(self._fd)
