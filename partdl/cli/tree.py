"""``partdl SRC DIR --recursive`` and ``partdl --input-file FILE [DIR]``: many objects,
through :func:`partdl.api.download_prefix` and :func:`partdl.api.download_many`.

The exit code is ``ExitCode.PARTIAL`` when some objects failed and the others are in
place; when every object failed, the code of their error if they share one.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from ..api import download_many, download_prefix
from ..errors import PartdlError, PartialDownloadError
from . import output
from .exits import ExitCode, exit_code_for, interrupted_code
from .parsing import check_scheme, check_tree, retry_policy, store_config
from .sources import Buckets, parse_prefix, read_input_file, require

if TYPE_CHECKING:  # the batch layer loads once the listing has started
    from .. import BatchResult, ObjectOutcome


def _transfer(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords download_prefix and download_many share, from the command line."""
    return {
        "part_size": args.part_size,
        "task_num": args.task_num,
        "checkpoint": not args.no_checkpoint,
        "dry_run": args.dry_run,
        "retry": retry_policy(args),
        "stall_timeout": args.stall_timeout,
        "fsync": args.fsync,
    }


def _on_object(args: argparse.Namespace) -> Callable[[ObjectOutcome], None]:
    """A dry run lists every object on stdout; ``-v`` a line per object on stderr."""
    listed = args.dry_run and not args.json and not args.quiet

    def on_object(outcome: ObjectOutcome) -> None:
        if listed or args.verbose:
            line = output.outcome_line(outcome, args.dry_run, with_path=not args.recursive)
            output.write_outcome(line, to_stdout=listed)

    return on_object


@contextlib.contextmanager
def executor(args: argparse.Namespace) -> Iterator[Executor | None]:
    """Where the transfers run: here, ``--processes N`` local processes, or ``--dask``."""
    if args.processes:
        # Imported here: multiprocessing costs ~20 ms of every other run's start.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a child starts clean, with no copy of this process's threads.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.processes, mp_context=context) as pool:
            yield pool
    elif args.dask:
        distributed = require("distributed", "dask", "--dask")
        with distributed.Client(args.dask) as client:
            yield client.get_executor()
    else:
        yield None


def _download(args: argparse.Namespace, bar: output.BatchBar | None) -> BatchResult:
    with executor(args) as where, Buckets(store_config(args)) as buckets:
        return _download_on(args, bar, where, buckets)


def _download_on(
    args: argparse.Namespace,
    bar: output.BatchBar | None,
    where: Executor | None,
    buckets: Buckets,
) -> BatchResult:
    common = {
        **_transfer(args),
        "progress_callback": bar,
        "on_object": _on_object(args),
        "executor": where,
    }
    try:
        if args.recursive:
            source = parse_prefix(args.src)
            check_scheme(args, source)
            bucket = buckets.get(source)
            return download_prefix(
                bucket, source.key, args.dest, include=args.include, exclude=args.exclude, **common
            )
        items = read_input_file(args.input_file, sys.stdin, buckets)
        directory = args.src or "."  # the one positional of --input-file is DIR
        return download_many(items, directory=directory, **common)
    except PartialDownloadError as exc:
        return exc.result


def exit_code(result: BatchResult) -> ExitCode:
    if not result.failures:
        return ExitCode.OK
    if result.downloaded or result.skipped:
        return ExitCode.PARTIAL
    codes = {exit_code_for(failure.error) for failure in result.failures}
    return codes.pop() if len(codes) == 1 else ExitCode.FAILED


def run(args: argparse.Namespace) -> ExitCode:
    """Download the objects; print the outcome and every failed key; return the exit code."""
    started = time.monotonic()
    try:
        check_tree(args)
        bar = output.batch_bar(args.quiet or args.json)
        try:
            result = _download(args, bar)
        finally:
            if bar is not None:
                bar.close()
    except KeyboardInterrupt as exc:
        code = interrupted_code(exc)
        output.notice(
            "interrupted; finished objects and the parts of large ones are kept: "
            "run the same command again to resume"
        )
        if args.json:
            output.emit_json({"status": "interrupted", "exit_code": code.value})
        return code
    except (PartdlError, OSError) as exc:
        return output.report_error(exc, args.json)
    elapsed = time.monotonic() - started
    code = exit_code(result)
    if args.json:
        output.emit_json(output.batch_summary(result, code, elapsed))
        return code
    if not args.quiet:
        if args.recursive and result.empty:
            output.notice(f"nothing is listed under {args.src} (for one object, leave out -r)")
        output.summary_line(output.human_batch_summary(result, elapsed))
    # Errors, which -q does not silence: without them a failed run would say nothing.
    output.failed_keys(result, with_path=not args.recursive)
    return code
