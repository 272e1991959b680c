"""A process that runs downloads on command, for tests that kill it or starve it.

    python -m tests.faultchild [--rlimit-fsize BYTES]

It reads one JSON command per line on stdin and answers with JSON lines on stdout,
starting with ``{"event": "ready"}``:

- ``{"op": "download", ...}`` runs :func:`partdl.download` (see :func:`_download`) and
  answers ``result`` or ``error`` (the exception's type, errno and message). With a
  ``stop`` point it instead answers ``stopped`` when the download reaches that point and
  then blocks that thread for good, so the parent can SIGKILL it at a known moment
  without racing it. A point is a file event seen through ``sys.addaudithook`` (the
  interpreter's own instrumentation, nothing patched): ``{"event": "open", "endswith":
  ".new", "nth": 1}`` stops just before the first checkpoint staging file is created,
  ``os.rename`` just before a rename, ``os.remove`` before an unlink; or ``{"progress":
  0.4}`` stops in the progress callback once 40% of the bytes are in.
- ``{"op": "many", "items": [[key, path], ...], ...}`` runs :func:`partdl.download_many`
  on those keys of the bucket and answers ``batch``: what was downloaded, and each
  failed key's error (type, errno, message).
- ``{"op": "fill", "path": ...}`` writes zeros to ``path`` until the file system is full.
- ``{"op": "remove", "path": ...}`` deletes a file.

``--rlimit-fsize`` sets ``RLIMIT_FSIZE`` and ignores ``SIGXFSZ``, so writing past the
limit fails with ``EFBIG`` instead of killing the process.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import partdl
from partdl.backends.oss import OssBackend
from tests.helpers import oss_bucket


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


_FOREVER = threading.Event()


def stop_here(at: str) -> None:
    """Report the point and never return: the parent kills the process now."""
    emit(event="stopped", at=at)
    _FOREVER.wait()


@dataclass
class FilePoint:
    event: str
    endswith: str
    nth: int
    seen: int = 0


class Points:
    """The one armed stop point, checked from the audit hook on every thread."""

    def __init__(self) -> None:
        self.armed: FilePoint | None = None
        self._lock = threading.Lock()

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        point = self.armed
        if point is None or event != point.event:
            return
        paths = [arg for arg in args[:2] if isinstance(arg, str)]
        if not any(path.endswith(point.endswith) for path in paths):
            return
        with self._lock:
            point.seen += 1
            hit = point.seen == point.nth
        if hit:
            stop_here(f"{event} {paths[0]}")


POINTS = Points()


def _download(command: dict[str, Any]) -> None:
    bucket = oss_bucket(
        command["endpoint"], command["bucket"], connect_timeout=command.get("connect_timeout", 30)
    )
    backend = OssBackend(
        bucket,
        command["key"],
        headers=command.get("headers"),
        stall_timeout=command.get("stall_timeout"),
    )
    stop = command.get("stop") or {}
    fraction = stop.get("progress")
    POINTS.armed = (
        FilePoint(stop["event"], stop["endswith"], stop["nth"]) if "event" in stop else None
    )
    fill = command.get("fill_at")

    def progress(consumed: int, total: int) -> None:
        nonlocal fill
        if fill is not None and consumed >= fill["progress"] * total:
            filled = _fill(fill["path"])
            emit(event="filled", bytes=filled, consumed=consumed)
            fill = None
        if fraction is not None and consumed >= fraction * total:
            stop_here(f"progress {consumed}/{total}")

    retry = command.get("retry")
    try:
        result = partdl.download(
            backend,
            command["out"],
            part_size=command.get("part_size"),
            task_num=command.get("task_num", 4),
            checkpoint_file=command.get("checkpoint_file"),
            retry=partdl.RetryPolicy(**retry) if retry else None,
            progress_callback=progress,
        )
    except Exception as exc:
        emit(
            event="error",
            type=type(exc).__name__,
            errno=getattr(exc, "errno", None),
            message=str(exc),
        )
        return
    finally:
        POINTS.armed = None
    emit(
        event="result",
        parts_total=result.parts_total,
        parts_fetched=result.parts_fetched,
        parts_reused=result.parts_reused,
    )


def _many(command: dict[str, Any]) -> None:
    bucket = oss_bucket(command["endpoint"], command["bucket"])
    retry = command.get("retry")
    try:
        result = partdl.download_many(
            [(bucket, key, path) for key, path in command["items"]],
            part_size=command.get("part_size"),
            task_num=command.get("task_num", 1),
            retry=partdl.RetryPolicy(**retry) if retry else None,
        )
    except partdl.PartialDownloadError as exc:
        result = exc.result
    failed = {
        key: {"type": type(exc).__name__, "errno": getattr(exc, "errno", None), "message": str(exc)}
        for key, exc in result.failed.items()
    }
    emit(event="batch", downloaded=result.downloaded, failed=failed)


def _fill(path: str) -> int:
    """Write zeros to ``path`` until the file system says it is full."""
    chunk = bytes(64 * 1024)
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                count = os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
            written += count
            if count < len(chunk):
                continue  # the last few pages: the next write says ENOSPC
    finally:
        os.close(fd)
    return written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rlimit-fsize", type=int)
    args = parser.parse_args()
    if args.rlimit_fsize is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.rlimit_fsize, args.rlimit_fsize))
    sys.addaudithook(POINTS)
    emit(event="ready", pid=os.getpid())
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "download":
            _download(command)
        elif op == "many":
            _many(command)
        elif op == "fill":
            emit(event="filled", bytes=_fill(command["path"]))
        elif op == "remove":
            os.unlink(command["path"])
            emit(event="removed")
        else:
            emit(event="error", type="UnknownCommand", errno=None, message=op)


# -- the test side -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# Generous: a healthy child answers in well under a second; this only ends a hang.
EVENT_TIMEOUT = 60.0


class Child:
    """A running ``tests.faultchild``: send it commands, read its events, kill it.

    ``prefix`` runs it through a wrapper (``unshare ... sh -c '...; exec "$@"'``); the
    wrapper must exec, so the child keeps the wrapper's pid.
    """

    def __init__(
        self,
        *,
        prefix: Sequence[str] = (),
        rlimit_fsize: int | None = None,
        umask: int = -1,
    ) -> None:
        argv = [*prefix, sys.executable, "-m", "tests.faultchild"]
        if rlimit_fsize is not None:
            argv += ["--rlimit-fsize", str(rlimit_fsize)]
        self._process = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            umask=umask,
        )
        self.seen: list[dict[str, Any]] = []
        """Every event read so far, including those :meth:`until` passed over."""
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self.next_event()
        if ready["event"] != "ready":
            raise RuntimeError(f"the child did not start: {ready}")
        self.pid: int = ready["pid"]

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._events.put(json.loads(line))
        self._events.put(None)

    def next_event(self) -> dict[str, Any]:
        try:
            event = self._events.get(timeout=EVENT_TIMEOUT)
        except queue.Empty:
            self.kill()
            raise RuntimeError("the child sent nothing for a minute") from None
        if event is None:
            raise RuntimeError(f"the child exited with {self._process.wait()}")
        self.seen.append(event)
        return event

    def send(self, **command: Any) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()

    def until(self, *events: str) -> dict[str, Any]:
        """The first event named in ``events``; the others on the way are dropped."""
        while True:
            event = self.next_event()
            if event["event"] in events:
                return event

    def run(self, **command: Any) -> dict[str, Any]:
        """Send a download and return its ``result``, ``error`` or ``stopped`` event."""
        self.send(op="download", **command)
        return self.until("result", "error", "stopped")

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no flush."""
        self._process.kill()
        self._process.wait()
        self._close_pipes()

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait(timeout=EVENT_TIMEOUT)
        self._close_pipes()

    def _close_pipes(self) -> None:
        # The process is gone: its stdout ends, the reader sees EOF, then both close.
        self._reader.join(timeout=EVENT_TIMEOUT)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None and not stream.closed:
                stream.close()

    @property
    def returncode(self) -> int | None:
        return self._process.returncode


if __name__ == "__main__":
    main()
