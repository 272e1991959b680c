"""The ``partdl`` command for many objects.

    partdl oss://BUCKET/PREFIX/ DIR --recursive [--include GLOB] [--exclude GLOB] [--dry-run]
    partdl --input-file FILE [DIR]          (lines: SRC [DEST]; '-' reads stdin)

``partdl.cli.main`` hands argument lists with ``--recursive`` or ``--input-file`` here.
This module prints (the only other place that does, beside ``cli``): one progress
bar for the whole batch, a line per object with ``-v``, a summary listing every
failed key, or one JSON object with ``--json``; and exits with
``ExitCode.PARTIAL`` when some objects failed and the others are in place.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from tqdm import tqdm

from . import cli
from .api import download_many, download_prefix
from .backends._body import DEFAULT_STALL_TIMEOUT
from .batch import BatchProgress, BatchResult, ObjectOutcome, Status
from .cli import ExitCode, Scheme, Source
from .errors import InvalidArgumentError, PartdlError, PartialDownloadError
from .retry import RetryPolicy


def wants_batch(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for many objects (``-r``/``--recursive``, ``-i``/``--input-file``)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg in ("-r", "--recursive") or arg.startswith(("-i", "--input-file")):
            return True
    return False


def _epilog() -> str:
    return f"""\
--recursive: every object under the prefix goes to DIR/<key relative to the prefix>.
  Keys that cannot be files under DIR (.., //, NUL, backslash, too long, a file that
  another key needs as a folder) fail alone; nothing is written outside DIR.
  A rerun skips every object whose ETag is unchanged (state in DIR/.partdl/).
--input-file: one object per line, "SRC [DEST]" split as a shell would (quote names
  with spaces), '#' starts a comment; SRC is oss://, s3:// or http(s)://; DEST is
  relative to DIR (default: the current directory), a DEST ending in '/' is a folder,
  no DEST means the last segment of SRC.
globs: '*' within a path segment, '**' across, '?' one character, '[abc]' a set;
  a pattern without '/' matches a name at any depth; a folder that matches takes all
  it holds. An object is taken if it matches an --include (or none is given) and no
  --exclude.

exit codes: as for one object (partdl --help), and
  {ExitCode.PARTIAL.value:>3}  {cli.EXIT_MEANINGS[ExitCode.PARTIAL]}

examples:
  partdl oss://my-bucket/datasets/v3/ data/ --recursive --include '*.parquet'
  partdl s3://my-bucket/models/ models/ -r --exclude 'tmp/*' --dry-run
  partdl -i files.txt downloads/ --task-num 16 --json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = cli._Parser(
        prog="partdl",
        usage="partdl SRC DIR --recursive [options]\n"
        "       partdl --input-file FILE [DIR] [options]",
        description="Download many objects through one pool of connections, resumably.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="SRC DIR", help="the prefix and the directory")
    what = parser.add_argument_group("what")
    what.add_argument(
        "-r", "--recursive", action="store_true", help="SRC is a prefix: every object under it"
    )
    what.add_argument("-i", "--input-file", metavar="FILE", help="lines of SRC [DEST]; - is stdin")
    what.add_argument(
        "--include", action="append", default=[], metavar="GLOB", help="only matching paths"
    )
    what.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="leave matching paths out"
    )
    what.add_argument("--dry-run", action="store_true", help="list what would happen; no GET")
    transfer = parser.add_argument_group("transfer")
    transfer.add_argument("--part-size", type=cli._part_size, metavar="SIZE")
    transfer.add_argument(
        "--task-num", type=cli._count(1), default=8, metavar="N", help="GETs in flight in all"
    )
    transfer.add_argument(
        "--retries", type=cli._count(0), default=cli._DEFAULT_RETRIES, metavar="N"
    )
    transfer.add_argument("--retry-deadline", type=cli._seconds, metavar="SECONDS")
    transfer.add_argument(
        "--stall-timeout", type=cli._seconds, default=DEFAULT_STALL_TIMEOUT, metavar="SECONDS"
    )
    transfer.add_argument("--no-checkpoint", action="store_true", help="large objects: no resume")
    store = parser.add_argument_group("source")
    cli.add_store_options(store)
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print one JSON summary")
    chatter = output.add_mutually_exclusive_group()
    chatter.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    chatter.add_argument(
        "-v", "--verbose", action="count", default=0, help="a line per object (-vv: logs)"
    )
    return parser


# -- sources -----------------------------------------------------------------------------


def parse_prefix(text: str) -> Source:
    """``oss://BUCKET[/PREFIX]`` or ``s3://BUCKET[/PREFIX]``; the prefix may be empty."""
    scheme, separator, rest = text.partition("://")
    if not separator or scheme.lower() not in ("oss", "s3"):
        raise InvalidArgumentError(
            f"--recursive takes oss://BUCKET/PREFIX or s3://BUCKET/PREFIX, not {text!r}"
        )
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidArgumentError(f"SRC has no bucket: {text!r}")
    return Source(Scheme(scheme.lower()), text, bucket, prefix)


class _Buckets:
    """One SDK bucket per (scheme, name), so lines of one bucket share its connections."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._made: dict[tuple[Scheme, str], Any] = {}

    def get(self, source: Source) -> Any:
        name = (source.scheme, source.bucket)
        if name not in self._made:
            make = cli._oss_bucket if source.scheme is Scheme.OSS else cli._s3_bucket
            self._made[name] = make(source, self._args)
        return self._made[name]


def read_input_file(
    path: str, stdin: TextIO, args: argparse.Namespace
) -> list[tuple[Any, str, str]]:
    """The items of an input file: ``(bucket, key, DEST)``, or ``(None, URL, DEST)``."""
    buckets = _Buckets(args)
    items = []
    with contextlib.ExitStack() as stack:
        if path == "-":
            lines: TextIO = stdin
        else:
            try:
                lines = stack.enter_context(open(path, encoding="utf-8"))
            except OSError as exc:
                raise InvalidArgumentError(f"cannot read the input file {path}: {exc}") from exc
        for number, line in enumerate(lines, 1):
            where = f"{'stdin' if path == '-' else path}:{number}"
            try:
                fields = shlex.split(line, comments=True)
            except ValueError as exc:
                raise InvalidArgumentError(f"{where}: {exc}") from exc
            if not fields:
                continue
            if len(fields) > 2:
                raise InvalidArgumentError(
                    f"{where}: expected SRC [DEST], got {len(fields)} fields (quote names "
                    "with spaces)"
                )
            try:
                source = cli.parse_source(fields[0])
                dest = fields[1] if len(fields) == 2 else ""
                if dest == "" or dest.endswith("/"):
                    dest += cli.safe_name(source.name)
                if source.scheme is Scheme.HTTP:
                    items.append((None, source.url, dest))
                else:
                    items.append((buckets.get(source), source.key, dest))
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"{where}: {exc}") from exc
    return items


# -- output ------------------------------------------------------------------------------


class BatchBar:
    """One tqdm bar for the whole batch: bytes, rate, ETA, and files done of total."""

    def __init__(self, stream: TextIO) -> None:
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


def _object_line(outcome: ObjectOutcome, dry_run: bool) -> str:
    if outcome.status is Status.FAILED:
        return f"failed: {outcome.key}: {cli._describe(outcome.error or Exception())}"
    if outcome.status is Status.SKIPPED:
        return f"{'would skip' if dry_run else 'skipped'}: {outcome.key} (unchanged)"
    verb = "would download" if dry_run else "downloaded"
    return f"{verb}: {outcome.key} -> {outcome.path} ({outcome.size:,} bytes)"


def _exit_code(result: BatchResult) -> ExitCode:
    if not result.failed:
        return ExitCode.OK
    if result.downloaded or result.skipped:
        return ExitCode.PARTIAL
    codes = {cli.exit_code_for(error) for error in result.failed.values()}
    return codes.pop() if len(codes) == 1 else ExitCode.FAILED


_STATUS = {ExitCode.OK: "ok", ExitCode.PARTIAL: "partial"}


def _summary(result: BatchResult, code: ExitCode, elapsed: float) -> dict[str, Any]:
    document: dict[str, Any] = {
        "status": "ok"
        if code is ExitCode.OK
        else "partial"
        if code is ExitCode.PARTIAL
        else "error",
        "exit_code": int(code),
        "dry_run": result.dry_run,
        "downloaded": len(result.downloaded),
        "skipped": len(result.skipped),
        "failed": [
            {
                "key": key,
                "error": cli.exit_code_for(error).name.lower(),
                "message": cli._describe(error),
            }
            for key, error in result.failed.items()
        ],
        "bytes_downloaded": result.bytes_downloaded,
        "bytes_skipped": result.bytes_skipped,
        "seconds": round(elapsed, 3),
    }
    if result.dry_run:
        document["would_download"] = result.downloaded
        document["would_skip"] = result.skipped
    return document


def _human_summary(result: BatchResult, elapsed: float) -> str:
    verb = "would be downloaded" if result.dry_run else "downloaded"
    return (
        f"{len(result.downloaded):,} {verb} ({result.bytes_downloaded:,} bytes), "
        f"{len(result.skipped):,} unchanged, {len(result.failed):,} failed, in {elapsed:.1f}s"
    )


# -- main --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    args: argparse.Namespace

    def common(self) -> dict[str, Any]:
        args = self.args
        return {
            "part_size": args.part_size,
            "task_num": args.task_num,
            "checkpoint": not args.no_checkpoint,
            "dry_run": args.dry_run,
            "retry": RetryPolicy(attempts=args.retries + 1, deadline=args.retry_deadline),
            "stall_timeout": args.stall_timeout,
        }


def _check(args: argparse.Namespace) -> None:
    if args.recursive and args.input_file is not None:
        raise InvalidArgumentError("--recursive and --input-file do not go together")
    if args.recursive and len(args.paths) != 2:
        raise InvalidArgumentError("--recursive takes SRC and DIR")
    if args.input_file is not None and len(args.paths) > 1:
        raise InvalidArgumentError("--input-file takes at most one DIR")
    if args.input_file is not None and (args.include or args.exclude):
        raise InvalidArgumentError("--include and --exclude apply to --recursive only")


def _run(args: argparse.Namespace, bar: BatchBar | None) -> BatchResult:
    common = _Job(args).common()

    def on_object(outcome: ObjectOutcome) -> None:
        listed = args.dry_run and not args.json and not args.quiet
        if listed or args.verbose:
            line = _object_line(outcome, args.dry_run)
            tqdm.write(line, file=sys.stdout if listed else sys.stderr)

    try:
        if args.recursive:
            source = parse_prefix(args.paths[0])
            bucket = _Buckets(args).get(source)
            return download_prefix(
                bucket,
                source.key,
                args.paths[1],
                include=args.include,
                exclude=args.exclude,
                progress_callback=bar,
                on_object=on_object,
                **common,
            )
        items = read_input_file(args.input_file, sys.stdin, args)
        directory = args.paths[0] if args.paths else "."
        return download_many(
            items, directory=directory, progress_callback=bar, on_object=on_object, **common
        )
    except PartialDownloadError as exc:
        return exc.result


def _execute(args: argparse.Namespace) -> int:
    started = time.monotonic()
    bar = None
    try:
        _check(args)
        if not args.quiet and not args.json and sys.stderr.isatty():
            bar = BatchBar(sys.stderr)
        try:
            result = _run(args, bar)
        finally:
            if bar is not None:
                bar.close()
    except KeyboardInterrupt:
        print(
            "partdl: interrupted; finished objects and the parts of large ones are kept: "
            "run the same command again to resume",
            file=sys.stderr,
            flush=True,
        )
        if args.json:
            cli._emit_json({"status": "interrupted", "exit_code": ExitCode.INTERRUPTED.value})
        return ExitCode.INTERRUPTED
    except (PartdlError, OSError) as exc:
        return cli._failed(args, exc)
    elapsed = time.monotonic() - started
    code = _exit_code(result)
    if args.json:
        cli._emit_json(_summary(result, code, elapsed))
    elif not args.quiet:
        print(_human_summary(result, elapsed), flush=True)
        for key, error in result.failed.items():
            print(f"partdl: failed: {key}: {cli._describe(error)}", file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except cli.UsageError as exc:
        cli._error_line(f"{exc} (see partdl --recursive --help)")
        return ExitCode.INVALID_ARGUMENT
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.INVALID_ARGUMENT
    with cli._logging(_LogLevel(args)):
        return _execute(args)


class _LogLevel(argparse.Namespace):
    """``-v`` is a line per object; partdl's own log lines start at ``-vv``."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(quiet=args.quiet, verbose=max(0, args.verbose - 1))
