"""The command line: one argparse definition for one object and for many.

Every option is declared once, in one of four groups (transfer, source, many
objects, output). An option that makes sense for one mode only says so where it is
declared (:class:`Mode`), and :func:`check` refuses it in the other mode with exit
code 2, naming the flag, instead of ignoring it (a usage error, as an unknown
option would be).
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, NoReturn, TypeVar

from .. import __version__
from ..backends.subrange import ByteRange
from ..errors import InvalidArgumentError
from ..options import DEFAULT_TASK_NUM
from ..plan import DEFAULT_STALL_TIMEOUT, MAX_PART_SIZE, MAX_TASK_NUM, MIN_PART_SIZE
from ..retry import RetryPolicy
from .exits import EXIT_MEANINGS, ExitCode
from .sources import Scheme, Source, StoreConfig

T = TypeVar("T")

_DEFAULT_RETRIES = RetryPolicy().attempts - 1


class Mode(enum.Enum):
    """What a command downloads: one object (``SRC DEST``) or many (``-r``, ``-i``)."""

    ONE = "one object"
    TREE = "--recursive and --input-file"


# -- value types --------------------------------------------------------------------------

_UNITS: dict[str, int] = {
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
    """``8MiB``, ``512KB``, ``1.5GB``, ``4096``: KB/MB/GB/TB are powers of 1000, KiB... of 1024.

    A bare ``K``/``M``/``G`` is refused because tools disagree on what it means.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise InvalidArgumentError(f"{text!r} is not a size such as 8MiB, 512KB or 1.5GB")
    number, unit = match.groups()
    multiplier = _UNITS.get(unit.lower())
    if multiplier is None:
        raise InvalidArgumentError(
            f"unknown unit {unit!r} in {text!r}: use B, KB, MB, GB, TB (powers of 1000) "
            "or KiB, MiB, GiB, TiB (powers of 1024)"
        )
    # Exact integer arithmetic: "1.5GB" is 15 * GB / 10 (decimal costs 2 ms to import).
    whole, _, fraction = number.partition(".")
    scale: int = 10 ** len(fraction)
    value, rest = divmod(int(whole + fraction) * multiplier, scale)
    if rest:
        raise InvalidArgumentError(f"{text!r} is not a whole number of bytes")
    return value


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


def _count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
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


# -- the parser ---------------------------------------------------------------------------


class UsageError(Exception):
    """Bad command-line syntax; reported in one line with exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` and knows each option's mode."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bound: dict[str, _Bound] = {}
        """The options that apply to one mode only, by ``dest``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def add(
        self,
        group: Any,
        *flags: str,
        mode: Mode | None = None,
        why: str = "",
        recursive_only: bool = False,
        **kwargs: Any,
    ) -> None:
        """Declare an option in ``group``; with ``mode``, it applies to that mode only
        (``why`` is added to the refusal); ``recursive_only``: of many objects, only to
        ``--recursive``, not to ``--input-file``."""
        action = group.add_argument(*flags, **kwargs)
        if mode is not None:
            self.bound[action.dest] = _Bound(flags[-1], mode, action.default, why, recursive_only)

    def only_for(self, mode: Mode) -> list[str]:
        return [bound.flag for bound in self.bound.values() if bound.mode is mode]


class _Bound(NamedTuple):
    """An option for one mode only, and how to refuse it in the other."""

    flag: str
    mode: Mode
    absent: Any
    """Its value when not given."""
    why: str
    recursive_only: bool = False
    """For --recursive only: no listing, no glob to match, with --input-file."""

    def applies(self, args: argparse.Namespace) -> bool:
        return args.mode is self.mode and (args.recursive or not self.recursive_only)

    def refusal(self) -> str:
        scope = "--recursive" if self.recursive_only else self.mode.value
        return f"{self.flag} applies to {scope} only" + (f": {self.why}" if self.why else "")


USAGE = """\
partdl SRC DEST [options]
       partdl SRC DIR --recursive [options]
       partdl --input-file FILE [DIR] [options]"""


def _epilog(parser: Parser) -> str:
    one_only = textwrap.fill(
        "All objects share --task-num connections. For one object only: "
        + ", ".join(parser.only_for(Mode.ONE))
        + ".",
        width=88,
        initial_indent="  ",
        subsequent_indent="    ",
    )
    codes = "\n".join(f"  {code.value:>3}  {EXIT_MEANINGS[code]}" for code in ExitCode)
    return f"""\
sizes: KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024.

many objects:
  --recursive: every object under the prefix goes to DIR/<key relative to the prefix>.
    Keys that cannot be files under DIR (.., //, NUL, backslash, too long, a file that
    another key needs as a folder) fail alone; nothing is written outside DIR.
    A rerun skips every object whose ETag is unchanged (state in DIR/.partdl/).
  --input-file: one object per line, "SRC [DEST]" split as a shell would (quote names
    with spaces), '#' at the start of a word starts a comment; SRC is oss://, s3:// or
    http(s)://; DEST is relative to DIR (default: the current directory) and stays in
    it, a DEST ending in '/' is a folder, no DEST means the last segment of SRC.
{one_only}
  globs: '*' within a path segment, '**' across, '?' one character, '[abc]' a set;
    a pattern without '/' matches a name at any depth; a folder that matches takes all
    it holds. An object is taken if it matches an --include (or none is given) and no
    --exclude.

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
  partdl oss://my-bucket/datasets/v3/ data/ --recursive --include '*.parquet'
  partdl s3://my-bucket/models/ models/ -r --exclude 'tmp/*' --dry-run
  partdl -i files.txt downloads/ --task-num 16 --json
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, told the width as argparse would find it. argparse makes
    a formatter for every ``add_argument`` and, not told, imports ``shutil`` (4 ms)
    only to ask the terminal's width."""

    def __init__(self, prog: str, **options: Any) -> None:
        options.setdefault("width", _columns() - 2)
        super().__init__(prog, **options)


def _columns() -> int:
    """``shutil.get_terminal_size().columns``: ``COLUMNS``, else the terminal's, else 80."""
    with contextlib.suppress(ValueError):
        if (columns := int(os.environ.get("COLUMNS", "0"))) > 0:
            return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def build_parser() -> Parser:
    parser = Parser(
        prog="partdl",
        usage=USAGE,
        description="Download one object in parallel byte ranges, resumably and verified; "
        "or many objects through one pool of connections.",
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "src",
        nargs="?",
        metavar="SRC",
        help="oss://BUCKET/KEY, s3://BUCKET/KEY or URL; with --recursive, "
        "oss://BUCKET/PREFIX/ or s3://BUCKET/PREFIX/",
    )
    parser.add_argument(
        "dest",
        nargs="?",
        metavar="DEST",
        help="the file to write, or an existing directory; with --recursive or "
        "--input-file, the directory (DIR)",
    )
    parser.add_argument("-V", "--version", action="version", version=f"partdl {__version__}")
    _transfer_options(parser)
    _source_options(parser)
    _tree_options(parser)
    _output_options(parser)
    parser.epilog = _epilog(parser)
    return parser


def _transfer_options(parser: Parser) -> None:
    group = parser.add_argument_group("transfer")
    parser.add(
        group,
        "--part-size",
        type=_part_size,
        metavar="SIZE",
        help="bytes per ranged GET (default: auto)",
    )
    parser.add(
        group,
        "--task-num",
        type=_count(1, MAX_TASK_NUM),
        default=DEFAULT_TASK_NUM,
        metavar="N",
        help=(
            f"parallel GETs, for one object or all of them "
            f"(default: {DEFAULT_TASK_NUM}, at most {MAX_TASK_NUM})"
        ),
    )
    parser.add(
        group,
        "--retries",
        type=_count(0),
        default=_DEFAULT_RETRIES,
        metavar="N",
        help=f"retry a failing part up to N times in a row (default: {_DEFAULT_RETRIES})",
    )
    parser.add(
        group,
        "--retry-deadline",
        type=_seconds,
        metavar="SECONDS",
        help="give up on a part after this long across its retries (default: no limit)",
    )
    parser.add(
        group,
        "--stall-timeout",
        type=_seconds,
        default=DEFAULT_STALL_TIMEOUT,
        metavar="SECONDS",
        help="abandon a connection silent this long and resume the part on a new one "
        f"(default: {DEFAULT_STALL_TIMEOUT:g})",
    )
    parser.add(
        group,
        "--range",
        mode=Mode.ONE,
        type=_byte_range,
        metavar="START-END",
        help="only these bytes (inclusive)",
    )
    parser.add(
        group,
        "--no-fsync",
        dest="fsync",
        action="store_false",
        help="scratch data: flush nothing to disk (files may not survive a power cut)",
    )
    resume = group.add_mutually_exclusive_group()
    parser.add(
        resume,
        "--no-checkpoint",
        action="store_true",
        help="do not keep a checkpoint (many objects: large ones do not resume)",
    )
    parser.add(resume, "--checkpoint-file", mode=Mode.ONE, metavar="PATH", help="default: DEST.dcp")


def _source_options(parser: Parser) -> None:
    group = parser.add_argument_group("source")
    parser.add(
        group, "--version-id", mode=Mode.ONE, metavar="ID", help="a version of the object (oss, s3)"
    )
    parser.add(group, "--endpoint", metavar="URL", help="service endpoint (oss, s3)")
    parser.add(
        group, "--region", metavar="REGION", help="the bucket's region, e.g. cn-hangzhou (oss, s3)"
    )
    parser.add(
        group,
        "--profile",
        metavar="NAME",
        help="credentials profile: Alibaba Cloud (oss), AWS (s3)",
    )
    parser.add(
        group,
        "--sign-version",
        choices=("1", "4"),
        metavar="{1,4}",
        help="OSS signature version (default: 4; 1 only for old private deployments)",
    )
    parser.add(
        group,
        "--head-url",
        mode=Mode.ONE,
        metavar="URL",
        help="a presigned HEAD URL for a presigned GET URL (http)",
    )


def _tree_options(parser: Parser) -> None:
    group = parser.add_argument_group("many objects")
    parser.add(
        group,
        "-r",
        "--recursive",
        action="store_true",
        help="SRC is a prefix: every object under it",
    )
    parser.add(group, "-i", "--input-file", metavar="FILE", help="lines of SRC [DEST]; - is stdin")
    parser.add(
        group,
        "--include",
        mode=Mode.TREE,
        recursive_only=True,
        action="append",
        default=[],
        metavar="GLOB",
        help="only matching paths (--recursive; repeatable)",
    )
    parser.add(
        group,
        "--exclude",
        mode=Mode.TREE,
        recursive_only=True,
        action="append",
        default=[],
        metavar="GLOB",
        help="leave matching paths out (--recursive; repeatable)",
    )
    parser.add(
        group,
        "--dry-run",
        mode=Mode.TREE,
        action="store_true",
        help="list what would happen; no GET",
    )
    # Where a tree's transfers run (see docs/distributed.md); tree.executor() makes it.
    where = group.add_mutually_exclusive_group()
    parser.add(
        where,
        "--processes",
        mode=Mode.TREE,
        type=_count(1),
        metavar="N",
        help="spread the objects over N local processes, each with --task-num GETs",
    )
    parser.add(
        where,
        "--dask",
        mode=Mode.TREE,
        metavar="ADDRESS",
        help="spread the objects over a running Dask cluster (tcp://HOST:8786)",
    )


def _output_options(parser: Parser) -> None:
    group = parser.add_argument_group("output")
    parser.add(group, "--json", action="store_true", help="print a one-line JSON summary")
    chatter = group.add_mutually_exclusive_group()
    parser.add(chatter, "-q", "--quiet", action="store_true", help="no progress bar or summary")
    parser.add(
        chatter,
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr (-vv: debug); many objects: a line per object (-vv: logs)",
    )


# -- parsing and checking -----------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` into a namespace with its ``mode``; bad syntax is UsageError.

    Options and positionals may be interleaved (``SRC --json DEST``). ``--help`` and
    ``--version`` print and raise SystemExit(0).
    """
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    args.mode = Mode.TREE if args.recursive or args.input_file is not None else Mode.ONE
    for dest, bound in parser.bound.items():
        if getattr(args, dest) != bound.absent and not bound.applies(args):
            parser.error(bound.refusal())
    if args.mode is Mode.ONE:
        missing = [name for name, value in (("SRC", args.src), ("DEST", args.dest)) if not value]
        if missing:
            parser.error(f"the following arguments are required: {', '.join(missing)}")
    local = args.src if args.input_file is not None else args.dest  # -i's one path is DIR
    # "s3://b/k" as DEST would quietly become the folders s3:/b/k.
    if local is not None and _URL.match(local):
        name = "DEST" if args.mode is Mode.ONE else "DIR"
        parser.error(f"{name} {local!r} is a URL: partdl downloads to a local path")
    return args


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def check_tree(args: argparse.Namespace) -> None:
    """What ``--recursive`` and ``--input-file`` need, and what does not go with them."""
    paths = [path for path in (args.src, args.dest) if path is not None]
    if args.recursive and args.input_file is not None:
        raise InvalidArgumentError("--recursive and --input-file do not go together")
    if args.recursive and len(paths) != 2:
        raise InvalidArgumentError("--recursive takes SRC and DIR")
    if args.input_file is not None and len(paths) > 1:
        raise InvalidArgumentError("--input-file takes at most one DIR")


def check_scheme(args: argparse.Namespace, source: Source) -> None:
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


def store_config(args: argparse.Namespace) -> StoreConfig:
    return StoreConfig(
        endpoint=args.endpoint,
        region=args.region,
        profile=args.profile,
        sign_version=args.sign_version,
        pool_size=args.task_num,
    )


def retry_policy(args: argparse.Namespace) -> RetryPolicy:
    return RetryPolicy(attempts=args.retries + 1, deadline=args.retry_deadline)
