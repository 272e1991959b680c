"""A tiny HTTP server on 127.0.0.1 for what moto cannot show.

It serves one in-memory object and can ignore ranges, omit the ETag, send a weak
one, ignore preconditions, answer every request with a fixed error, or cut one
GET's body short. Preconditions (If-Match, If-Unmodified-Since) are otherwise
honoured as RFC 9110 says, and every request is recorded, so tests can check what
partdl sent.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    client_port: int


@dataclasses.dataclass
class Version:
    data: bytes
    etag: str | None
    last_modified: str | None


class _Serving:
    """A server on 127.0.0.1 running on its own thread until :meth:`close`."""

    def _serve(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        # A short poll keeps shutdown() quick: it waits for the loop's next wakeup.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class ObjectServer(_Serving):
    """One object at ``url``; the path is ignored, the query string too."""

    def __init__(
        self,
        data: bytes = b"",
        *,
        etag: str | None = '"v1"',
        last_modified: str | None = LAST_MODIFIED,
        ranges: bool = True,
        conditional: bool = True,
        error: tuple[int, bytes] | None = None,
        cut: tuple[int, int] | None = None,
        probe_416: str | None = None,
        hold: tuple[int, threading.Event] | None = None,
        chunked: bool = False,
    ) -> None:
        """``cut=(n, count)``: the n-th GET (from 1) stops after ``count`` body bytes.

        ``probe_416``: ``Range: bytes=0-0`` is answered 416 with this ``Content-Range``
        (none when empty), as some servers do whatever the object.
        ``hold=(count, event)``: every body stops after ``count`` bytes until ``event`` is set.
        ``chunked``: bodies go in chunks of 64 KiB with no Content-Length, as generated
        content does.
        """
        self.ranges = ranges
        self.probe_416 = probe_416
        self.hold = hold
        self.chunked = chunked
        self.refused: set[str] = set()  # a path holding one of these is answered 403
        self.conditional = conditional
        self.error = error
        self.before_request: Callable[[Request], None] | None = None
        self._lock = threading.Lock()
        self._version = Version(data, etag, last_modified)
        self._cut = cut
        self._gets = 0
        self._connections = 0
        self._requests: list[Request] = []
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._serve(server)

    def url(self, path: str = "/bucket/object.bin") -> str:
        return self.endpoint + path

    def __enter__(self) -> ObjectServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def replace(self, data: bytes, etag: str | None, last_modified: str | None) -> None:
        with self._lock:
            self._version = Version(data, etag, last_modified)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (loopback reuses client ports: count here)."""
        with self._lock:
            return self._connections

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    # -- called by the handler ---------------------------------------------------------

    def _record(self, request: Request) -> tuple[Version, int | None]:
        """The version to serve, and where to cut this request's body, if anywhere."""
        with self._lock:
            self._requests.append(request)
            self._gets += request.method == "GET"
            cut = self._cut[1] if self._cut and self._cut[0] == self._gets else None
        if self.before_request is not None:
            self.before_request(request)
        with self._lock:
            return self._version, cut


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ObjectServer


def _precondition_fails(headers: dict[str, str], version: Version) -> bool:
    if_match = headers.get("if-match")
    if if_match is not None:
        strong = version.etag is not None and not version.etag.startswith("W/")
        return not (strong and if_match == version.etag)
    since = headers.get("if-unmodified-since")
    if since is not None and version.last_modified is not None:
        return parsedate_to_datetime(version.last_modified) > parsedate_to_datetime(since)
    return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._connected()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test output is no place for an access log

    def do_HEAD(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        owner = self.server.owner
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Request(self.command, self.path, headers, self.client_address[1])
        version, cut = owner._record(request)
        if owner.error is not None:
            self._send(owner.error[0], {"Content-Type": "application/xml"}, owner.error[1])
            return
        if owner.conditional and _precondition_fails(headers, version):
            self._send(412, {}, b"")
            return
        if any(token in self.path for token in owner.refused):
            self._send(403, {}, b"expired")
            return
        if owner.probe_416 is not None and headers.get("range") == "bytes=0-0":
            self._send(416, {"Content-Range": owner.probe_416} if owner.probe_416 else {}, b"")
            return
        data, status, extra = version.data, 200, {}
        match = _RANGE.fullmatch(headers.get("range", ""))
        if match and owner.ranges:
            start, last = int(match.group(1)), int(match.group(2))
            if start >= len(data):
                self._send(416, {"Content-Range": f"bytes */{len(data)}"}, b"")
                return
            end = min(last + 1, len(data))
            status, extra = 206, {"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"}
            data = data[start:end]
        if owner.ranges:
            extra["Accept-Ranges"] = "bytes"
        if version.etag is not None:
            extra["ETag"] = version.etag
        if version.last_modified is not None:
            extra["Last-Modified"] = version.last_modified
        self._send(status, extra, data, cut)

    def _send(
        self, status: int, headers: dict[str, str], body: bytes, cut: int | None = None
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.server.owner.chunked and status == 200:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send_chunked(body, cut)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        hold = self.server.owner.hold
        try:
            if hold is not None and len(body) > hold[0]:
                self.wfile.write(body[: hold[0]])
                self.wfile.flush()
                hold[1].wait(60)
                body = body[hold[0] :]
                cut = None if cut is None else max(cut - hold[0], 0)
            self.wfile.write(body if cut is None else body[:cut])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading: that is its right
            return
        if cut is not None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_chunked(self, body: bytes, cut: int | None) -> None:
        if self.command == "HEAD":
            return
        try:
            for start in range(0, len(body) if cut is None else cut, 64 * 1024):
                piece = body[start : min(start + 64 * 1024, len(body) if cut is None else cut)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if cut is None:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if cut is not None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


class RedirectServer(_Serving):
    """Answers every request with a 302 to ``target`` + the path + ``?gen=N``.

    :meth:`bump` moves to the next generation, as a fresh presigned redirect would.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.generation = 1
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                with owner._lock:
                    owner.requests.append(
                        Request("GET", self.path, headers, self.client_address[1])
                    )
                    location = f"{owner.target}{self.path.split('?')[0]}?gen={owner.generation}"
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._serve(server)

    def bump(self) -> None:
        with self._lock:
            self.generation += 1
