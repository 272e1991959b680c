"""A lean HTTP/1.1 client for a download's requests: pooled keep-alive connections.

Through oss2 and requests one GET costs about 1.3 ms of CPU here (requests'
preparation, hooks and adapters, urllib3's pool and URL parsing, oss2's wrappers),
and that is what a tree of small objects spends its time on: on two cores, a few
thousand GETs a second is the ceiling. Even ``http.client`` spends most of a small
GET's CPU parsing the answer's headers through the ``email`` package. So this module
speaks the little HTTP/1.1 a download needs itself: it writes the request in one
``sendall`` and reads the status line, the headers and the body (``Content-Length``,
``chunked`` or up to the close) from one buffered reader per connection, straight
into the caller's buffer. A backend uses it only where its SDK's session would have
done nothing more (no proxy, no custom adapter, no cookies or session auth: see
each backend), signs each request itself, and every failure here becomes one of
partdl's errors.

Only idempotent requests go through it, so a request that fails on a connection
taken from the pool before any answer arrived (the server had closed it while it
was idle) is sent once more on a new connection, as urllib3 does.
"""

from __future__ import annotations

import io
import re
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, PartdlError, TransientError
from ._http import body_failure, content_length

if TYPE_CHECKING:
    import ssl

# Everything a request or a half-read answer can raise that a new connection may fix
# (TimeoutError, ConnectionResetError and ssl.SSLError are all OSErrors).
_ERRORS: tuple[type[BaseException], ...] = (OSError,)
# getaddrinfo's answers that no retry changes: the name does not exist (a mistyped
# endpoint), unlike EAI_AGAIN, a resolver that did not answer in time.
_NO_SUCH_NAME = {
    code for name in ("EAI_NONAME", "EAI_NODATA") if (code := getattr(socket, name, None))
}
# Errors that show a pooled connection was closed by the server while idle.
_STALE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
# An error answer's body is read for its code; more than this is not an error document.
_ERROR_BODY_LIMIT = 64 * 1024
_CODE = re.compile(rb"<Code>\s*([^<\s]+)\s*</Code>")
# As http.client bounds them: a longer line or more header fields is no sane answer.
_MAX_LINE = 65536
_MAX_HEADERS = 100
_NO_BODY_STATUSES = frozenset({204, 304})


class ProtocolError(TransientError):
    """The server's answer is not HTTP/1.1 as partdl reads it (retried: a proxy or a
    half-dead connection is the usual cause)."""


class _Closed(Exception):
    """The connection ended before the first byte of an answer."""


def environment_ca_bundle() -> str | None:
    """The CA bundle the environment names for requests (``REQUESTS_CA_BUNDLE``, else
    ``CURL_CA_BUNDLE``), so that both of partdl's HTTP paths trust the same CAs."""
    import os

    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


# ``ssl`` costs 8 ms to import and only https needs it. Until a TLS socket was made no
# TLS error can happen, so the TLS errors below are looked up only if it was loaded.
def _stale() -> tuple[type[BaseException], ...]:
    """What shows that a pooled connection was closed by the server while idle."""
    loaded = sys.modules.get("ssl")
    if loaded is None:
        return (_Closed, *_STALE)
    return (_Closed, *_STALE, loaded.SSLEOFError, loaded.SSLZeroReturnError)


def _refused_certificate() -> tuple[type[ssl.SSLCertVerificationError], ...]:
    loaded = sys.modules.get("ssl")
    return () if loaded is None else (loaded.SSLCertVerificationError,)


@lru_cache(maxsize=8)
def tls_context(verify: bool | str) -> ssl.SSLContext:
    """A client TLS context: the default one, one trusting a CA bundle (a file or a
    folder), or (``False``) one that checks nothing, as requests' ``verify`` means."""
    import ssl

    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if verify is True:
        import certifi  # requests' own trust store, so both paths trust the same CAs

        return ssl.create_default_context(cafile=certifi.where())
    import os

    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


@dataclass(frozen=True)
class Origin:
    """Where the connections go and how they are made; it pickles (no socket in it)."""

    scheme: str
    host: str
    """A name or an address, as connected to (an IPv6 address without brackets)."""
    port: int | None
    connect_timeout: float | None
    read_timeout: float | None
    """How long to wait for an answer's status line and headers."""
    verify: bool | str = True
    """For https: requests' ``verify`` (True, False or a CA bundle's path)."""

    @property
    def host_header(self) -> str:
        """``Host`` as RFC 9112 writes it: an IPv6 address in brackets, a port unless
        it is the scheme's own."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port in (None, default) else f"{host}:{self.port}"

    def connect(self) -> Connection:
        port = self.port or (443 if self.scheme == "https" else 80)
        # A str is encoded by the idna codec, which costs 2 ms to import even for
        # "127.0.0.1"; an ASCII name needs no encoding.
        host = self.host.encode() if self.host.isascii() else self.host
        sock = socket.create_connection(
            (host, port),  # type: ignore[arg-type]  # getaddrinfo takes bytes too
            timeout=self.connect_timeout,
        )
        try:
            # A request is written in one piece: nothing to gain from Nagle's wait.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.scheme == "https":
                sock = tls_context(self.verify).wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        return Connection(sock)


class Connection:
    """One open connection: its socket and the buffered reader of its answers."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: io.BufferedReader = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class Headers(Mapping[str, str]):
    """An answer's headers, looked up without regard to case (repeats joined by commas)."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._items: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for name, value in fields:
            lowered = name.lower()
            if lowered in self._items:
                self._items[lowered] += ", " + value
            else:
                self._items[lowered], self._names[lowered] = value, name

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def tokens(self, name: str) -> set[str]:
        """A comma-separated header's values, lowercased (``Connection``,
        ``Transfer-Encoding``)."""
        value = self._items.get(name.lower())
        if not value:
            return set()  # the usual case: absent
        return {t.strip().lower() for t in value.split(",")}


def _request_bytes(method: str, target: str, host: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    identity = True
    for name, value in headers.items():
        if "\r" in name or "\n" in name or ":" in name or "\r" in value or "\n" in value:
            raise PartdlError(f"refusing to send a malformed header {name!r}")
        if identity and name.lower() == "accept-encoding":
            identity = False
        lines.append(f"{name}: {value}")
    if identity:
        lines.insert(2, "Accept-Encoding: identity")  # the bytes as stored, never recoded
    if " " in target or "\r" in target or "\n" in target:
        raise PartdlError("refusing to send a request target with spaces or line breaks")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _line(reader: io.BufferedReader) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise ProtocolError("the server sent a line longer than 64 KiB")
    return line


def _read_head(reader: io.BufferedReader) -> tuple[bytes, int, Headers]:
    """The version, status and headers of the next final answer (1xx ones skipped)."""
    while True:
        lines = _buffered_head(reader) or _head_lines(reader)
        line = next(lines, b"")
        if not line:
            raise _Closed
        version, _, rest = line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
        fields: list[tuple[str, str]] = []
        for field in lines:
            if len(fields) >= _MAX_HEADERS:
                raise ProtocolError(f"more than {_MAX_HEADERS} header fields")
            if field[:1] in (b" ", b"\t") and fields:  # an obsolete folded line
                name, value = fields.pop()
                fields.append((name, f"{value} {field.strip().decode('latin-1')}"))
                continue
            name, colon, value = field.decode("latin-1").partition(":")
            if not colon or not name or name != name.strip():
                raise ProtocolError(f"a malformed header line: {field[:80]!r}")
            fields.append((name, value.strip()))
        status = int(code)
        if 100 <= status < 200:
            continue  # 100 Continue and the like: the real answer follows
        return version, status, Headers(fields)


def _buffered_head(reader: io.BufferedReader) -> Iterator[bytes] | None:
    """The head's lines in one read when all of it is already buffered, as it almost
    always is (one readline per header line costs more than the rest of the parse);
    None, with nothing consumed, when it is not, uses bare LF line ends or starts with
    a blank line (the line-by-line path refuses that)."""
    buffered = reader.peek()
    end = buffered.find(b"\r\n\r\n")
    if end < 0 or buffered[:1] in (b"\r", b"\n"):
        return None
    if buffered.count(b"\n", 0, end) != buffered.count(b"\r\n", 0, end):
        return None
    return iter(reader.read(end + 4)[:end].split(b"\r\n"))


def _head_lines(reader: io.BufferedReader) -> Iterator[bytes]:
    """The status line (empty at EOF), then each header line up to the blank one."""
    yield _line(reader)
    yield from _field_lines(reader)


def _field_lines(reader: io.BufferedReader) -> Iterator[bytes]:
    """Each line of a block of fields (a head's headers, a chunked body's trailer) up to
    the blank line that ends it, or the end of the stream."""
    while (line := _line(reader)) not in (b"\r\n", b"\n", b""):
        yield line


class Pool:
    """Idle kept-alive connections to one origin, at most ``size`` of them kept."""

    def __init__(self, origin: Origin, size: int) -> None:
        self.origin = origin
        self._size = max(size, 1)
        self._idle: deque[Connection] = deque()
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        # For another process: the same origin, no connections.
        return (Pool, (self.origin, self._size))

    def take_idle(self) -> Connection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give_back(self, connection: Connection) -> None:
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, deque()
        for connection in idle:
            connection.close()

    def send(self, method: str, target: str, headers: Mapping[str, str], what: str) -> Response:
        """Send one idempotent request; the answer's headers are in, its body is not read.

        Raises :class:`TransientError` when no answer came.
        """
        return self.begin(method, target, headers, what).answer()

    def begin(self, method: str, target: str, headers: Mapping[str, str], what: str) -> Sent:
        """Write one idempotent request and return at once: :meth:`Sent.answer` reads it,
        so that one thread can have several requests in flight."""
        request = _request_bytes(method, target, self.origin.host_header, headers)
        return Sent(self, method, request, what)


class Sent:
    """A request written to a connection whose answer has not been read yet.

    A failure to write it is kept and raised by :meth:`answer`, which handles it as a
    failure to read the answer: either way, on a connection taken from the pool that
    the server had closed while idle, the request goes once more on another one.
    """

    def __init__(self, pool: Pool, method: str, request: bytes, what: str) -> None:
        self._pool = pool
        self._method = method
        self._request = request
        self._what = what
        self._connection: Connection | None = None
        self._reused = False
        self._failure: Exception | None = None
        self._write()

    def _write(self) -> None:
        connection = self._pool.take_idle()
        self._reused = connection is not None
        self._connection, self._failure = connection, None
        try:
            if connection is None:
                connection = self._connection = self._pool.origin.connect()
            # A new connection has the connect timeout, a pooled one the last body's
            # stall timeout: the answer gets the read timeout.
            connection.sock.settimeout(self._pool.origin.read_timeout)
            connection.sock.sendall(self._request)
        except Exception as exc:
            self._failure = exc
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """The connection's socket, to wait until its answer begins; -1 if the write
        failed (:meth:`answer` raises at once)."""
        if self._failure is not None or self._connection is None:
            return -1
        return self._connection.sock.fileno()

    def answer(self) -> Response:
        """The answer's status and headers; its body is not read.

        Raises :class:`TransientError` when no answer came.
        """
        what = self._what
        while True:
            connection = self._connection
            try:
                if self._failure is not None:
                    raise self._failure
                assert connection is not None
                version, status, found = _read_head(connection.reader)
                self._connection = None  # the Response owns it now
                return Response(self._pool, connection, self._method, version, status, found)
            except _refused_certificate() as exc:
                self.close()
                # No retry fixes a certificate the client does not trust.
                raise PartdlError(
                    f"{what}: the server's TLS certificate was refused: {exc.verify_message}"
                ) from exc
            except _stale() as exc:
                self.close()
                if self._reused:
                    self._write()  # the server closed it while idle: once more, on another
                    continue
                reason = "closed" if isinstance(exc, _Closed) else type(exc).__name__
                raise TransientError(f"{what}: no answer ({reason})") from None
            except ProtocolError as exc:
                self.close()
                raise ProtocolError(f"{what}: {exc}") from exc
            except socket.gaierror as exc:
                self.close()
                if exc.errno not in _NO_SUCH_NAME:  # EAI_AGAIN and the like: try again
                    raise TransientError(f"{what}: no answer (gaierror: {exc})") from exc
                host = self._pool.origin.host
                raise InvalidArgumentError(f"{what}: the host {host!r} is not known") from exc
            except _ERRORS as exc:
                self.close()
                raise TransientError(f"{what}: no answer ({type(exc).__name__})") from exc

    def close(self) -> None:
        """Give up on the answer: the connection is closed, never reused."""
        connection, self._connection = self._connection, None
        _close(connection)


def _close(connection: Connection | None) -> None:
    if connection is not None:
        connection.close()


class Response:
    """One answer: its status and headers, and its body read straight into a buffer.

    A body read to its end hands the connection back to the pool; one closed early
    closes the connection, so no connection is reused with half an answer in it.
    """

    def __init__(
        self,
        pool: Pool,
        connection: Connection,
        method: str,
        version: bytes,
        status: int,
        headers: Headers,
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._stall_timeout: float | None = None
        self.status = status
        self.headers = headers
        closing = headers.tokens("Connection")
        self._will_close = "close" in closing or (
            version == b"HTTP/1.0" and "keep-alive" not in closing
        )
        self._chunked = False
        self._ended = False
        self._left: int | None  # bytes of the body (or of this chunk) still to come
        if method == "HEAD" or status in _NO_BODY_STATUSES:
            self._left = 0
        elif "chunked" in headers.tokens("Transfer-Encoding"):
            self._chunked, self._left = True, None
        elif (length := content_length(headers)) is not None:
            self._left = length
        elif "Content-Length" in headers:
            self.close()  # nothing of the body was read: the connection goes
            raise ProtocolError(f"a malformed Content-Length: {headers['Content-Length'][:40]!r}")
        else:
            self._left, self._will_close = None, True  # the body ends with the connection
        self._ended = self._left == 0

    def stall_after(self, seconds: float | None) -> None:
        """From now on a read may wait at most ``seconds`` for its next byte."""
        self._stall_timeout = seconds
        if self._connection is not None and seconds is not None:
            self._connection.sock.settimeout(seconds)

    def readinto(self, buffer: memoryview, /) -> int:
        if self._ended or self._connection is None:
            return 0
        try:
            return self._read(self._connection.reader, buffer)
        except _ERRORS as exc:  # TimeoutError (a stall) is an OSError
            raise body_failure(exc, self._stall_timeout) from exc

    def _read(self, reader: io.BufferedReader, buffer: memoryview) -> int:
        if self._chunked and not self._left:
            self._left = self._next_chunk(reader)
            if self._left == 0:
                self._ended = True
                return 0
        want = len(buffer) if self._left is None else min(len(buffer), self._left)
        count = reader.readinto(buffer[:want])
        if count == 0:
            if self._left is None:  # read to the close: this is the end
                self._ended = True
                return 0
            raise body_failure(ConnectionError("the body ended early"), self._stall_timeout)
        if self._left is not None:
            self._left -= count
            if self._left == 0 and self._chunked:
                _line(reader)  # the CRLF after a chunk's data
            elif self._left == 0:
                self._ended = True
        return count

    @staticmethod
    def _next_chunk(reader: io.BufferedReader) -> int:
        """The size of the next chunk; at the last (0), the trailer is read past too."""
        line = _line(reader)
        size = line.split(b";", 1)[0].strip()
        try:
            value = int(size, 16)
        except ValueError:
            raise ProtocolError(f"a malformed chunk size: {line[:40]!r}") from None
        if value < 0:
            raise ProtocolError(f"a malformed chunk size: {line[:40]!r}")
        if value == 0:
            for _trailer in _field_lines(reader):
                pass
        return value

    def read_all(self, limit: int = 64 * 1024 * 1024) -> bytes:
        """The whole of a small body (a listing page, a HEAD's empty one); the
        connection goes back to the pool afterwards."""
        data = self._read_up_to(limit + 1)
        self.close()
        if len(data) > limit:
            raise TransientError(f"an answer of more than {limit} bytes")
        return data

    def _read_up_to(self, limit: int) -> bytes:
        chunks = bytearray()
        buffer = memoryview(bytearray(64 * 1024))
        try:
            while len(chunks) < limit and (count := self.readinto(buffer)):
                chunks += buffer[:count]
        except TransientError:
            self.close()
            raise
        return bytes(chunks)

    def error_code(self) -> str:
        """The store's error code from an error answer's XML body ('' if none); the body
        is consumed and the connection let go."""
        try:
            data = self._read_up_to(_ERROR_BODY_LIMIT)
        except TransientError:
            data = b""
        match = _CODE.search(data)
        self.close()
        return match.group(1).decode("ascii", "replace") if match else ""

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        # Reused only when the whole body was read: a body cut short leaves the stream
        # in an unknown place.
        if self._ended and not self._will_close:
            self._pool.give_back(connection)
            return
        connection.close()
