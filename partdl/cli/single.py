"""``partdl SRC DEST``: one object, through :func:`partdl.engine.download`."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..backend import Backend
from ..backends import open_backend
from ..backends.subrange import narrowed
from ..engine import download
from ..errors import PartdlError
from ..model import DownloadResult
from . import output
from .exits import ExitCode, interrupted_code
from .parsing import check_scheme, retry_policy, store_config
from .sources import Buckets, Scheme, Source, parse_source, resolve_destination


@dataclass(frozen=True, slots=True)
class _Request:
    source: Source
    destination: str
    checkpoint: str | None


def _request(args: argparse.Namespace) -> _Request:
    source = parse_source(args.src)
    check_scheme(args, source)
    destination = resolve_destination(args.dest, source)
    checkpoint = None
    if not args.no_checkpoint:
        checkpoint = os.path.abspath(args.checkpoint_file or destination + ".dcp")
    return _Request(source, destination, checkpoint)


@contextlib.contextmanager
def open_source(source: Source, args: argparse.Namespace) -> Iterator[Backend]:
    """The backend SRC names, narrowed to ``--range`` when given."""
    with contextlib.ExitStack() as stack:
        backend: Backend
        if source.scheme is Scheme.HTTP:
            from ..backends.http import CONNECT_TIMEOUT, HttpBackend

            http = HttpBackend(
                source.url,
                head_url=args.head_url,
                pool_size=args.task_num,
                timeout=(CONNECT_TIMEOUT, args.stall_timeout),
            )
            backend = stack.enter_context(http)
        else:
            bucket = stack.enter_context(Buckets(store_config(args))).get(source)
            backend = open_backend(
                bucket, source.key, version_id=args.version_id, stall_timeout=args.stall_timeout
            )
        yield narrowed(backend, args.range)


def _download(args: argparse.Namespace, request: _Request) -> DownloadResult:
    bar = output.object_bar(args.quiet, os.path.basename(request.destination))
    try:
        with open_source(request.source, args) as backend:
            return download(
                backend,
                request.destination,
                part_size=args.part_size,
                task_num=args.task_num,
                checkpoint=request.checkpoint is not None,
                checkpoint_file=request.checkpoint,
                progress_callback=bar,
                retry=retry_policy(args),
                fsync=args.fsync,
            )
    finally:
        if bar is not None:  # before any message, which would otherwise share its line
            bar.close()


def _interrupted(args: argparse.Namespace, request: _Request | None, code: ExitCode) -> ExitCode:
    checkpoint = request.checkpoint if request else None
    if checkpoint and os.path.exists(checkpoint):
        hint = f"finished parts are kept in {checkpoint}: run the same command again to resume"
    elif request and not checkpoint:
        hint = "nothing was kept (--no-checkpoint)"
    else:
        hint = "run the same command again to start"
    output.notice(f"interrupted; {hint}")
    if args.json:
        output.emit_json(
            {"status": "interrupted", "exit_code": code.value, "checkpoint": checkpoint}
        )
    return code


def run(args: argparse.Namespace) -> ExitCode:
    """Download SRC to DEST; print the outcome; return the exit code."""
    started = time.monotonic()
    request: _Request | None = None
    try:
        request = _request(args)
        result = _download(args, request)
    except KeyboardInterrupt as exc:
        return _interrupted(args, request, interrupted_code(exc))
    except (PartdlError, OSError) as exc:
        return output.report_error(exc, args.json)
    elapsed = time.monotonic() - started
    if args.json:
        output.emit_json(output.object_summary(result, request.source.display, elapsed))
    elif not args.quiet:
        output.summary_line(output.human_object_summary(result, elapsed))
    return ExitCode.OK
