"""The ``partdl`` command: ``partdl SRC DEST``, ``partdl SRC DIR -r``, ``partdl -i FILE``.

This package is the only place partdl prints. Its modules do one thing each:

* :mod:`.parsing`: the one argparse definition for one object and for many, and
  which options go with which mode and scheme;
* :mod:`.sources`: what SRC names, where it lands, and the SDK bucket that reaches it;
* :mod:`.single` and :mod:`.tree`: running one object, or many;
* :mod:`.output`: progress bars, log lines, summaries (human or JSON) and errors;
* :mod:`.exits`: the exit codes and which error means which.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import NoReturn

from . import output
from .exits import EXIT_MEANINGS, ExitCode, Terminated, exit_code_for
from .output import BatchBar, ProgressBar
from .parsing import Mode, UsageError, build_parser, parse, parse_size
from .sources import Scheme, Source, parse_prefix, parse_source, resolve_destination, safe_name

__all__ = [
    "EXIT_MEANINGS",
    "BatchBar",
    "ExitCode",
    "ProgressBar",
    "Scheme",
    "Source",
    "UsageError",
    "build_parser",
    "exit_code_for",
    "main",
    "parse_prefix",
    "parse_size",
    "parse_source",
    "resolve_destination",
    "run",
    "safe_name",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``partdl`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse(argv)
    except UsageError as exc:
        output.error_line(f"{exc} (see partdl --help)")
        return ExitCode.INVALID_ARGUMENT
    except SystemExit as exc:  # --help and --version print and exit 0
        return exc.code if isinstance(exc.code, int) else ExitCode.INVALID_ARGUMENT
    # Each mode imports its own layer: a single object never loads the tree's.
    with _sigterm_as_interrupt():
        if args.mode is Mode.TREE:
            from . import tree

            # For many objects -v is a line per object; partdl's own log starts at -vv.
            with output.log_to_stderr(args.quiet, args.verbose - 1):
                return tree.run(args)
        from . import single

        with output.log_to_stderr(args.quiet, args.verbose):
            return single.run(args)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``timeout``, ``docker stop``, Kubernetes) stops a run as Ctrl-C does:
    the checkpoint saved, the lock released, a last line, exit code 143."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: nothing to install
        return

    def terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean stop; SIGKILL remains
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        # None: the previous handler was not set from Python; the default is then right.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run() -> NoReturn:
    """The console script."""
    # A file-size limit (ulimit -f) then fails the write with EFBIG, which is reported
    # as a local file error with the checkpoint kept, instead of killing the process.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    code = main()
    # The interpreter's teardown collects every object the imports made, which took
    # ~40 ms of each run here; frozen, it skips them (the process is ending anyway).
    gc.freeze()
    sys.exit(code)
