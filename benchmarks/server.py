"""A fast local object server for the benchmarks: a thread per connection, ``os.sendfile``.

moto manages about 30 MB/s here, and nginx insists on quoted ETags in ``If-Match``
(oss2 sends them bare), so the benchmarks serve their objects with this instead.
Every object is reachable at ``/<anything>/<key>``: ``/oss/<key>`` for oss2 (which
uses path style on an IP endpoint), ``/s3/<key>`` for boto3 (path style),
``/plain/<key>`` for curl, aria2c and partdl's HTTP backend. Authorization is
ignored. Both stores' headers are sent: ``x-oss-hash-crc64ecma`` always, and the S3
full-object CRC64NVME on HEAD and whole-object GET when ``x-amz-checksum-mode`` asks.

Trees (``--tree``, see :mod:`benchmarks.trees`) are listed as the stores list them: a
``GET`` of the bucket itself (``/s3?list-type=2&prefix=...``) answers ListObjectsV2
(or V1 without ``list-type=2``) in pages of at most 1,000 keys, with
``continuation-token``, ``start-after``, ``marker``, ``delimiter`` and
``encoding-type=url``; ``/oss/...`` gets the same XML without the S3 namespace and with
the ``<Type>Normal</Type>`` oss2 expects. Tree objects have their MD5 as ETag, as a
single-part upload would, since rclone checks downloads against it.

Options model a remote store: a per-connection rate cap (``--rate``, body bytes
per second, enforced at the sender so socket buffers cannot hide it), a first-byte
delay (``--delay`` seconds before each response's status line) and stragglers
(``--slow-every N --slow-rate B/s``: every Nth ranged GET the server receives, counted
across all connections, is sent at the slow rate instead of ``--rate``; the choice is
deterministic, and the runner restarts the count before every run (``POST`` to
``RESTART_PATH``), so every run of every contender meets the same slow GETs: its Nth,
2Nth, ... whatever ran before it).

Authorization is never checked, so any signature (OSS V1 or V4, S3 SigV4) is accepted.

Run ``python -m benchmarks.server --object NAME=PATH[*REPEAT] ... --tree SPEC@PATH``: it prints
``PORT <n>`` once listening and exits when its standard input closes. ``REPEAT``
serves the file's bytes that many times over, which gives a 10 GiB object from a
1 GiB file.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import datetime
import email.utils
import hashlib
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

import fastcrc
from awscrt import checksums

from partdl.crc import ChecksumAlgorithm, combine

from .trees import TreeSpec, parse_tree

_HEAD_LIMIT: Final = 64 * 1024
RESTART_PATH: Final = "/_bench/restart-stragglers"
"""``POST`` here restarts the count of ranged GETs that picks the slow ones."""
_SEND_SLICE: Final = 8 * 1024 * 1024
# A capped connection sends at most this much time's worth of bytes ahead of schedule.
_PACING_QUANTUM: Final = 0.01
_SCAN_CHUNK: Final = 64 * 1024 * 1024
_PAGE_LIMIT: Final = 1000
_S3_XMLNS: Final = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


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
    offset: int = 0
    """Where the object's bytes start in ``path`` (a tree's objects share one file)."""

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


def load_tree(spec: TreeSpec, path: str) -> dict[str, StoredObject]:
    """Every object of ``spec``, each a slice of ``path``, with its MD5 ETag and checksums."""
    modified = float(int(os.stat(path).st_mtime))
    found = {}
    fd = os.open(path, os.O_RDONLY)
    try:
        for item in spec.objects():
            md5, xz, nvme = hashlib.md5(), 0, 0
            position, end = item.offset, item.offset + item.size
            while position < end:
                data = os.pread(fd, min(_SCAN_CHUNK, end - position), position)
                if not data:
                    raise ValueError(f"{path} is shorter than tree {spec.name} needs")
                md5.update(data)
                xz = fastcrc.crc64.xz(data, initial=xz)
                nvme = checksums.crc64nvme(data, nvme)
                position += len(data)
            found[item.key] = StoredObject(
                name=item.key,
                path=path,
                base_size=item.size,
                repeat=1,
                etag=f'"{md5.hexdigest()}"',
                last_modified=modified,
                crc64xz=xz,
                crc64nvme=nvme,
                offset=item.offset,
            )
    finally:
        os.close(fd)
    return found


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


def _iso(moment: float) -> str:
    stamp = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def split_target(target: str) -> tuple[str, str]:
    """``(bucket, key)`` of a path-style request target; the key may hold slashes."""
    path = unquote(urlsplit(target).path).lstrip("/")
    bucket, _, key = path.partition("/")
    return bucket, key


def find(objects: Mapping[str, StoredObject], key: str) -> StoredObject | None:
    """The object at ``key``, or (a single object) the one named by its last segment."""
    return objects.get(key) or objects.get(key.rsplit("/", 1)[-1])


def _token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What a ListObjects request asks for (V2 with ``list-type=2``, else V1)."""

    v2: bool
    prefix: str
    delimiter: str
    limit: int
    after: str
    """List keys after this one (the continuation token's, ``start-after`` or ``marker``)."""
    encode: bool
    params: Mapping[str, str]

    @classmethod
    def parse(cls, query: str) -> ListQuery:
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        v2 = params.get("list-type") == "2"
        if v2:
            token = params.get("continuation-token", "")
            after = max(_untoken(token) if token else "", params.get("start-after", ""))
        else:
            after = params.get("marker", "")
        return cls(
            v2=v2,
            prefix=params.get("prefix", ""),
            delimiter=params.get("delimiter", ""),
            limit=min(int(params.get("max-keys") or _PAGE_LIMIT), _PAGE_LIMIT),
            after=after,
            encode=params.get("encoding-type") == "url",
            params=params,
        )


def _page(keys: Sequence[str], ask: ListQuery) -> tuple[list[str], list[str], bool]:
    """(keys, common prefixes, truncated) of one page of ``keys`` (sorted)."""
    position = max(bisect.bisect_right(keys, ask.after), bisect.bisect_left(keys, ask.prefix))
    found: list[str] = []
    folders: list[str] = []
    while position < len(keys) and keys[position].startswith(ask.prefix):
        if len(found) + len(folders) == ask.limit:
            return found, folders, True
        key = keys[position]
        cut = key.find(ask.delimiter, len(ask.prefix)) if ask.delimiter else -1
        if cut < 0:
            found.append(key)
            position += 1
            continue
        folder = key[: cut + len(ask.delimiter)]
        folders.append(folder)
        # Past every key under that folder: they roll up into it.
        position = bisect.bisect_left(keys, folder[:-1] + chr(ord(folder[-1]) + 1))
    return found, folders, False


def listing(
    objects: Mapping[str, StoredObject], keys: Sequence[str], bucket: str, query: str
) -> Reply:
    """ListObjectsV2 (``list-type=2``) or V1 of ``keys`` (sorted), as S3 sends it; for
    the ``oss`` bucket as OSS sends it (no S3 namespace, a ``<Type>`` per object)."""
    try:
        ask = ListQuery.parse(query)
    except ValueError:
        return _error(400, "Bad Request", "InvalidArgument")
    found, folders, truncated = _page(keys, ask)
    oss = bucket == "oss"

    def text(value: str) -> str:
        return escape(quote(value, safe="/") if ask.encode else value)

    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<ListBucketResult{'' if oss else _S3_XMLNS}>",
        f"<Name>{escape(bucket)}</Name><Prefix>{text(ask.prefix)}</Prefix>",
    ]
    if ask.v2:
        head.append(f"<KeyCount>{len(found) + len(folders)}</KeyCount>")
        if token := ask.params.get("continuation-token"):
            head.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if start := ask.params.get("start-after"):
            head.append(f"<StartAfter>{text(start)}</StartAfter>")
    else:
        head.append(f"<Marker>{text(ask.after)}</Marker>")
    head.append(f"<MaxKeys>{ask.limit}</MaxKeys>")
    if ask.delimiter:
        head.append(f"<Delimiter>{text(ask.delimiter)}</Delimiter>")
    if ask.encode:
        head.append("<EncodingType>url</EncodingType>")
    head.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    last = max(found[-1:] + folders[-1:], default="")
    if truncated and ask.v2:
        head.append(f"<NextContinuationToken>{_token(last)}</NextContinuationToken>")
    elif truncated:
        head.append(f"<NextMarker>{text(last)}</NextMarker>")
    kind = "<Type>Normal</Type>" if oss else ""
    contents = [
        f"<Contents><Key>{text(key)}</Key><LastModified>{_iso(objects[key].last_modified)}"
        f"</LastModified><ETag>{escape(objects[key].etag)}</ETag>{kind}"
        f"<Size>{objects[key].size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
        for key in found
    ]
    prefixes = [f"<CommonPrefixes><Prefix>{text(f)}</Prefix></CommonPrefixes>" for f in folders]
    body = "".join([*head, *contents, *prefixes, "</ListBucketResult>"]).encode()
    return Reply(200, "OK", [("Content-Type", "application/xml")], body)


def answer(
    objects: Mapping[str, StoredObject],
    method: str,
    target: str,
    headers: Mapping[str, str],
    keys: Sequence[str] = (),
) -> Reply:
    """The pure part of the server: the reply to one request (``keys``: the sorted keys
    a bucket listing shows)."""
    if method not in ("GET", "HEAD"):
        return _error(405, "Method Not Allowed", "MethodNotAllowed")
    bucket, key = split_target(target)
    if not key and method == "GET":
        return listing(objects, keys, bucket, urlsplit(target).query)
    obj = find(objects, key)
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

    def restart(self) -> None:
        """Count from zero again: the runner asks before every run, so that each run
        meets the same slow GETs (its Nth, 2Nth, ...) whatever ran before it."""
        with self._lock:
            self._count = 0


@dataclass(frozen=True, slots=True)
class _Store:
    """What every connection serves: the objects, their sorted keys, a descriptor per file."""

    objects: Mapping[str, StoredObject]
    keys: Sequence[str]
    fds: Mapping[str, int]
    """By path: a tree's objects share one file and one descriptor."""


class _Connection:
    """One client connection, served on its own thread until it closes."""

    def __init__(
        self,
        sock: socket.socket,
        store: _Store,
        behaviour: Behaviour,
        stragglers: _Stragglers,
    ) -> None:
        self._sock = sock
        self._store = store
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
        if method == "POST" and target == RESTART_PATH:
            self._stragglers.restart()
            reply = Reply(204, "No Content", [], b"")
        else:
            reply = answer(self._store.objects, method, target, headers, self._store.keys)
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
        obj = find(self._store.objects, split_target(target)[1])
        assert obj is not None  # a span is only ever answered for an object found
        rate = self._behaviour.rate
        if reply.status == 206 and self._stragglers.next_is_slow():
            rate = self._behaviour.slow_rate
        self._sock.sendall(head)
        self._send_span(obj, self._store.fds[obj.path], *reply.span, rate)

    def _send_span(self, obj: StoredObject, fd: int, start: int, end: int, rate: float) -> None:
        step = max(64 * 1024, int(rate * _PACING_QUANTUM)) if rate else _SEND_SLICE
        out = self._sock.fileno()
        began, sent, position = time.monotonic(), 0, start
        while position < end:
            offset = position % obj.base_size
            count = min(end - position, obj.base_size - offset, step)
            written = os.sendfile(out, fd, obj.offset + offset, count)
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
        paths = {obj.path for obj in objects.values()}
        self._store = _Store(
            dict(objects), sorted(objects), {path: os.open(path, os.O_RDONLY) for path in paths}
        )
        self._behaviour = behaviour
        self._stragglers = _Stragglers(behaviour.slow_every)
        self._listener = socket.create_server(("127.0.0.1", port), backlog=512)
        self.port: int = self._listener.getsockname()[1]

    def serve_forever(self) -> None:
        while True:
            sock, _ = self._listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(sock, self._store, self._behaviour, self._stragglers)
            threading.Thread(target=connection.serve, daemon=True).start()


def _tree_arg(text: str) -> tuple[TreeSpec, str]:
    spec, _, path = text.rpartition("@")
    try:
        return parse_tree(spec), path
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            "expected NAME=PREFIX=FOLDER,COUNT,SIZE,STRIDE,FANOUT[;...]@PATH"
        ) from exc


def _object_arg(text: str) -> tuple[str, str, int]:
    name, _, rest = text.partition("=")
    path, _, repeat = rest.partition("*")
    if not name or not path:
        raise argparse.ArgumentTypeError("expected NAME=PATH[*REPEAT]")
    return name, path, int(repeat or 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--object", type=_object_arg, action="append", default=[])
    parser.add_argument(
        "--tree",
        type=_tree_arg,
        action="append",
        default=[],
        help="a tree of slices of PATH: NAME=PREFIX=FOLDER,COUNT,SIZE,STRIDE,FANOUT[;...]@PATH",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="bytes/s per connection")
    parser.add_argument("--delay", type=float, default=0.0, help="first-byte delay, seconds")
    parser.add_argument("--slow-every", type=int, default=0, help="every Nth ranged GET is slow")
    parser.add_argument("--slow-rate", type=float, default=0.0, help="bytes/s of a slow GET")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.object and not args.tree:
        parser.error("nothing to serve: give --object or --tree")
    objects = {name: load_object(name, path, repeat) for name, path, repeat in args.object}
    for spec, path in args.tree:
        objects.update(load_tree(spec, path))
    behaviour = Behaviour(args.rate, args.delay, args.slow_every, args.slow_rate)
    server = ObjectServer(objects, behaviour, args.port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {server.port}", flush=True)
    # The runner holds our stdin; when it closes (or the runner dies), we stop.
    sys.stdin.buffer.read()


if __name__ == "__main__":
    main()
