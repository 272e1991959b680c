"""The ``partdl`` command: ``partdl SRC DEST [options]``.

This module is the only place partdl prints. It turns arguments and environment
variables into one :class:`~partdl.backend.Backend`, runs :func:`partdl.download`
with a progress bar, and turns the outcome into one line (or one JSON object) and
an exit code from :class:`ExitCode`.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, TextIO, TypeVar
from urllib.parse import unquote, urlsplit

from tqdm import tqdm

from . import __version__
from .backend import Backend
from .backends import open_backend
from .backends._body import DEFAULT_STALL_TIMEOUT
from .backends.subrange import ByteRange, narrowed
from .engine import download
from .errors import (
    AccessDeniedError,
    DownloadInterruptedError,
    DownloadLockedError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    ObjectChangedError,
    PartdlError,
    TransferError,
    TransientError,
)
from .model import DownloadResult
from .plan import MAX_PART_SIZE, MIN_PART_SIZE
from .retry import RetryPolicy

logger = logging.getLogger("partdl")

_DEFAULT_RETRIES = RetryPolicy().attempts - 1

T = TypeVar("T")


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
}

# First match wins: subclasses before their bases.
_ERROR_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (InvalidArgumentError, ExitCode.INVALID_ARGUMENT),
    (NotFoundError, ExitCode.NOT_FOUND),
    (AccessDeniedError, ExitCode.ACCESS_DENIED),
    (ObjectChangedError, ExitCode.OBJECT_CHANGED),
    (IntegrityError, ExitCode.INTEGRITY),
    (TransferError, ExitCode.TRANSFER),
    (TransientError, ExitCode.TRANSFER),
    (DownloadLockedError, ExitCode.LOCKED),
    (DownloadInterruptedError, ExitCode.INTERRUPTED),
    (OSError, ExitCode.LOCAL_FILE),
)


def exit_code_for(exc: BaseException) -> ExitCode:
    for kind, code in _ERROR_CODES:
        if isinstance(exc, kind):
            return code
    return ExitCode.FAILED


# -- human sizes -------------------------------------------------------------------------

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)")


def parse_size(text: str) -> int:
    """``8MiB``, ``100KB``, ``1.5GB``, ``4096``: KB/MB/GB/TB are powers of 1000, KiB... of 1024.

    A bare ``K``/``M``/``G`` is refused because tools disagree on what it means.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise InvalidArgumentError(f"{text!r} is not a size such as 8MiB, 100KB or 1.5GB")
    number, unit = match.groups()
    multiplier = _UNITS.get(unit.lower())
    if multiplier is None:
        raise InvalidArgumentError(
            f"unknown unit {unit!r} in {text!r}: use B, KB, MB, GB, TB (powers of 1000) "
            "or KiB, MiB, GiB, TiB (powers of 1024)"
        )
    try:
        value = Decimal(number) * multiplier
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise InvalidArgumentError(f"{text!r} is not a number") from exc
    if value != value.to_integral_value():
        raise InvalidArgumentError(f"{text!r} is not a whole number of bytes")
    return int(value)


def _part_size(text: str) -> int:
    size = _argument(parse_size, text)
    if not MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        raise argparse.ArgumentTypeError(
            f"{text} is {size:,} bytes; a part must be 100KiB to 5GiB "
            f"({MIN_PART_SIZE:,} to {MAX_PART_SIZE:,} bytes)"
        )
    return size


def _byte_range(text: str) -> ByteRange:
    return _argument(ByteRange.parse, text)


def _count(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return convert


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _argument(parse: Callable[[str], T], text: str) -> T:
    """Run a parser whose errors are InvalidArgumentError the way argparse wants them."""
    try:
        return parse(text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


# -- sources and destinations -------------------------------------------------------------


class Scheme(enum.Enum):
    OSS = "oss"
    S3 = "s3"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class Source:
    """What SRC names: a bucket and key, or a URL (``bucket`` and ``key`` empty)."""

    scheme: Scheme
    url: str
    bucket: str = ""
    key: str = ""

    @property
    def display(self) -> str:
        """SRC for messages: a URL loses its credentials and its (signed) query string."""
        if self.scheme is not Scheme.HTTP:
            return self.url
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}{'?...' if parts.query else ''}"

    @property
    def name(self) -> str:
        """The last segment of the key or of the URL's path (unchecked)."""
        if self.scheme is Scheme.HTTP:
            return unquote(urlsplit(self.url).path.rpartition("/")[2])
        return self.key.rpartition("/")[2]


def parse_source(text: str) -> Source:
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if separator and scheme in ("http", "https"):
        if not urlsplit(text).hostname:
            raise InvalidArgumentError("SRC: the URL has no host")
        return Source(Scheme.HTTP, text)
    if separator and scheme in ("oss", "s3"):
        # Keys may hold '?', '#' and '%': everything after the bucket is the key, verbatim.
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise InvalidArgumentError(f"SRC must look like {scheme}://BUCKET/KEY, got {text!r}")
        return Source(Scheme(scheme), text, bucket, key)
    raise InvalidArgumentError(
        "SRC must be oss://BUCKET/KEY, s3://BUCKET/KEY or an http(s):// URL"
        + (f", not {scheme}://..." if separator else "")
    )


def safe_name(name: str) -> str:
    """A single path component that stays inside the directory it is joined to."""
    separators = {"/", "\0", os.sep} | ({os.altsep} if os.altsep else set())
    if name in ("", ".", "..") or any(s in name for s in separators):
        raise InvalidArgumentError(
            f"cannot name a file {name!r} from SRC; give DEST as a file path instead"
        )
    return name


def resolve_destination(dest: str, source: Source) -> str:
    """DEST itself, or DEST/<last segment of SRC> when DEST is an existing directory."""
    if os.path.isdir(dest):
        return os.path.join(dest, safe_name(source.name))
    if dest.endswith(("/", os.sep)):
        raise InvalidArgumentError(f"directory {dest} does not exist")
    return dest


# -- the argument parser ------------------------------------------------------------------


class UsageError(Exception):
    """Bad command-line syntax; reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _epilog() -> str:
    codes = "\n".join(f"  {code.value:>3}  {EXIT_MEANINGS[code]}" for code in ExitCode)
    return f"""\
sizes: KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024.

environment:
  OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_SESSION_TOKEN   oss:// credentials, else
  ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET, ALIBABA_CLOUD_SECURITY_TOKEN,
      else the Alibaba Cloud default chain (credentials file, CLI profile, OIDC, ECS RAM role)
  OSS_REGION                        oss:// region when --region is not given (V4 signs it)
  OSS_ENDPOINT                      oss:// endpoint when --endpoint is not given
      (default: https://oss-REGION.aliyuncs.com; the region is read from such endpoints)
  AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL   s3:// endpoint when --endpoint is not given
  s3:// credentials and region come from boto3's usual chain (AWS_ACCESS_KEY_ID, profiles, ...)

exit codes:
{codes}

examples:
  partdl oss://my-bucket/data/big.tar . --region cn-hangzhou --part-size 16MiB --task-num 16
  partdl s3://my-bucket/data/big.tar /tmp/big.tar --json
  partdl 'https://host/big.tar?X-Amz-Signature=...' big.tar --head-url 'https://...'

many objects (see partdl --recursive --help):
  partdl oss://my-bucket/datasets/v3/ data/ --recursive [--include GLOB] [--exclude GLOB]
  partdl --input-file FILE [DIR]
"""


def add_store_options(store: Any) -> None:
    """Where oss:// and s3:// buckets are and how to sign for them (one object or many)."""
    store.add_argument("--endpoint", metavar="URL", help="service endpoint (oss, s3)")
    store.add_argument(
        "--region", metavar="REGION", help="the bucket's region, e.g. cn-hangzhou (oss, s3)"
    )
    store.add_argument(
        "--profile", metavar="NAME", help="credentials profile: Alibaba Cloud (oss), AWS (s3)"
    )
    store.add_argument(
        "--sign-version",
        choices=("1", "4"),
        metavar="{1,4}",
        help="OSS signature version (default: 4; 1 only for old private deployments)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="partdl",
        description="Download one object in parallel byte ranges, resumably and verified.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", metavar="SRC", help="oss://BUCKET/KEY, s3://BUCKET/KEY or URL")
    parser.add_argument("dest", metavar="DEST", help="file to write, or an existing directory")
    parser.add_argument("-V", "--version", action="version", version=f"partdl {__version__}")
    transfer = parser.add_argument_group("transfer")
    transfer.add_argument(
        "--part-size", type=_part_size, metavar="SIZE", help="bytes per ranged GET (default: auto)"
    )
    transfer.add_argument(
        "--task-num", type=_count(1), default=8, metavar="N", help="parallel GETs (default: 8)"
    )
    transfer.add_argument(
        "--retries",
        type=_count(0),
        default=_DEFAULT_RETRIES,
        metavar="N",
        help=f"retry a failing part up to N times in a row (default: {_DEFAULT_RETRIES})",
    )
    transfer.add_argument(
        "--retry-deadline",
        type=_seconds,
        metavar="SECONDS",
        help="give up on a part after this long across its retries (default: no limit)",
    )
    transfer.add_argument(
        "--stall-timeout",
        type=_seconds,
        default=DEFAULT_STALL_TIMEOUT,
        metavar="SECONDS",
        help="abandon a connection silent this long and resume the part on a new one "
        f"(default: {DEFAULT_STALL_TIMEOUT:g})",
    )
    transfer.add_argument(
        "--range", type=_byte_range, metavar="START-END", help="only these bytes (inclusive)"
    )
    transfer.add_argument(
        "--no-fsync",
        dest="fsync",
        action="store_false",
        help="scratch data: do not flush the file to disk (it may not survive a power cut)",
    )
    resume = transfer.add_mutually_exclusive_group()
    resume.add_argument("--no-checkpoint", action="store_true", help="do not keep a checkpoint")
    resume.add_argument("--checkpoint-file", metavar="PATH", help="default: DEST.dcp")
    store = parser.add_argument_group("source")
    store.add_argument("--version-id", metavar="ID", help="a version of the object (oss, s3)")
    add_store_options(store)
    store.add_argument(
        "--head-url", metavar="URL", help="a presigned HEAD URL for a presigned GET URL (http)"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    chatter = output.add_mutually_exclusive_group()
    chatter.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    chatter.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)"
    )
    return parser


def _check_options(args: argparse.Namespace, source: Source) -> None:
    """Options that make no sense for the scheme at hand are errors, not silently ignored."""
    if source.scheme is Scheme.HTTP:
        for flag, value in (
            ("--version-id", args.version_id),
            ("--endpoint", args.endpoint),
            ("--region", args.region),
            ("--profile", args.profile),
        ):
            if value is not None:
                raise InvalidArgumentError(f"{flag} applies to oss:// and s3:// sources only")
    elif args.head_url is not None:
        raise InvalidArgumentError("--head-url applies to http(s):// sources only")
    if source.scheme is not Scheme.OSS and args.sign_version is not None:
        raise InvalidArgumentError("--sign-version applies to oss:// sources only")


# -- backends -----------------------------------------------------------------------------


def _require(module: str, extra: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise InvalidArgumentError(
            f"{extra}:// sources need {module}: pip install 'partdl[{extra}]'"
        ) from None


def _oss_bucket(source: Source, args: argparse.Namespace) -> Any:
    """An oss2 bucket signing V4 for its region (see :mod:`partdl.oss_setup`)."""
    from .oss_setup import credentials_provider, locate

    v4 = args.sign_version != "1"
    location = locate(args.region, args.endpoint, os.environ, v4=v4)
    oss2 = _require("oss2", "oss")
    provider = credentials_provider(os.environ, args.profile)
    auth = oss2.ProviderAuthV4(provider) if v4 else oss2.ProviderAuth(provider)
    # One pooled connection per worker, so no worker waits for or discards a socket.
    session = oss2.Session(pool_size=max(10, args.task_num))
    try:
        return oss2.Bucket(
            auth, location.endpoint, source.bucket, session=session, region=location.region
        )
    except oss2.exceptions.ClientError as exc:
        raise InvalidArgumentError(f"{source.display}: {exc.body or exc}") from exc


def _s3_bucket(source: Source, args: argparse.Namespace) -> Any:
    boto3 = _require("boto3", "s3")
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    from .backends.s3 import S3Bucket

    endpoint = (
        args.endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    config = Config(max_pool_connections=max(10, args.task_num))
    try:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        if session.get_credentials() is None:
            raise InvalidArgumentError(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or configure a profile (AWS_PROFILE)"
            )
        client = session.client("s3", endpoint_url=endpoint or None, config=config)
    except (BotoCoreError, ValueError) as exc:  # a missing profile, a malformed endpoint...
        raise InvalidArgumentError(f"AWS configuration: {exc}") from exc
    return S3Bucket(client, source.bucket)


@contextlib.contextmanager
def open_source(source: Source, args: argparse.Namespace) -> Iterator[Backend]:
    """The backend SRC names, narrowed to ``--range`` when given."""
    with contextlib.ExitStack() as stack:
        backend: Backend
        if source.scheme is Scheme.HTTP:
            from .backends.http import CONNECT_TIMEOUT, HttpBackend

            http = HttpBackend(
                source.url,
                head_url=args.head_url,
                pool_size=args.task_num,
                timeout=(CONNECT_TIMEOUT, args.stall_timeout),
            )
            backend = stack.enter_context(http)
        else:
            make = _oss_bucket if source.scheme is Scheme.OSS else _s3_bucket
            bucket = make(source, args)
            backend = open_backend(
                bucket, source.key, version_id=args.version_id, stall_timeout=args.stall_timeout
            )
        yield narrowed(backend, args.range)


# -- output -------------------------------------------------------------------------------


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


class _LogHandler(logging.Handler):
    """Log lines through ``tqdm.write`` so that they never tear the progress bar."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.setFormatter(logging.Formatter("partdl: %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self._stream)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _logging(args: argparse.Namespace) -> Iterator[None]:
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    level = logging.ERROR if args.quiet else levels[min(args.verbose, 2)]
    handler = _LogHandler(sys.stderr)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _emit_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, separators=(",", ":")), flush=True)


def _error_line(message: str) -> None:
    print(f"partdl: error: {message}", file=sys.stderr, flush=True)


def _describe(exc: BaseException) -> str:
    """One line: an OSError's text without its ``[Errno N]`` prefix."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return " ".join((text or type(exc).__name__).splitlines())


def _summary(result: DownloadResult, source: str, elapsed: float) -> dict[str, Any]:
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


def _human_summary(result: DownloadResult, elapsed: float) -> str:
    algorithm = result.checksum.algorithm.value if result.checksum else "checksum"
    check = f"{algorithm} verified" if result.verified else "no server checksum to verify"
    reused = f", {result.parts_reused} reused" if result.parts_reused else ""
    return (
        f"{result.path}: {result.size:,} bytes in {elapsed:.1f}s, "
        f"{result.parts_fetched} of {result.parts_total} parts fetched{reused}, {check}"
    )


# -- main ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    source: Source
    destination: str
    checkpoint: str | None


def _request(args: argparse.Namespace) -> _Request:
    source = parse_source(args.src)
    _check_options(args, source)
    destination = resolve_destination(args.dest, source)
    checkpoint = None
    if not args.no_checkpoint:
        checkpoint = os.path.abspath(args.checkpoint_file or destination + ".dcp")
    return _Request(source, destination, checkpoint)


def _run(args: argparse.Namespace, request: _Request) -> DownloadResult:
    bar = None
    if not args.quiet and sys.stderr.isatty():
        bar = ProgressBar(sys.stderr, os.path.basename(request.destination))
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
                retry=RetryPolicy(attempts=args.retries + 1, deadline=args.retry_deadline),
                fsync=args.fsync,
            )
    finally:
        if bar is not None:  # before any message, which would otherwise share its line
            bar.close()


def _interrupted(args: argparse.Namespace, request: _Request | None) -> int:
    checkpoint = request.checkpoint if request else None
    if checkpoint and os.path.exists(checkpoint):
        hint = f"finished parts are kept in {checkpoint}: run the same command again to resume"
    elif request and not checkpoint:
        hint = "nothing was kept (--no-checkpoint)"
    else:
        hint = "run the same command again to start"
    print(f"partdl: interrupted; {hint}", file=sys.stderr, flush=True)
    if args.json:
        _emit_json({"status": "interrupted", "exit_code": 130, "checkpoint": checkpoint})
    return ExitCode.INTERRUPTED


def _failed(args: argparse.Namespace, exc: BaseException) -> int:
    code = exit_code_for(exc)
    message = _describe(exc)
    _error_line(message)
    if args.json:
        error = code.name.lower()
        _emit_json({"status": "error", "error": error, "exit_code": code, "message": message})
    return code


def _execute(args: argparse.Namespace) -> int:
    started = time.monotonic()
    request: _Request | None = None
    try:
        request = _request(args)
        result = _run(args, request)
    except KeyboardInterrupt:
        return _interrupted(args, request)
    except (PartdlError, OSError) as exc:
        return _failed(args, exc)
    elapsed = time.monotonic() - started
    if args.json:
        _emit_json(_summary(result, request.source.display, elapsed))
    elif not args.quiet:
        print(_human_summary(result, elapsed), flush=True)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``partdl`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    from . import cli_batch

    if cli_batch.wants_batch(argv):
        return cli_batch.main(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        _error_line(f"{exc} (see partdl --help)")
        return ExitCode.INVALID_ARGUMENT
    except SystemExit as exc:  # --help and --version print and exit 0
        return exc.code if isinstance(exc.code, int) else ExitCode.INVALID_ARGUMENT
    with _logging(args):
        return _execute(args)


def run() -> NoReturn:
    """The console script."""
    # A file-size limit (ulimit -f) then fails the write with EFBIG, which is reported
    # as a local file error with the checkpoint kept, instead of killing the process.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    sys.exit(main())
