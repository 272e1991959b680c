"""Everything ``partdl`` prints: progress bars, log lines, summaries and errors.

This package is the only place partdl prints; within it, only this module writes.
Summaries go to stdout (one JSON line with ``--json``), everything else to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from ..model import DownloadResult
from .exits import ExitCode, exit_code_for

if TYPE_CHECKING:  # the tree layer loads only in tree mode, tqdm only with a bar
    from tqdm import tqdm

    from .. import BatchProgress, BatchResult, ObjectOutcome

logger = logging.getLogger("partdl")


# -- progress -----------------------------------------------------------------------------


class ProgressBar:
    """A tqdm bar fed by the engine's ``progress_callback(consumed, total)``.

    The bar starts at the first value reported, which on a resume is the bytes
    already verified on disk, so its rate and ETA count only new bytes. When the
    count drops (the object changed and the download started over) the old bar is
    left where it stopped and a new one starts: progress never pretends.
    """

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._bar: tqdm[Any] | None = None

    def __call__(self, consumed: int, total: int) -> None:
        bar = self._bar
        if bar is None or consumed < bar.n or total != bar.total:
            from tqdm import tqdm  # ~70 ms: only once a bar is drawn

            self.close()
            self._bar = tqdm(
                total=total,
                initial=consumed,
                desc=self._label,
                unit="B",
                unit_scale=True,  # decimal prefixes: kB is 1000 bytes, as in --part-size
                file=self._stream,
                dynamic_ncols=True,
            )
        else:
            bar.update(consumed - bar.n)

    @property
    def shown(self) -> float | None:
        """The byte count the bar currently shows."""
        return None if self._bar is None else self._bar.n

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class BatchBar:
    """One tqdm bar for a whole batch: bytes, rate, ETA, and files done of total."""

    def __init__(self, stream: TextIO) -> None:
        from tqdm import tqdm  # ~70 ms: only once a bar is drawn

        self._bar: tqdm[Any] = tqdm(
            total=0, unit="B", unit_scale=True, file=stream, dynamic_ncols=True, desc="partdl"
        )

    def __call__(self, progress: BatchProgress) -> None:
        bar = self._bar
        if progress.bytes_total != bar.total:
            bar.total = progress.bytes_total
        files = f"{progress.files_done}/{progress.files_total}"
        if not progress.listing_done:
            files += "+"
        extra = []
        if progress.files_skipped:
            extra.append(f"{progress.files_skipped} skipped")
        if progress.files_failed:
            extra.append(f"{progress.files_failed} failed")
        bar.set_postfix_str(", ".join([f"{files} files", *extra]), refresh=False)
        bar.update(progress.bytes_done - bar.n)

    def close(self) -> None:
        self._bar.close()


def object_bar(quiet: bool, label: str) -> ProgressBar | None:
    """The bar for one object: only on a terminal, and never with ``--quiet``."""
    return None if quiet or not sys.stderr.isatty() else ProgressBar(sys.stderr, label)


def batch_bar(quiet: bool) -> BatchBar | None:
    """The bar for many objects: only on a terminal, and never with ``--quiet``."""
    return None if quiet or not sys.stderr.isatty() else BatchBar(sys.stderr)


# -- logging ------------------------------------------------------------------------------


def write_line(line: str, stream: TextIO) -> None:
    """``line`` on ``stream``, stepping around a progress bar when one may be drawn."""
    loaded = sys.modules.get("tqdm")
    if loaded is None:  # no bar was ever made: nothing to step around
        stream.write(line + "\n")
        stream.flush()
    else:
        loaded.tqdm.write(line, file=stream)


class _LogHandler(logging.Handler):
    """Log lines through ``tqdm.write`` so that they never tear the progress bar."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.setFormatter(logging.Formatter("partdl: %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record), self._stream)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def log_to_stderr(quiet: bool, verbosity: int) -> Iterator[None]:
    """partdl's own logger on stderr: warnings, ``1`` info, ``2`` debug; errors if quiet.

    Only the ``partdl`` logger is shown, never an SDK's, so no signature is printed.
    """
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    level = logging.ERROR if quiet else levels[min(max(verbosity, 0), 2)]
    handler = _LogHandler(sys.stderr)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# -- lines and documents ------------------------------------------------------------------


def emit_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, separators=(",", ":")), flush=True)


def error_line(message: str) -> None:
    print(f"partdl: error: {message}", file=sys.stderr, flush=True)


def notice(message: str) -> None:
    """A line on stderr, between the bar (closed by then) and the summary."""
    print(f"partdl: {message}", file=sys.stderr, flush=True)


def summary_line(text: str) -> None:
    print(text, flush=True)


def describe(exc: BaseException) -> str:
    """One line: an OSError's text without its ``[Errno N]`` prefix."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return " ".join((text or type(exc).__name__).splitlines())


def report_error(exc: BaseException, as_json: bool) -> ExitCode:
    """The error's line on stderr (and its JSON document); its exit code."""
    code = exit_code_for(exc)
    message = describe(exc)
    error_line(message)
    if as_json:
        error = code.name.lower()
        emit_json({"status": "error", "error": error, "exit_code": code, "message": message})
    return code


# -- one object ---------------------------------------------------------------------------


def object_summary(result: DownloadResult, source: str, elapsed: float) -> dict[str, Any]:
    checksum = None
    if result.checksum is not None:
        algorithm = result.checksum.algorithm.value
        # A string: 64-bit values do not survive JSON parsers that use doubles.
        checksum = {"algorithm": algorithm, "value": str(result.checksum.value)}
    return {
        "status": "ok",
        "source": source,
        "path": result.path,
        "size": result.size,
        "etag": result.etag,
        "checksum": checksum,
        "verified": result.verified,
        "parts_total": result.parts_total,
        "parts_fetched": result.parts_fetched,
        "parts_reused": result.parts_reused,
        "restarts": result.restarts,
        "seconds": round(elapsed, 3),
    }


def human_object_summary(result: DownloadResult, elapsed: float) -> str:
    algorithm = result.checksum.algorithm.value if result.checksum else "checksum"
    check = f"{algorithm} verified" if result.verified else "no server checksum to verify"
    reused = f", {result.parts_reused} reused" if result.parts_reused else ""
    return (
        f"{result.path}: {result.size:,} bytes in {elapsed:.1f}s, "
        f"{result.parts_fetched} of {result.parts_total} parts fetched{reused}, {check}"
    )


# -- many objects -------------------------------------------------------------------------


def _failure_line(key: str, source: str, path: str, error: BaseException, with_path: bool) -> str:
    """``with_path`` names the object by its source and where it was going: lines of an
    input file may name one key in several buckets, or one object more than once; in a
    tree the key says it."""
    shown = f"{source or key} -> {path}" if with_path else key
    return f"failed: {shown}: {describe(error)}"


def outcome_line(outcome: ObjectOutcome, dry_run: bool, *, with_path: bool = False) -> str:
    from ..execute import Status

    if outcome.status is Status.FAILED:
        error = outcome.error or Exception()
        return _failure_line(outcome.key, outcome.source, outcome.path, error, with_path)
    if outcome.status is Status.SKIPPED:
        return f"{'would skip' if dry_run else 'skipped'}: {outcome.key} (unchanged)"
    verb = "would download" if dry_run else "downloaded"
    return f"{verb}: {outcome.key} -> {outcome.path} ({outcome.size:,} bytes)"


def write_outcome(line: str, *, to_stdout: bool) -> None:
    """A line per object, written around the bar."""
    write_line(line, sys.stdout if to_stdout else sys.stderr)


_BATCH_STATUS = {ExitCode.OK: "ok", ExitCode.PARTIAL: "partial"}


def batch_summary(result: BatchResult, code: ExitCode, elapsed: float) -> dict[str, Any]:
    document: dict[str, Any] = {
        "status": _BATCH_STATUS.get(code, "error"),
        "exit_code": int(code),
        "dry_run": result.dry_run,
        "downloaded": len(result.downloaded),
        "skipped": len(result.skipped),
        "failed": [
            {
                "key": failure.key,
                "source": failure.source or None,
                "path": failure.path,
                "error": exit_code_for(failure.error).name.lower(),
                "message": describe(failure.error),
            }
            for failure in result.failures
        ],
        "bytes_downloaded": result.bytes_downloaded,
        "bytes_skipped": result.bytes_skipped,
        "seconds": round(elapsed, 3),
    }
    if document["status"] == "error":  # as in every error document: the row of the code
        document["error"] = code.name.lower()
    if result.dry_run:
        document["would_download"] = result.downloaded
        document["would_skip"] = result.skipped
    return document


def human_batch_summary(result: BatchResult, elapsed: float) -> str:
    verb = "would be downloaded" if result.dry_run else "downloaded"
    return (
        f"{len(result.downloaded):,} {verb} ({result.bytes_downloaded:,} bytes), "
        f"{len(result.skipped):,} unchanged, {len(result.failures):,} failed, in {elapsed:.1f}s"
    )


def failed_keys(result: BatchResult, *, with_path: bool = False) -> None:
    """Every failed object with its reason, on stderr."""
    for failure in result.failures:
        notice(_failure_line(failure.key, failure.source, failure.path, failure.error, with_path))
