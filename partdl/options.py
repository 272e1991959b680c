"""Every argument of a download, validated before any request or file is made."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

from .control import Control
from .errors import InvalidArgumentError, LocalFileError
from .plan import MiB, validate_part_size, validate_task_num
from .retry import RetryPolicy

ProgressCallback = Callable[[int, int], object]

DEFAULT_TASK_NUM = 8
DEFAULT_CHUNK_SIZE = 1 * MiB
MIN_CHUNK_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Options:
    """The validated knobs of one ``download`` call."""

    destination: str
    part_size: int | None
    task_num: int
    checkpoint_path: str | None
    progress_callback: ProgressCallback | None
    retry: RetryPolicy
    control: Control | None
    chunk_size: int
    fsync: bool = True
    """Make the finished file and the checkpoint's removal durable before returning."""


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


def _check_destination(path: str | os.PathLike[str]) -> str:
    destination = os.path.abspath(os.fspath(path))
    _check_length(destination, _TEMP_SUFFIX_LENGTH)
    if os.path.isdir(destination):
        raise InvalidArgumentError(f"destination {destination} is a directory")
    _check_directory(os.path.dirname(destination))
    return destination


def make_options(
    path: str | os.PathLike[str],
    *,
    part_size: int | None,
    task_num: int,
    checkpoint: bool,
    checkpoint_file: str | os.PathLike[str] | None,
    progress_callback: ProgressCallback | None,
    retry: RetryPolicy | None,
    control: Control | None,
    chunk_size: int,
    fsync: bool = True,
) -> Options:
    """Validate every argument before anything touches the network or the disk."""
    validate_task_num(task_num)
    if part_size is not None:
        validate_part_size(part_size)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise InvalidArgumentError("chunk_size must be an int")
    if chunk_size < MIN_CHUNK_SIZE:
        raise InvalidArgumentError(f"chunk_size must be at least {MIN_CHUNK_SIZE} bytes")
    if not isinstance(fsync, bool):
        raise InvalidArgumentError(f"fsync must be True or False, not {fsync!r}")
    destination = _check_destination(path)
    checkpoint_path = None
    if checkpoint:
        checkpoint_path = os.path.abspath(
            os.fspath(checkpoint_file) if checkpoint_file else destination + ".dcp"
        )
        if checkpoint_path == destination:
            raise InvalidArgumentError("the checkpoint file cannot be the destination")
        if checkpoint_file:
            _check_length(checkpoint_path, _STAGING_SUFFIX_LENGTH)
            if os.path.isdir(checkpoint_path):
                raise InvalidArgumentError(f"checkpoint file {checkpoint_path} is a directory")
            _check_directory(os.path.dirname(checkpoint_path))
    return Options(
        destination=destination,
        part_size=part_size,
        task_num=task_num,
        checkpoint_path=checkpoint_path,
        progress_callback=progress_callback,
        retry=retry if retry is not None else RetryPolicy(),
        control=control,
        chunk_size=chunk_size,
        fsync=fsync,
    )
