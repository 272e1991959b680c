"""The one options type of every entry point, and one object's paths: validated before
any request or file is made."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import InvalidArgumentError, LocalFileError
from .plan import (
    DEFAULT_STALL_TIMEOUT,
    MiB,
    choose_part_size,
    validate_part_size,
    validate_stall_timeout,
    validate_task_num,
)
from .retry import RetryPolicy

ProgressCallback = Callable[[int, int], object]

DEFAULT_TASK_NUM = 8
DEFAULT_CHUNK_SIZE = 1 * MiB
MIN_CHUNK_SIZE = 4096


@dataclass(frozen=True, slots=True)
class TransferOptions:
    """The knobs every download takes, whatever it downloads: validated once, then shared.

    Every entry point (:func:`partdl.download_file`, :func:`partdl.download_url`,
    :func:`partdl.download_prefix`, :func:`partdl.download_many`) builds one from its
    keyword arguments and passes it down. ``part_size`` (None: chosen per object) and
    ``task_num`` (the GETs in flight at once, for one object or for a whole tree)
    shape the transfer; ``checkpoint`` keeps large objects resumable; ``headers`` go
    with every OSS or HTTP request; a connection silent for ``stall_timeout`` seconds
    is given up under ``retry``; ``fsync=False`` flushes nothing to disk (scratch data).
    """

    part_size: int | None = None
    task_num: int = DEFAULT_TASK_NUM
    checkpoint: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    headers: Mapping[str, str] | None = None
    fsync: bool = True
    """Make each finished file (and a checkpoint's removal) durable before it counts as done."""

    def __post_init__(self) -> None:
        validate_task_num(self.task_num)
        if self.part_size is not None:
            validate_part_size(self.part_size)
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int):
            raise InvalidArgumentError("chunk_size must be an int")
        if self.chunk_size < MIN_CHUNK_SIZE:
            raise InvalidArgumentError(f"chunk_size must be at least {MIN_CHUNK_SIZE} bytes")
        object.__setattr__(self, "stall_timeout", validate_stall_timeout(self.stall_timeout))
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidArgumentError("retry must be a partdl.RetryPolicy")
        for name in ("checkpoint", "fsync"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(
                    f"{name} must be True or False, not {getattr(self, name)!r}"
                )
        if self.headers is not None and not isinstance(self.headers, Mapping):
            raise InvalidArgumentError("headers must be a mapping of names to values")

    @classmethod
    def of(
        cls,
        *,
        part_size: int | None = None,
        task_num: int = DEFAULT_TASK_NUM,
        checkpoint: bool = True,
        retry: RetryPolicy | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        fsync: bool = True,
    ) -> TransferOptions:
        """The options from an entry point's keywords (``retry=None``: the default policy)."""
        return cls(
            part_size=part_size,
            task_num=task_num,
            checkpoint=checkpoint,
            retry=retry if retry is not None else RetryPolicy(),
            chunk_size=chunk_size,
            stall_timeout=stall_timeout,
            headers=headers,
            fsync=fsync,
        )

    def fits_one_part(self, size: int) -> bool:
        """Whether an object of ``size`` bytes is a single part: one GET, no HEAD."""
        return size <= choose_part_size(size, self.part_size)


class Target(NamedTuple):
    """Where one object goes: its destination and its checkpoint (None: none kept)."""

    destination: str
    checkpoint_path: str | None


# The longest names partdl derives from a file's name: the temp file beside the
# destination ("<name>.partdl-1a2b3c4d.tmp", longer than the lock and the default
# checkpoint) and the staging copy of a checkpoint ("<name>.1a2b3c4d.new").
_TEMP_SUFFIX_LENGTH = len(".partdl-00000000.tmp")
_STAGING_SUFFIX_LENGTH = len(".00000000.new")


def _path_limit(directory: str, name: str, default: int) -> int:
    try:
        return os.pathconf(directory, name)
    except (OSError, ValueError):
        return default


def _check_length(path: str, suffix: int) -> None:
    """Refuse a path whose derived names the file system cannot hold, before any request."""
    directory, name = os.path.split(path)
    longest = len(os.fsencode(name)) + suffix
    limit = _path_limit(directory, "PC_NAME_MAX", 255)
    if longest > limit:
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise LocalFileError(
            errno.ENAMETOOLONG,
            f"file name too long: {shown!r} is {longest - suffix} bytes, and with the "
            f"{suffix} partdl adds for its temp files it exceeds the limit of {limit}",
        )
    length = len(os.fsencode(path)) + suffix
    if length >= _path_limit(directory, "PC_PATH_MAX", 4096):
        raise LocalFileError(
            errno.ENAMETOOLONG, f"path too long ({length - suffix} bytes): {path[:60]}..."
        )


def _check_directory(directory: str) -> None:
    if not os.path.isdir(directory):
        problem = "is not a directory" if os.path.lexists(directory) else "does not exist"
        raise InvalidArgumentError(f"directory {directory} {problem}")
    if not os.access(directory, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
        code = errno.EROFS if read_only else errno.EACCES
        raise LocalFileError(code, f"cannot write to directory {directory}: {os.strerror(code)}")


def path_text(path: object, what: str) -> str:
    """``path`` as a str: bytes (and bytes paths) decoded as ``os`` does; a clear error
    for what is no path at all."""
    if not isinstance(path, str | bytes | os.PathLike):
        raise InvalidArgumentError(f"{what} must be a path, got {path!r}")
    text = os.fsdecode(path)
    if not text:
        raise InvalidArgumentError(f"{what} must not be empty")
    return text


def _check_destination(path: str | os.PathLike[str]) -> str:
    destination = os.path.abspath(path_text(path, "the destination"))
    _check_length(destination, _TEMP_SUFFIX_LENGTH)
    _check_kind(destination)
    _check_directory(os.path.dirname(destination))
    return destination


_SPECIAL_FILES = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_kind(destination: str) -> None:
    """Refuse a destination that is (or links to) a directory, a device, a pipe or a socket.

    The finished file is renamed over the destination: ``/dev/null`` or a FIFO would
    be replaced by a regular file, not written into.
    """
    try:
        mode = os.stat(destination).st_mode
    except OSError:
        return  # absent or a dangling link: a file will be made
    if stat.S_ISDIR(mode):
        raise InvalidArgumentError(f"destination {destination} is a directory")
    for test, kind in _SPECIAL_FILES:
        if test(mode):
            raise InvalidArgumentError(
                f"destination {destination} is {kind}: partdl writes a file and renames it "
                "into place, which would replace it"
            )


def make_target(
    path: str | os.PathLike[str],
    checkpoint_file: str | os.PathLike[str] | None,
    *,
    checkpoint: bool,
) -> Target:
    """Check one object's paths before anything touches the network or the disk.

    The checkpoint is ``checkpoint_file``, or ``<path>.dcp`` beside the destination.
    """
    destination = _check_destination(path)
    checkpoint_path = None
    if checkpoint:
        checkpoint_path = os.path.abspath(
            path_text(checkpoint_file, "checkpoint_file")
            if checkpoint_file
            else destination + ".dcp"
        )
        if checkpoint_path == destination:
            raise InvalidArgumentError("the checkpoint file cannot be the destination")
        if checkpoint_file:
            _check_length(checkpoint_path, _STAGING_SUFFIX_LENGTH)
            if os.path.isdir(checkpoint_path):
                raise InvalidArgumentError(f"checkpoint file {checkpoint_path} is a directory")
            _check_directory(os.path.dirname(checkpoint_path))
    return Target(destination, checkpoint_path)
