"""What ``partdl`` exits with, and which error means which code."""

from __future__ import annotations

import enum

from ..errors import (
    AccessDeniedError,
    DownloadInterruptedError,
    DownloadLockedError,
    IntegrityError,
    InvalidArgumentError,
    LocalFileError,
    NotFoundError,
    ObjectChangedError,
    TransferError,
    TransientError,
)


class ExitCode(enum.IntEnum):
    """What ``partdl`` exits with; the same table is in ``--help`` and docs/cli.md."""

    OK = 0
    FAILED = 1
    INVALID_ARGUMENT = 2
    NOT_FOUND = 3
    ACCESS_DENIED = 4
    OBJECT_CHANGED = 5
    INTEGRITY = 6
    TRANSFER = 7
    LOCAL_FILE = 8
    LOCKED = 9
    PARTIAL = 10
    INTERRUPTED = 130
    TERMINATED = 143


EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "the file is in place (and verified, when the server publishes a checksum)",
    ExitCode.FAILED: "any other error",
    ExitCode.INVALID_ARGUMENT: (
        "invalid arguments or configuration (missing credentials, region or endpoint)"
    ),
    ExitCode.NOT_FOUND: "the object, bucket or version does not exist",
    ExitCode.ACCESS_DENIED: "the credentials may not read the object",
    ExitCode.OBJECT_CHANGED: "the object kept changing during the download",
    ExitCode.INTEGRITY: "the bytes do not match the checksum the server published",
    ExitCode.TRANSFER: "network or server failure after retries; rerun to resume",
    ExitCode.LOCAL_FILE: "a local file could not be written (disk full, permissions)",
    ExitCode.LOCKED: "another partdl is downloading to the same destination",
    ExitCode.PARTIAL: "many objects: some failed (each is listed), the others are in place",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); rerun the same command to resume",
    ExitCode.TERMINATED: "stopped by SIGTERM, as by Ctrl-C; rerun the same command to resume",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised on the main thread: the download stops as on Ctrl-C."""


def interrupted_code(exc: KeyboardInterrupt) -> ExitCode:
    return ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED


# First match wins: subclasses before their bases.
_ERROR_CODES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], ExitCode], ...] = (
    (InvalidArgumentError, ExitCode.INVALID_ARGUMENT),
    (NotFoundError, ExitCode.NOT_FOUND),
    (AccessDeniedError, ExitCode.ACCESS_DENIED),
    (ObjectChangedError, ExitCode.OBJECT_CHANGED),
    (IntegrityError, ExitCode.INTEGRITY),
    (TransferError, ExitCode.TRANSFER),
    (TransientError, ExitCode.TRANSFER),
    (DownloadLockedError, ExitCode.LOCKED),
    (DownloadInterruptedError, ExitCode.INTERRUPTED),
    (LocalFileError, ExitCode.LOCAL_FILE),
    # Not a disk's: a connection (to a Dask scheduler, say) that failed outside partdl's
    # retries. Any other OSError reaching here came from a local file.
    ((ConnectionError, TimeoutError), ExitCode.TRANSFER),
    (OSError, ExitCode.LOCAL_FILE),
)


def exit_code_for(exc: BaseException) -> ExitCode:
    for kind, code in _ERROR_CODES:
        if isinstance(exc, kind):
            return code
    return ExitCode.FAILED
