"""A fast local object server for the benchmarks: a thread per connection, ``os.sendfile``.

moto manages about 30 MB/s here, and nginx insists on quoted ETags in ``If-Match``
(oss2 sends them bare), so the benchmarks serve their objects with this instead.
Every object is reachable at ``/<anything>/<name>``: ``/oss/<name>`` for oss2 (which
uses path style on an IP endpoint), ``/s3/<name>`` for boto3 (path style),
``/plain/<name>`` for curl, aria2c and partdl's HTTP backend. Authorization is
ignored. Both stores' headers are sent: ``x-oss-hash-crc64ecma`` always, and the S3
full-object CRC64NVME on HEAD and whole-object GET when ``x-amz-checksum-mode`` asks.

Options model a remote store: a per-connection rate cap (``--rate``, body bytes
per second, enforced at the sender so socket buffers cannot hide it), a first-byte
delay (``--delay`` seconds before each response's status line) and stragglers
(``--slow-every N --slow-rate B/s``: every Nth ranged GET the server receives, counted
across all connections, is sent at the slow rate instead of ``--rate``; the choice is
deterministic, so every contender meets the same share of slow GETs).

Authorization is never checked, so any signature (OSS V1 or V4, S3 SigV4) is accepted.

Run ``python -m benchmarks.server --object NAME=PATH[*REPEAT] ...``: it prints
``PORT <n>`` once listening and exits when its standard input closes. ``REPEAT``
serves the file's bytes that many times over, which gives a 10 GiB object from a
1 GiB file.
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import hashlib
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

import fastcrc
from awscrt import checksums

from partdl.crc import ChecksumAlgorithm, combine

_HEAD_LIMIT: Final = 64 * 1024
_SEND_SLICE: Final = 8 * 1024 * 1024
# A capped connection sends at most this much time's worth of bytes ahead of schedule.
_PACING_QUANTUM: Final = 0.01
_SCAN_CHUNK: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object: ``repeat`` copies of the bytes of ``path``."""

    name: str
    path: str
    base_size: int
    repeat: int
    etag: str
    last_modified: float
    crc64xz: int
    crc64nvme: int

    @property
    def size(self) -> int:
        return self.base_size * self.repeat


def _repeated(algorithm: ChecksumAlgorithm, crc: int, length: int, repeat: int) -> int:
    total = 0
    for _ in range(repeat):
        total = combine(algorithm, total, crc, length)
    return total


def load_object(name: str, path: str, repeat: int = 1) -> StoredObject:
    """Describe ``path`` served ``repeat`` times; reading it also warms the page cache."""
    info = os.stat(path)
    xz = nvme = 0
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(_SCAN_CHUNK)
        view = memoryview(buffer)
        while count := handle.readinto(buffer):
            xz = fastcrc.crc64.xz(view[:count], initial=xz)
            nvme = checksums.crc64nvme(view[:count], nvme)
    tag = hashlib.md5(f"{name}:{info.st_size}:{info.st_mtime_ns}:{repeat}".encode()).hexdigest()
    return StoredObject(
        name=name,
        path=path,
        base_size=info.st_size,
        repeat=repeat,
        etag=f'"{tag}"',
        last_modified=float(int(info.st_mtime)),
        crc64xz=_repeated(ChecksumAlgorithm.CRC64XZ, xz, info.st_size, repeat),
        crc64nvme=_repeated(ChecksumAlgorithm.CRC64NVME, nvme, info.st_size, repeat),
    )


@dataclass(frozen=True, slots=True)
class Reply:
    """What to send back: a status, headers, and either a small body or a byte span."""

    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    span: tuple[int, int] | None = None
    """``[start, end)`` of the object, sent with ``sendfile`` on a GET."""


def _error(status: int, reason: str, code: str) -> Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{reason}</Message>"
        "<RequestId>bench</RequestId><HostId>127.0.0.1</HostId></Error>"
    ).encode()
    return Reply(status, reason, [("Content-Type", "application/xml")], body)


def _bare(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def _precondition_fails(obj: StoredObject, headers: Mapping[str, str]) -> bool:
    """``If-Match`` with quoted or bare ETags (oss2 strips quotes); ``If-Unmodified-Since``."""
    if_match = headers.get("if-match")
    if if_match is not None:
        wanted = {_bare(tag) for tag in if_match.split(",")}
        if "*" not in wanted and _bare(obj.etag) not in wanted:
            return True
    since = headers.get("if-unmodified-since")
    if since is not None:
        try:
            limit = email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
        return obj.last_modified > limit
    return False


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` for one ``bytes=`` range, or None when it is not satisfiable."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:
            suffix = int(last)
            return (max(0, size - suffix), size) if suffix > 0 and size else None
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return None
    return start, min(end, size)


def answer(
    objects: Mapping[str, StoredObject], method: str, target: str, headers: Mapping[str, str]
) -> Reply:
    """The pure part of the server: the reply to one request."""
    if method not in ("GET", "HEAD"):
        return _error(405, "Method Not Allowed", "MethodNotAllowed")
    name = unquote(urlsplit(target).path).rsplit("/", 1)[-1]
    obj = objects.get(name)
    if obj is None:
        return _error(404, "Not Found", "NoSuchKey")
    if _precondition_fails(obj, headers):
        return _error(412, "Precondition Failed", "PreconditionFailed")
    common = [
        ("ETag", obj.etag),
        ("Last-Modified", email.utils.formatdate(obj.last_modified, usegmt=True)),
        ("Accept-Ranges", "bytes"),
        ("Content-Type", "application/octet-stream"),
        ("x-oss-object-type", "Normal"),
        ("x-oss-hash-crc64ecma", str(obj.crc64xz)),
    ]
    requested = headers.get("range")
    if requested is None:
        if headers.get("x-amz-checksum-mode", "").lower() == "enabled":
            value = base64.b64encode(obj.crc64nvme.to_bytes(8, "big")).decode()
            common += [("x-amz-checksum-crc64nvme", value), ("x-amz-checksum-type", "FULL_OBJECT")]
        return Reply(200, "OK", [*common, ("Content-Length", str(obj.size))], span=(0, obj.size))
    span = parse_range(requested, obj.size)
    if span is None:
        reply = _error(416, "Range Not Satisfiable", "InvalidRange")
        reply.headers.append(("Content-Range", f"bytes */{obj.size}"))
        return reply
    start, end = span
    return Reply(
        206,
        "Partial Content",
        [
            *common,
            ("Content-Length", str(end - start)),
            ("Content-Range", f"bytes {start}-{end - 1}/{obj.size}"),
        ],
        span=span,
    )


@dataclass(frozen=True, slots=True)
class Behaviour:
    rate: float = 0.0
    """Body bytes per second per connection; 0 for no cap."""
    delay: float = 0.0
    """Seconds before the status line of every response."""
    slow_every: int = 0
    """Every ``slow_every``-th ranged GET is a straggler; 0 for none."""
    slow_rate: float = 0.0
    """Body bytes per second of a straggler GET."""


class _Stragglers:
    """Picks the slow GETs: a count of ranged GETs shared by every connection."""

    def __init__(self, every: int) -> None:
        self._every = every
        self._count = 0
        self._lock = threading.Lock()

    def next_is_slow(self) -> bool:
        if not self._every:
            return False
        with self._lock:
            self._count += 1
            return self._count % self._every == 0


class _Connection:
    """One client connection, served on its own thread until it closes."""

    def __init__(
        self,
        sock: socket.socket,
        objects: Mapping[str, StoredObject],
        fds: Mapping[str, int],
        behaviour: Behaviour,
        stragglers: _Stragglers,
    ) -> None:
        self._sock = sock
        self._objects = objects
        self._fds = fds
        self._behaviour = behaviour
        self._stragglers = stragglers
        self._pending = bytearray()

    def serve(self) -> None:
        try:
            while self._one():
                pass
        except OSError:
            pass  # the client went away mid-response: nothing to tell anyone
        finally:
            self._sock.close()

    def _read_head(self) -> bytes | None:
        while (end := self._pending.find(b"\r\n\r\n")) < 0:
            if len(self._pending) > _HEAD_LIMIT:
                return None
            data = self._sock.recv(65536)
            if not data:
                return None
            self._pending += data
        head = bytes(self._pending[:end])
        del self._pending[: end + 4]
        return head

    def _one(self) -> bool:
        head = self._read_head()
        if head is None:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = [*lines[0].split(" ", 2), "", ""][:3]
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        token = headers.get("connection", "").lower()
        keep = token == "keep-alive" if version == "HTTP/1.0" else token != "close"
        reply = answer(self._objects, method, target, headers)
        if self._behaviour.delay:
            time.sleep(self._behaviour.delay)
        self._send(reply, method, target, keep)
        return keep

    def _send(self, reply: Reply, method: str, target: str, keep: bool) -> None:
        lines = [f"HTTP/1.1 {reply.status} {reply.reason}", "Server: partdl-bench"]
        lines += [f"{key}: {value}" for key, value in reply.headers]
        if reply.span is None:
            lines.append(f"Content-Length: {len(reply.body)}")
        lines.append("Connection: " + ("keep-alive" if keep else "close"))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if method == "HEAD" or reply.span is None:
            self._sock.sendall(head + (b"" if method == "HEAD" else reply.body))
            return
        name = unquote(urlsplit(target).path).rsplit("/", 1)[-1]
        rate = self._behaviour.rate
        if reply.status == 206 and self._stragglers.next_is_slow():
            rate = self._behaviour.slow_rate
        self._sock.sendall(head)
        self._send_span(self._objects[name], self._fds[name], *reply.span, rate)

    def _send_span(self, obj: StoredObject, fd: int, start: int, end: int, rate: float) -> None:
        step = max(64 * 1024, int(rate * _PACING_QUANTUM)) if rate else _SEND_SLICE
        out = self._sock.fileno()
        began, sent, position = time.monotonic(), 0, start
        while position < end:
            offset = position % obj.base_size
            count = min(end - position, obj.base_size - offset, step)
            written = os.sendfile(out, fd, offset, count)
            if written == 0:
                raise ConnectionResetError("sendfile sent nothing")
            position += written
            sent += written
            # No wait after the last byte: the client's next request must not queue
            # behind it.
            if rate and position < end:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)


class ObjectServer:
    """The listening socket and its accept loop (run it on a daemon thread)."""

    def __init__(
        self, objects: Mapping[str, StoredObject], behaviour: Behaviour, port: int = 0
    ) -> None:
        self._objects = dict(objects)
        self._fds = {name: os.open(obj.path, os.O_RDONLY) for name, obj in objects.items()}
        self._behaviour = behaviour
        self._stragglers = _Stragglers(behaviour.slow_every)
        self._listener = socket.create_server(("127.0.0.1", port), backlog=512)
        self.port: int = self._listener.getsockname()[1]

    def serve_forever(self) -> None:
        while True:
            sock, _ = self._listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(
                sock, self._objects, self._fds, self._behaviour, self._stragglers
            )
            threading.Thread(target=connection.serve, daemon=True).start()


def _object_arg(text: str) -> tuple[str, str, int]:
    name, _, rest = text.partition("=")
    path, _, repeat = rest.partition("*")
    if not name or not path:
        raise argparse.ArgumentTypeError("expected NAME=PATH[*REPEAT]")
    return name, path, int(repeat or 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--object", type=_object_arg, action="append", required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="bytes/s per connection")
    parser.add_argument("--delay", type=float, default=0.0, help="first-byte delay, seconds")
    parser.add_argument("--slow-every", type=int, default=0, help="every Nth ranged GET is slow")
    parser.add_argument("--slow-rate", type=float, default=0.0, help="bytes/s of a slow GET")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    objects = {name: load_object(name, path, repeat) for name, path, repeat in args.object}
    behaviour = Behaviour(args.rate, args.delay, args.slow_every, args.slow_rate)
    server = ObjectServer(objects, behaviour, args.port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {server.port}", flush=True)
    # The runner holds our stdin; when it closes (or the runner dies), we stop.
    sys.stdin.buffer.read()


if __name__ == "__main__":
    main()
