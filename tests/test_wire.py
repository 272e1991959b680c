"""partdl's own HTTP client (partdl/backends/_wire.py) and when the OSS backend uses it.

The client is exercised against real servers on loopback: a small HTTP/1.1 server
that can drop kept-alive connections while idle, the same over TLS (a CA made by
trustme), and the local object store through oss2 buckets configured both ways.
"""

from __future__ import annotations

import http.server
import io
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oss2
import pytest
import requests
import requests.adapters
import trustme

import partdl
from partdl.backends._wire import Origin, Pool, ProtocolError, _read_head
from partdl.backends.oss import OssBackend
from partdl.errors import InvalidArgumentError, PartdlError, TransientError
from tests.store import LocalStore

BODY = os.urandom(200_000)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.accepts.append(self.headers.get_all("Accept") or [])
        data = BODY
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        # Closing without saying so is what a server does to a connection it let idle.
        self.close_connection = self.server.drop_after_each

    def log_message(self, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, drop_after_each: bool, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.accepts: list[list[str]] = []
        self.drop_after_each = drop_after_each
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[_Server] = []

    def start(*, drop_after_each: bool = False, tls: ssl.SSLContext | None = None) -> _Server:
        server = _Server(drop_after_each=drop_after_each, tls=tls)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _get_all(pool: Pool, *, stop_after: int | None = None) -> bytes:
    response = pool.send("GET", "/b/k", {}, "GET test")
    buffer = memoryview(bytearray(64 * 1024))
    received = bytearray()
    try:
        while stop_after is None or len(received) < stop_after:
            count = response.readinto(buffer)
            if count == 0:
                break
            received += buffer[:count]
    finally:
        response.close()
    return bytes(received)


def _pool(port: int, scheme: str = "http", verify: bool | str = True) -> Pool:
    return Pool(Origin(scheme, "127.0.0.1", port, 5.0, 5.0, verify), 2)


def test_a_connection_read_to_its_end_is_kept_and_reused(serve: Any) -> None:
    server = serve()
    pool = _pool(server.port)

    assert [_get_all(pool) for _ in range(3)] == [BODY] * 3
    assert server.connections == 1
    pool.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error(
    serve: Any,
) -> None:
    server = serve(drop_after_each=True)
    pool = _pool(server.port)

    assert [_get_all(pool) for _ in range(3)] == [BODY] * 3
    assert server.connections == 3


def test_a_body_closed_early_takes_its_connection_with_it(serve: Any) -> None:
    server = serve()
    pool = _pool(server.port)

    assert len(_get_all(pool, stop_after=1)) < len(BODY)
    assert _get_all(pool) == BODY  # not the rest of the first answer
    assert server.connections == 2


def test_a_refused_connection_is_transient(serve: Any) -> None:
    server = serve()
    port = server.port
    server.shutdown()
    server.server_close()

    with pytest.raises(TransientError, match="no answer"):
        _get_all(_pool(port))


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (socket.EAI_NONAME, InvalidArgumentError),  # no such name: a mistyped endpoint
        (socket.EAI_AGAIN, TransientError),  # the resolver did not answer: try again
    ],
)
def test_a_host_that_does_not_resolve_is_named_and_not_retried(
    monkeypatch: pytest.MonkeyPatch, code: int, error: type[Exception]
) -> None:
    # The resolver's answer, whatever this machine's DNS can reach.
    def resolve(*args: Any, **kwargs: Any) -> socket.socket:
        raise socket.gaierror(code, "the resolver's message")

    monkeypatch.setattr(socket, "create_connection", resolve)
    pool = Pool(Origin("http", "no-such-host.invalid", 80, 5.0, 5.0, True), 2)

    with pytest.raises(error) as raised:
        _get_all(pool)
    if error is InvalidArgumentError:
        assert "the host 'no-such-host.invalid' is not known" in str(raised.value)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _tls(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_https_to_a_server_the_bundle_trusts(
    serve: Any, authority: trustme.CA, tmp_path: Path
) -> None:
    server = serve(tls=_tls(authority))
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))

    assert _get_all(_pool(server.port, "https", str(bundle))) == BODY
    assert _get_all(_pool(server.port, "https", False)) == BODY


def test_an_untrusted_certificate_is_a_clear_error_and_not_retried(
    serve: Any, authority: trustme.CA
) -> None:
    server = serve(tls=_tls(authority))

    with pytest.raises(PartdlError, match="TLS certificate was refused") as caught:
        _get_all(_pool(server.port, "https", True))
    assert not isinstance(caught.value, TransientError)


# -- when the OSS backend sends through it -------------------------------------------------


def _bucket(endpoint: str, name: str = "bucket", **options: Any) -> Any:
    auth = oss2.ProviderAuthV4(oss2.credentials.StaticCredentialsProvider("test", "test"))
    return oss2.Bucket(auth, endpoint, name, region="cn-hangzhou", **options)


class _CountingAdapter(requests.adapters.HTTPAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent += 1
        return super().send(*args, **kwargs)


def _with_session_proxy() -> Any:
    bucket = _bucket("http://127.0.0.1:9")
    bucket.session.session.proxies = {"http": "http://127.0.0.1:3128"}
    return bucket


def _with_session_auth() -> Any:
    bucket = _bucket("http://127.0.0.1:9")
    bucket.session.session.auth = ("user", "password")
    return bucket


def _with_retrying_adapter() -> Any:
    adapter = requests.adapters.HTTPAdapter(max_retries=3)
    return _bucket("http://127.0.0.1:9", session=oss2.Session(adapter=adapter))


@pytest.mark.parametrize(
    ("make", "own_client"),
    [
        (lambda: _bucket("http://127.0.0.1:9"), True),
        (lambda: _bucket("https://oss-cn-hangzhou.aliyuncs.com"), True),
        (lambda: _bucket("http://127.0.0.1:9", proxies={"http": "http://127.0.0.1:3128"}), False),
        (_with_session_proxy, False),
        (_with_session_auth, False),
        (_with_retrying_adapter, False),
        (
            lambda: _bucket("http://127.0.0.1:9", session=oss2.Session(adapter=_CountingAdapter())),
            False,
        ),
    ],
    ids=[
        "stock",
        "stock-https",
        "bucket-proxies",
        "session-proxies",
        "session-auth",
        "adapter-retries",
        "custom-adapter",
    ],
)
def test_the_oss_backend_sends_itself_only_where_the_session_would_add_nothing(
    make: Any, own_client: bool
) -> None:
    backend = OssBackend(make(), "k", pool_size=4)

    assert (backend._wire is not None) is own_client


def test_a_proxy_from_the_environment_keeps_the_requests_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    assert OssBackend(_bucket("http://example.com"), "k")._wire is None


def test_a_bucket_with_a_custom_adapter_downloads_through_it(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * 256 * 1024 + 7)
    store.put(bucket_name, "k", data)
    adapter = _CountingAdapter()
    bucket = _bucket(store.endpoint, bucket_name, session=oss2.Session(adapter=adapter))

    result = partdl.download_file(bucket, "k", tmp_path / "k", part_size=256 * 1024, task_num=2)

    assert (tmp_path / "k").read_bytes() == data
    assert result.verified
    assert adapter.sent == 1 + 4  # the HEAD and one GET per part, all through the adapter


def test_the_own_client_signs_requests_the_store_accepts(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(600_000)
    store.put(bucket_name, "dir/a b+c.bin", data)
    bucket = _bucket(store.endpoint, bucket_name)

    result = partdl.download_file(
        bucket, "dir/a b+c.bin", tmp_path / "out", part_size=256 * 1024, task_num=2
    )

    assert (tmp_path / "out").read_bytes() == data
    assert result.verified
    gets = [seen for seen in store.requests(bucket_name, "GET") if seen.range]
    assert len(gets) == 3


def test_a_header_given_in_another_case_replaces_the_sessions_own(serve: Any) -> None:
    server = serve()
    bucket = _bucket(f"http://127.0.0.1:{server.port}")
    backend = OssBackend(bucket, "k", headers={"accept": "x/y"}, pool_size=2)
    assert backend._wire is not None

    stat, body = backend.read_whole(None)
    body.close()

    assert stat.size == len(BODY)
    assert server.accepts == [["x/y"]]  # not requests' "*/*" beside it


# -- framing: answers as other servers and proxies send them --------------------------------


class _RawServer:
    """Answers each request on a connection with the next canned bytes, as they are."""

    def __init__(self, answers: list[bytes], *, close_after: bool = False) -> None:
        import socket

        self._answers = list(answers)
        self._close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self._answers:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with sock:
                reader = sock.makefile("rb")
                while self._answers:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = reader.readline()
                        if not line:
                            break
                        head += line
                    if not head:
                        break
                    self.requests.append(head)
                    sock.sendall(self._answers.pop(0))
                    if self._close_after:
                        break

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def raw() -> Iterator[Any]:
    servers: list[_RawServer] = []

    def start(answers: list[bytes], **options: Any) -> _RawServer:
        server = _RawServer(answers, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_a_chunked_body_is_decoded_and_its_connection_reused(raw: Any) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    server = raw([chunked, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    pool = _pool(server.port)
    assert _get_all(pool) == b"hello, world"
    assert _get_all(pool) == b"ok"
    assert server.connections == 1


def test_a_body_without_a_length_ends_with_the_connection_which_is_not_reused(raw: Any) -> None:
    server = raw([b"HTTP/1.1 200 OK\r\n\r\nuntil the close"], close_after=True)
    pool = _pool(server.port)
    assert _get_all(pool) == b"until the close"
    assert pool.take_idle() is None


def test_interim_answers_are_skipped_and_folded_headers_joined(raw: Any) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 206 Partial Content\r\nX-Long: one\r\n two\r\nContent-Length: 3\r\n"
        b"x-dup: a\r\nX-Dup: b\r\n\r\nabc"
    )
    pool = _pool(raw([answer]).port)
    response = pool.send("GET", "/k", {}, "GET test")
    assert response.status == 206
    assert response.headers["x-long"] == "one two"
    assert response.headers["X-DUP"] == "a, b"
    assert response.read_all() == b"abc"


def test_an_http_1_0_answer_closes_its_connection_unless_kept_alive(raw: Any) -> None:
    pool = _pool(raw([b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"]).port)
    assert _get_all(pool) == b"x"
    assert pool.take_idle() is None
    kept = raw([b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\ny"])
    pool = _pool(kept.port)
    assert _get_all(pool) == b"y"
    assert pool.take_idle() is not None


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_an_answer_that_is_not_http_is_a_transient_protocol_error(raw: Any, answer: bytes) -> None:
    pool = _pool(raw([answer], close_after=True).port)
    with pytest.raises(TransientError):
        _get_all(pool)


def test_a_body_cut_short_is_a_transient_error(raw: Any) -> None:
    pool = _pool(raw([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], close_after=True).port)
    with pytest.raises(TransientError, match="mid-body"):
        _get_all(pool)


class _Pieces(io.RawIOBase):
    """A stream that hands out its bytes in the given pieces, one per read, as a socket
    does when an answer arrives in several segments."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = list(pieces)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pieces:
            return 0
        piece = self._pieces.pop(0)
        buffer[: len(piece)] = piece
        return len(piece)


_HEAD = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b'HTTP/1.1 206 Partial Content\r\nETag: "e"\r\nX-Long: one\r\n two\r\n'
    b"Content-Length: 3\r\n\r\nabc"
)


@pytest.mark.parametrize(
    "pieces",
    [
        [_HEAD],  # all buffered: read in one go
        *([_HEAD[:cut], _HEAD[cut:]] for cut in (5, 27, 40, 60, 75, len(_HEAD) - 4)),
        [bytes([byte]) for byte in _HEAD],  # a byte at a time
        [_HEAD.replace(b"\r\n", b"\n")],  # bare LF line ends, as some servers send
        [_HEAD[:60].replace(b"\r\n", b"\n") + _HEAD[60:]],  # mixed
    ],
)
def test_a_head_parses_the_same_however_it_arrives(pieces: list[bytes]) -> None:
    reader: Any = io.BufferedReader(_Pieces(pieces))  # a socket's reader, as _wire reads it
    version, status, headers = _read_head(reader)
    assert (version, status) == (b"HTTP/1.1", 206)
    assert headers["etag"] == '"e"'
    assert (headers["x-long"], headers["content-length"]) == ("one two", "3")
    assert reader.read() == b"abc"  # the body starts right after the blank line


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(101)) + b"\r\n",
        b"HTTP/1.1 200 OK\r\n : v\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\n\r\n",
    ],
)
def test_a_malformed_head_is_refused_buffered_or_not(head: bytes) -> None:
    for pieces in ([head], [bytes([byte]) for byte in head]):
        reader: Any = io.BufferedReader(_Pieces(pieces))
        with pytest.raises(ProtocolError):
            _read_head(reader)


@pytest.mark.parametrize(
    ("scheme", "host", "port", "header"),
    [
        ("http", "127.0.0.1", 9000, "127.0.0.1:9000"),
        ("http", "example.com", 80, "example.com"),
        ("https", "example.com", 443, "example.com"),
        ("https", "example.com", None, "example.com"),
        ("http", "::1", 9000, "[::1]:9000"),
        ("https", "::1", None, "[::1]"),
    ],
)
def test_the_host_header_brackets_an_ipv6_address_and_drops_a_default_port(
    scheme: str, host: str, port: int | None, header: str
) -> None:
    assert Origin(scheme, host, port, 5.0, 5.0).host_header == header


def test_a_request_is_one_well_formed_message(raw: Any) -> None:
    server = raw([b"HTTP/1.1 204 No Content\r\n\r\n"])
    pool = Pool(Origin("http", "127.0.0.1", server.port, 5.0, 5.0), 1)
    pool.send("HEAD", "/b/k%20x?versionId=1", {"X-A": "1"}, "HEAD test").read_all()
    lines = server.requests[0].decode().split("\r\n")
    assert lines[0] == "HEAD /b/k%20x?versionId=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in lines
    assert "Accept-Encoding: identity" in lines
    assert "X-A: 1" in lines


@pytest.mark.parametrize(
    ("headers", "target"),
    [({"X-A": "1\r\nX-Injected: 1"}, "/k"), ({"X-A\r\n": "1"}, "/k"), ({}, "/k x")],
)
def test_a_header_or_target_with_line_breaks_is_refused_before_sending(
    raw: Any, headers: dict[str, str], target: str
) -> None:
    server = raw([b"HTTP/1.1 204 No Content\r\n\r\n"])
    with pytest.raises(PartdlError, match="refusing"):
        _pool(server.port).send("GET", target, headers, "GET test")
    assert server.requests == []
