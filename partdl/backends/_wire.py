"""A lean HTTP/1.1 client for a download's GETs: pooled ``http.client`` connections.

Through oss2 and requests one GET costs about 1.3 ms of CPU here (requests'
preparation, hooks and adapters, urllib3's pool and URL parsing, oss2's wrappers),
and that is what a tree of small objects spends its time on: on two cores, a few
thousand GETs a second is the ceiling. A GET sent by ``http.client`` on a kept-alive
connection costs about 0.3 ms. A backend uses this client only where the SDK's
session would have done nothing more (no proxy, no custom adapter, no cookies or
session auth: see each backend), signs each request itself with its SDK's signer,
and translates every failure here into partdl's errors.

Only idempotent requests go through it, so a request that fails on a connection
taken from the pool before any answer arrived (the server had closed it while it
was idle) is sent once more on a new connection, as urllib3 does.
"""

from __future__ import annotations

import http.client
import re
import ssl
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import PartdlError, TransientError
from ._http import body_failure

# Everything a request or a half-read answer can raise that a new connection may fix
# (urllib3's errors cannot occur here: only http.client and the socket are used).
_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
# Errors that show a pooled connection was closed by the server while idle.
_STALE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)
# An error answer's body is read for its code; more than this is not an error document.
_ERROR_BODY_LIMIT = 64 * 1024
_CODE = re.compile(rb"<Code>\s*([^<\s]+)\s*</Code>")


@lru_cache(maxsize=8)
def tls_context(verify: bool | str) -> ssl.SSLContext:
    """A client TLS context: the default one, one trusting a CA bundle (a file or a
    folder), or (``False``) one that checks nothing, as requests' ``verify`` means."""
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
    port: int | None
    connect_timeout: float | None
    read_timeout: float | None
    """How long to wait for an answer's status line and headers."""
    verify: bool | str = True
    """For https: requests' ``verify`` (True, False or a CA bundle's path)."""

    def connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host,
                self.port,
                timeout=self.connect_timeout,
                context=tls_context(self.verify),
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)


class Headers(Mapping[str, str]):
    """An answer's headers, looked up without regard to case (repeats joined by commas)."""

    def __init__(self, message: http.client.HTTPMessage) -> None:
        self._items: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for name, value in message.items():
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


class Pool:
    """Idle kept-alive connections to one origin, at most ``size`` of them kept."""

    def __init__(self, origin: Origin, size: int) -> None:
        self.origin = origin
        self._size = max(size, 1)
        self._idle: deque[http.client.HTTPConnection] = deque()
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        # For another process: the same origin, no connections.
        return (Pool, (self.origin, self._size))

    def _take(self) -> http.client.HTTPConnection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give_back(self, connection: http.client.HTTPConnection) -> None:
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
        while True:
            connection = self._take()
            reused = connection is not None
            if connection is None:
                connection = self.origin.connect()
            try:
                connection.request(method, target, headers=dict(headers))
                # The connection may be new (made with the connect timeout) or have kept
                # the last body's stall timeout: the answer gets the read timeout.
                if connection.sock is not None:
                    connection.sock.settimeout(self.origin.read_timeout)
                answer = connection.getresponse()
            except ssl.SSLCertVerificationError as exc:
                connection.close()
                # No retry fixes a certificate the client does not trust.
                raise PartdlError(
                    f"{what}: the server's TLS certificate was refused: {exc.verify_message}"
                ) from exc
            except _STALE as exc:
                connection.close()
                if reused:
                    continue  # the server closed it while idle: once more, on a new one
                raise TransientError(f"{what}: no answer ({type(exc).__name__})") from exc
            except _ERRORS as exc:
                connection.close()
                raise TransientError(f"{what}: no answer ({type(exc).__name__})") from exc
            return Response(self, connection, answer)


class Response:
    """One answer: its status and headers, and its body read straight into a buffer.

    A body read to its end hands the connection back to the pool; one closed early
    closes the connection, so no connection is reused with half an answer in it.
    """

    def __init__(
        self,
        pool: Pool,
        connection: http.client.HTTPConnection,
        answer: http.client.HTTPResponse,
    ) -> None:
        self._pool = pool
        self._connection: http.client.HTTPConnection | None = connection
        self._answer = answer
        self._stall_timeout: float | None = None
        self.status = answer.status
        self.headers = Headers(answer.msg)

    def stall_after(self, seconds: float | None) -> None:
        """From now on a read may wait at most ``seconds`` for its next byte."""
        self._stall_timeout = seconds
        sock = self._connection.sock if self._connection is not None else None
        if sock is not None and seconds is not None:
            sock.settimeout(seconds)

    def readinto(self, buffer: memoryview, /) -> int:
        try:
            count = self._answer.readinto(buffer)
        except _ERRORS as exc:  # TimeoutError (a stall) is an OSError
            raise body_failure(exc, self._stall_timeout) from exc
        return count

    def read_all(self, limit: int = 64 * 1024 * 1024) -> bytes:
        """The whole of a small body (a listing page, a HEAD's empty one); the
        connection goes back to the pool afterwards."""
        length = self._answer.length
        if length is not None and length > limit:
            self.close()
            raise TransientError(f"an answer of {length} bytes where at most {limit} fit")
        try:
            data = self._answer.read()
        except _ERRORS as exc:
            self.close()
            raise body_failure(exc, self._stall_timeout) from exc
        self.close()
        return data

    def error_code(self) -> str:
        """The store's error code from an error answer's XML body ('' if none); the body
        is consumed and the connection let go."""
        try:
            data = self._answer.read(_ERROR_BODY_LIMIT)
        except _ERRORS:  # TimeoutError is an OSError
            data = b""
        match = _CODE.search(data)
        self.close()
        return match.group(1).decode("ascii", "replace") if match else ""

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        answer = self._answer
        # Reused only when the whole announced body was read: a body cut short (or a
        # chunked one, which these GETs never get) leaves the stream in an unknown place.
        if answer.isclosed() and answer.length == 0 and not answer.will_close:
            self._pool.give_back(connection)
            return
        answer.close()
        connection.close()
