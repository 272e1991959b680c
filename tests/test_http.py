"""The HTTP(S) backend: presigned URLs, servers that ignore ranges or send no ETag.

Presigned URLs come from moto (tests/store.py); the odd servers are tests/servers.py,
both real servers on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

import partdl
from partdl.backends.http import HttpBackend, Redactor, source_of
from partdl.crc import ChecksumAlgorithm, crc64
from partdl.errors import TransientError
from tests.helpers import PART, Interrupt, leftovers, stop_after
from tests.servers import LAST_MODIFIED, ObjectServer, RedirectServer, Request
from tests.store import LocalStore
from tests.targets import FACTORIES, Target, presign

SIGNED = (
    "https://bucket.example.com/a/b.bin?versionId=7&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=0123456789abcdef0123456789abcdef"
)


def _signature(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]


@pytest.fixture
def http_target(store: LocalStore, bucket_name: str) -> Target:
    return FACTORIES["http"](store, bucket_name)


# -- identity and redaction (pure) -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://h.example/a/b", "https://h.example/a/b"),
        ("https://H.Example:8443/a", "https://h.example:8443/a"),
        ("http://user:secret@h.example/", "http://h.example/"),
        ("http://[::1]:8080/x?Signature=abc&Expires=1&OSSAccessKeyId=k", "http://[::1]:8080/x"),
        ("https://h.example", "https://h.example/"),
    ],
)
def test_source_is_the_location_without_credentials(url: str, source: str) -> None:
    assert source_of(url) == source


def test_source_survives_re_signing_but_tells_versions_apart() -> None:
    resigned = SIGNED.replace("0123456789abcdef", "fedcba9876543210").replace("T000000Z", "T1Z")
    other_version = SIGNED.replace("versionId=7", "versionId=8")
    assert source_of(SIGNED) == source_of(resigned)
    assert source_of(SIGNED) != source_of(other_version)
    assert source_of(SIGNED).startswith("https://bucket.example.com/a/b.bin#query-sha256=")
    for secret in ("0123456789abcdef", "AKIDEXAMPLE", "X-Amz", "versionId"):
        assert secret not in source_of(SIGNED)


def test_redactor_removes_queries_and_userinfo_from_text() -> None:
    redactor = Redactor.for_urls([SIGNED, "http://user:pa55word@h.example/p?token=abcdefgh123"])
    text = redactor.text(
        f"failed: {SIGNED} (Caused by ...) and /a/b.bin?X-Amz-Signature=0123456789abcdef "
        "and http://user:pa55word@h.example/p and a bare 0123456789abcdef0123456789abcdef"
    )
    for secret in ("0123456789abcdef", "AKIDEXAMPLE", "pa55word", "abcdefgh123"):
        assert secret not in text
    assert "https://bucket.example.com/a/b.bin?<redacted>" in text


# -- presigned URLs against moto -------------------------------------------------------


def test_signed_query_never_reaches_checkpoint_logs_or_errors(
    http_target: Target, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="partdl")
    data = os.urandom(30 * PART)
    http_target.put(data)
    out = tmp_path / "out"
    url = presign(http_target)
    with pytest.raises(Interrupt):
        partdl.download_url(url, out, part_size=PART, progress_callback=stop_after(0.5))
    checkpoint = (tmp_path / "out.dcp").read_text()
    assert _signature(url) not in checkpoint
    assert "X-Amz-" not in checkpoint
    assert f"{http_target.store.endpoint}/{http_target.bucket}/{http_target.key}" in checkpoint

    # Signed again (another signature), the same download resumes.
    resigned = presign(http_target)
    result = partdl.download_url(resigned, out, part_size=PART)
    assert out.read_bytes() == data
    assert result.parts_reused > 0

    missing = url.replace(http_target.key, "no/such/key")
    with pytest.raises(partdl.NotFoundError) as raised:
        partdl.download_url(missing, tmp_path / "other", part_size=PART)
    shown = "".join(traceback.format_exception(raised.value))
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("partdl"))
    for text in (shown, logged):
        for signature in (_signature(url), _signature(resigned)):
            assert signature not in text
        assert "X-Amz-Credential" not in text


def test_connection_errors_are_transient_and_scrubbed_down_the_chain() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/b/k?X-Amz-Signature=deadbeefdeadbeef&X-Amz-Expires=60"
    with HttpBackend(url) as backend, pytest.raises(TransientError) as raised:
        backend.stat()
    assert isinstance(raised.value.__cause__, requests.ConnectionError)
    shown = "".join(traceback.format_exception(raised.value))
    assert "Connection refused" in shown or "Errno" in shown
    assert "deadbeef" not in shown
    assert "X-Amz-Signature=" not in shown
    # The reason itself, not urllib3's "Max retries exceeded" for a single attempt.
    assert "Max retries" not in str(raised.value)
    assert "Failed to establish a new connection" in str(raised.value)


def test_presigned_head_url_publishing_an_oss_crc_verifies(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    target = FACTORIES["http-head"](store, bucket_name)
    data = os.urandom(7 * PART + 3)
    target.put(data)
    result = target.download(tmp_path / "out", part_size=PART)
    assert result.verified
    assert result.checksum == partdl.Checksum(ChecksumAlgorithm.CRC64XZ, crc64(data))


def test_wrong_crc_behind_a_head_url_is_an_integrity_error(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    target = FACTORIES["http-head"](store, bucket_name)
    out = tmp_path / "out"
    out.write_bytes(b"old content")
    target.put(os.urandom(6 * PART))
    store.wrong_crc.add((bucket_name, target.key))
    with pytest.raises(partdl.IntegrityError):
        target.download(out, part_size=PART, task_num=3)
    assert out.read_bytes() == b"old content"
    assert leftovers(tmp_path, "out") == []


def test_without_a_head_url_nothing_is_claimed_verified(
    http_target: Target, tmp_path: Path
) -> None:
    data = os.urandom(3 * PART)
    http_target.put(data)
    result = http_target.download(tmp_path / "out", part_size=PART)
    assert not result.verified
    assert result.checksum == partdl.Checksum(ChecksumAlgorithm.CRC64XZ, crc64(data))


# -- odd servers -------------------------------------------------------------------------


@pytest.mark.parametrize("head", [False, True], ids=["probe", "head-url"])
def test_server_ignoring_ranges_falls_back_to_one_stream(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, head: bool
) -> None:
    data = os.urandom(20 * PART + 11)
    with ObjectServer(data, ranges=False) as server:
        head_url = server.url() if head else None
        result = partdl.download_url(
            server.url(), tmp_path / "out", part_size=PART, task_num=4, head_url=head_url
        )
        methods = [r.method for r in server.requests]
    assert (tmp_path / "out").read_bytes() == data
    assert result.parts_total == 1
    assert methods == (["HEAD"] if head else []) + ["GET", "GET"]  # probe, then the stream
    assert any("ignores byte ranges" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("content_range", ["bytes */{size}", ""], ids=["with-size", "silent"])
def test_a_416_to_the_probe_of_an_object_that_is_not_empty_reads_it_whole(
    tmp_path: Path, content_range: str
) -> None:
    data = os.urandom(3 * PART + 5)
    out = tmp_path / "out"
    out.write_bytes(b"the previous version")
    with ObjectServer(data, probe_416=content_range.format(size=len(data))) as server:
        result = partdl.download_url(server.url(), out, part_size=PART, task_num=2)
        ranges = [r.headers.get("range") for r in server.requests if r.method == "GET"]
    assert out.read_bytes() == data
    assert (result.size, result.parts_total) == (len(data), 1)
    assert ranges[0] == "bytes=0-0"
    assert len(ranges) == 3  # the refused probe, the whole GET asked for its size, the stream


def test_a_416_to_the_probe_of_an_empty_object_makes_an_empty_file(tmp_path: Path) -> None:
    with ObjectServer(b"") as server:
        result = partdl.download_url(server.url(), tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b""
    assert result.size == 0


def test_a_paused_stream_from_a_server_without_ranges_keeps_nothing(tmp_path: Path) -> None:
    # One part that no later run could resume: no temp file, no checkpoint promising it.
    data = os.urandom(20 * PART + 11)
    control, release = partdl.Control(), threading.Event()

    def pause_once_started(consumed: int, total: int) -> None:
        if consumed > 0:
            control.pause()

    server = ObjectServer(data, ranges=False, hold=(5 * PART, release))
    try:
        with pytest.raises(partdl.DownloadPausedError):
            partdl.download_url(
                server.url(),
                tmp_path / "out",
                chunk_size=16 * 1024,
                control=control,
                progress_callback=pause_once_started,
                stall_timeout=0.5,  # the held stream stops only at its read timeout
            )
    finally:
        release.set()
        server.close()
    assert os.listdir(tmp_path) == []


def test_parts_go_straight_where_the_url_redirected_and_without_its_credentials(
    tmp_path: Path,
) -> None:
    data = os.urandom(6 * PART + 5)
    with ObjectServer(data) as server:
        # "localhost" against the redirect's 127.0.0.1: another origin, as a CDN is.
        redirect = RedirectServer(server.endpoint.replace("127.0.0.1", "localhost"))
        try:
            partdl.download_url(
                redirect.endpoint + "/object.bin",
                tmp_path / "out",
                part_size=PART,
                task_num=2,
                headers={"Authorization": "Bearer for-the-origin-only"},
            )
        finally:
            redirect.close()
        gets = [r for r in server.requests if r.method == "GET"]
    assert (tmp_path / "out").read_bytes() == data
    assert len(redirect.requests) == 1  # the probe; the parts went straight to the target
    assert redirect.requests[0].headers["authorization"] == "Bearer for-the-origin-only"
    assert len(gets) == 1 + 7
    assert all(r.path.endswith("?gen=1") for r in gets)
    assert not any("authorization" in r.headers for r in gets)


def test_a_redirect_target_refused_later_is_followed_again_once(tmp_path: Path) -> None:
    data = os.urandom(8 * PART + 5)
    with ObjectServer(data) as server:
        redirect = RedirectServer(server.endpoint)
        ranged = itertools.count(1)

        def expire(request: Request) -> None:
            if "range" in request.headers and next(ranged) == 5:
                server.refused.add("gen=1")  # this request too: its signature "expired"
                redirect.bump()

        server.before_request = expire
        try:
            partdl.download_url(
                redirect.endpoint + "/object.bin", tmp_path / "out", part_size=PART, task_num=1
            )
        finally:
            redirect.close()
        gets = [r.path for r in server.requests if r.method == "GET"]
    assert (tmp_path / "out").read_bytes() == data
    assert len(redirect.requests) == 2  # the probe, then once after the refusal
    # The probe and parts 0-2, part 3 refused; part 3 again and parts 4-8 on the new target.
    assert [p.rsplit("?", 1)[1] for p in gets] == ["gen=1"] * 5 + ["gen=2"] * 6


def test_a_server_without_ranges_or_length_is_read_as_one_stream(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    out = tmp_path / "out"
    out.write_bytes(b"the previous version")
    seen: list[tuple[int, int]] = []
    with ObjectServer(data, ranges=False, chunked=True) as server:
        result = partdl.download_url(
            server.url(), out, task_num=4, progress_callback=lambda d, t: seen.append((d, t))
        )
        gets = [r for r in server.requests if r.method == "GET"]
    assert out.read_bytes() == data
    assert (result.size, result.crc64, result.verified) == (len(data), crc64(data), False)
    assert len(gets) == 2  # the probe that learned there is no length, then the stream
    assert seen[-1] == (len(data), 0)  # the total is not known
    assert leftovers(tmp_path, "out") == []
    assert any("cannot be resumed" in r.getMessage() for r in caplog.records)


def test_a_stream_without_length_cut_short_keeps_nothing_and_the_old_file(
    tmp_path: Path,
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    out = tmp_path / "out"
    out.write_bytes(b"the previous version")
    with (
        ObjectServer(data, ranges=False, chunked=True, cut=(2, 1024 * 1024)) as server,
        pytest.raises(partdl.TransferError, match="cannot resume"),
    ):
        partdl.download_url(server.url(), out)
    assert out.read_bytes() == b"the previous version"
    assert leftovers(tmp_path, "out") == []


@pytest.mark.parametrize(
    ("action", "error"),
    [("pause", partdl.DownloadPausedError), ("cancel", partdl.DownloadCancelledError)],
)
def test_a_stream_without_length_paused_or_cancelled_keeps_nothing(
    tmp_path: Path, action: str, error: type[Exception]
) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"the previous version")
    control = partdl.Control()
    with (
        ObjectServer(os.urandom(3 * 1024 * 1024), ranges=False, chunked=True) as server,
        pytest.raises(error),
    ):
        partdl.download_url(
            server.url(),
            out,
            control=control,
            progress_callback=lambda done, total: getattr(control, action)(),
        )
    assert out.read_bytes() == b"the previous version"
    assert leftovers(tmp_path, "out") == []


def test_one_stream_is_never_split_nor_taken_over(tmp_path: Path) -> None:
    # Room for many splits, and idle workers from the start: each taking over a back
    # half would read the whole object up to it again.
    data = os.urandom(8 * 1024 * 1024 + 3)
    with ObjectServer(data, ranges=False) as server:
        result = partdl.download_url(server.url(), tmp_path / "out", task_num=8)
        gets = [r for r in server.requests if r.method == "GET"]
    assert (tmp_path / "out").read_bytes() == data
    assert (result.parts_total, result.parts_fetched) == (1, 1)
    assert len(gets) == 2  # the bytes=0-0 probe, then the one stream


def test_one_stream_cut_short_is_resumed_by_reading_past_what_is_on_disk(tmp_path: Path) -> None:
    data = os.urandom(10 * PART)
    # GET 1 is the bytes=0-0 probe (answered with the whole body); GET 2 the stream.
    with ObjectServer(data, ranges=False, cut=(2, 3 * PART + 17)) as server:
        result = partdl.download_url(server.url(), tmp_path / "out", part_size=PART)
        gets = [r for r in server.requests if r.method == "GET"]
    assert (tmp_path / "out").read_bytes() == data
    assert result.parts_total == 1
    assert len(gets) == 3  # probe, the cut stream, the retry that skips what is on disk


@pytest.mark.parametrize("etag", [None, 'W/"weak"'], ids=["no-etag", "weak-etag"])
def test_without_a_strong_etag_parts_are_pinned_by_last_modified(
    tmp_path: Path, etag: str | None
) -> None:
    data = os.urandom(8 * PART)
    with ObjectServer(data, etag=etag) as server:
        partdl.download_url(server.url(), tmp_path / "out", part_size=PART)
        parts = [r for r in server.requests if r.method == "GET"][1:]
    assert (tmp_path / "out").read_bytes() == data
    assert len(parts) == 8
    for request in parts:
        assert request.headers["if-unmodified-since"] == LAST_MODIFIED
        assert "if-match" not in request.headers


def test_change_without_etag_is_caught_by_last_modified(tmp_path: Path) -> None:
    old, new = os.urandom(12 * PART), os.urandom(12 * PART)  # same size: only the date tells
    with ObjectServer(old, etag=None) as server:
        gets: list[str] = []

        def change_on_fourth_get(request: object) -> None:
            gets.append("x")
            if len(gets) == 4:
                server.replace(new, None, "Thu, 22 Oct 2015 07:28:00 GMT")

        server.before_request = change_on_fourth_get
        result = partdl.download_url(server.url(), tmp_path / "out", part_size=PART, task_num=2)
    assert (tmp_path / "out").read_bytes() == new
    assert result.restarts == 1


def test_without_any_validator_a_size_change_is_still_caught(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = os.urandom(12 * PART), os.urandom(11 * PART)
    with ObjectServer(old, etag=None, last_modified=None) as server:
        gets: list[str] = []

        def shrink_on_fourth_get(request: object) -> None:
            gets.append("x")
            if len(gets) == 4:
                server.replace(new, None, None)

        server.before_request = shrink_on_fourth_get
        result = partdl.download_url(server.url(), tmp_path / "out", part_size=PART, task_num=2)
    assert (tmp_path / "out").read_bytes() == new
    assert result.restarts == 1
    assert any("neither ETag nor Last-Modified" in r.getMessage() for r in caplog.records)


def test_a_server_ignoring_if_match_is_caught_by_the_etag_it_returns(tmp_path: Path) -> None:
    old, new = os.urandom(12 * PART), os.urandom(12 * PART)
    with ObjectServer(old, conditional=False) as server:
        gets: list[str] = []

        def change(request: object) -> None:
            gets.append("x")
            if len(gets) == 4:
                server.replace(new, '"v2"', LAST_MODIFIED)

        server.before_request = change
        result = partdl.download_url(server.url(), tmp_path / "out", part_size=PART, task_num=2)
    assert (tmp_path / "out").read_bytes() == new
    assert result.restarts == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (403, partdl.AccessDeniedError),
        (401, partdl.AccessDeniedError),
        (404, partdl.NotFoundError),
        (410, partdl.NotFoundError),
        (503, TransientError),
        (429, TransientError),
        (400, partdl.PartdlError),
    ],
)
@pytest.mark.parametrize("head", [False, True], ids=["probe", "head-url"])
def test_error_statuses_map_to_typed_errors(
    status: int, error: type[partdl.PartdlError], head: bool
) -> None:
    with ObjectServer(error=(status, b"<Error/>")) as server:
        url = server.url() + "?X-Amz-Signature=feedfacefeedface"
        backend = HttpBackend(url, head_url=url if head else None)
        with backend, pytest.raises(error) as raised:
            backend.stat()
    assert type(raised.value) is error
    assert f"HTTP {status}" in str(raised.value)
    assert "feedface" not in "".join(traceback.format_exception(raised.value))


def test_a_url_that_keeps_failing_is_named_by_the_request_that_failed(tmp_path: Path) -> None:
    # Without a HEAD URL the object is pinned by a ranged GET: no message may say HEAD.
    retry = partdl.RetryPolicy(attempts=2, backoff=0.0, backoff_max=0.0)
    with ObjectServer(error=(503, b"")) as server, pytest.raises(partdl.TransferError) as raised:
        partdl.download_url(server.url(), tmp_path / "out", part_size=PART, retry=retry)
    message = str(raised.value)
    assert message.startswith(f"looking up {server.url()} gave up after 2 failed attempts")
    assert f"GET {server.url()} bytes 0-0" in message
    assert "HEAD" not in message
    assert {r.method for r in server.requests} == {"GET"}


def test_forbidden_download_leaves_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"precious")
    with ObjectServer(error=(403, b"")) as server, pytest.raises(partdl.AccessDeniedError):
        partdl.download_url(server.url(), out, part_size=PART)
    assert out.read_bytes() == b"precious"
    assert leftovers(tmp_path, "out") == []


def test_pool_holds_task_num_connections(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = os.urandom(64 * PART)
    # Part GETs are answered 16 at a time, so 16 connections are open at once.
    wave = threading.Barrier(16, timeout=10)
    with ObjectServer(data) as server:

        def in_waves(request: Request) -> None:
            if "if-match" in request.headers:
                wave.wait()

        server.before_request = in_waves
        partdl.download_url(server.url(), tmp_path / "out", part_size=PART, task_num=16)
        connections = server.connections
    assert (tmp_path / "out").read_bytes() == data
    assert connections == 16
    # A pool smaller than the task count (requests' default is 10) cannot take all
    # of them back: urllib3 closes the rest and says so.
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://h.example/x"}, "http:// or https://"),
        ({"url": "https:///nohost?X-Amz-Signature=s3cr3t"}, "http:// or https://"),
        ({"url": "http://h.example:notaport/x"}, "not a valid URL"),
        ({"url": "http://h.example/x", "head_url": "file:///etc/passwd"}, "head_url"),
        ({"url": "http://h.example/x", "headers": {"range": "bytes=0-1"}}, "range"),
        ({"url": "http://h.example/x", "headers": {"If-Match": '"x"'}}, "If-Match"),
        ({"url": "http://h.example/x", "task_num": 0}, "task_num"),
    ],
)
def test_bad_arguments_raise_before_any_request(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    url = kwargs.pop("url")
    with pytest.raises(partdl.InvalidArgumentError, match=message) as raised:
        partdl.download_url(url, tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert "s3cr3t" not in str(raised.value)
    assert os.listdir(tmp_path) == []


def test_import_partdl_loads_no_sdk_and_no_requests() -> None:
    code = (
        "import sys, partdl\n"
        "assert partdl.download_url.__module__ == 'partdl.api'\n"
        "print(sorted(m for m in ('requests', 'boto3', 'oss2', 'alibabacloud_oss_v2')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_backend_imports_the_engine_or_the_entry_points() -> None:
    import ast

    import partdl.backends

    folder = Path(partdl.backends.__file__).parent
    for source in folder.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[-1] not in ("engine", "api", "execute", "batch"), (
                    f"{source.name} imports {node.module}"
                )
