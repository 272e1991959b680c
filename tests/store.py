"""A real S3-compatible server on loopback for the tests: moto, lightly wrapped.

moto speaks S3; the wrapper adds what OSS sends and moto does not
(``x-oss-hash-crc64ecma``, computed from the stored bytes, or a wrong value on
demand), records every request so tests can count ranged GETs, and can run a
hook before a chosen request (to overwrite the object mid-download, say). Every
byte still travels over a real socket through moto's real S3 implementation.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote

import boto3
import botocore.config
import fastcrc
import oss2
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import s3_backends
from werkzeug.serving import make_server

from tests.helpers import OSS_REGION, oss_bucket

logging.getLogger("werkzeug").setLevel(logging.ERROR)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclasses.dataclass(frozen=True)
class Seen:
    method: str
    bucket: str
    key: str
    range: str | None
    headers: dict[str, str]
    v1_query: bool = False  # a V1 presigned URL (``OSSAccessKeyId=`` in the query)


# What moto reads to route a request to its S3 backend.
_S3_SCOPE = "AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/s3/aws4_request, Signature=0"
# How OSS Authorization headers begin: V1 (``OSS <id>:<signature>``) and V4.
OSS_V1 = "OSS "
OSS_V4 = "OSS4-HMAC-SHA256 "
# What OSS answers a V1-signed request from an account or bucket that needs V4.
_V1_REFUSED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>V1 signature is not allowed; sign requests with V4.</Message></Error>"
)


def _as_s3(environ: dict[str, Any]) -> dict[str, Any]:
    """An OSS request (V1 or V4 signed), made recognisable to moto as S3.

    moto takes the service from the Authorization header's SigV4 credential scope,
    read as ``<...>/<date>/<region>/<service>/<...>``. An OSS V1 header is
    ``OSS <id>:<base64 signature>``, and a signature with exactly four '/' in it (about
    one request in 1,400) parses as a scope naming a service that does not exist, so
    moto answered 500 and the test saw a retry it did not cause. A V4 header's scope
    names the service ``oss``, which moto does not know either. moto checks no
    signatures, so the OSS one is replaced by an S3 scope.
    """
    if not environ.get("HTTP_AUTHORIZATION", "").startswith((OSS_V1, OSS_V4)):
        return environ
    return {**environ, "HTTP_AUTHORIZATION": _S3_SCOPE}


def signed_v1(seen: Seen) -> bool:
    """Whether a request carried an OSS V1 signature, in its header or its query string."""
    return seen.headers.get("authorization", "").startswith(OSS_V1) or seen.v1_query


def _without_empty_token(environ: dict[str, Any]) -> dict[str, Any]:
    """oss2's first ListObjectsV2 page sends ``continuation-token=`` (empty), which OSS
    reads as no token and moto refuses (400): the empty parameter is dropped."""
    query = environ.get("QUERY_STRING", "")
    if "continuation-token=" not in query:
        return environ
    kept = [p for p in query.split("&") if p != "continuation-token="]
    return {**environ, "QUERY_STRING": "&".join(kept)}


_S3_XMLNS = b' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def _is_oss_listing(environ: dict[str, Any], key: str) -> bool:
    return (
        environ["REQUEST_METHOD"] == "GET"
        and not key
        and environ.get("HTTP_AUTHORIZATION", "").startswith((OSS_V1, OSS_V4))
    )


def _oss_listing(
    app: WsgiApp, environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """A bucket listing as OSS sends it: moto's XML without the S3 namespace, which
    oss2's parser (``root.find('IsTruncated')``) does not expect, and with the
    ``<Type>`` (Normal, Multipart, Appendable) OSS gives every object."""
    answer: list[Any] = []

    def capture(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        answer[:] = [status, headers]
        return lambda data: None

    body = b"".join(app(environ, capture)).replace(_S3_XMLNS, b"", 1)
    body = body.replace(b"<Contents>", b"<Contents><Type>Normal</Type>")
    status, headers = answer
    headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _corrupt_checksum(header: tuple[str, str]) -> tuple[str, str]:
    """An ``x-amz-checksum-<algorithm>`` header with one bit of its value flipped."""
    name, value = header
    if not name.lower().startswith("x-amz-checksum-") or name.lower() in (
        "x-amz-checksum-type",
        "x-amz-checksum-algorithm",
    ):
        return header
    encoded, dash, parts = value.partition("-")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    return name, base64.b64encode(bytes(raw)).decode() + dash + parts


# What every test's boto3 client or resource is built with; moto checks no signature.
S3_OPTIONS: dict[str, str] = {
    "region_name": "us-east-1",
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
}


def s3_client(endpoint: str, **config: Any) -> Any:
    """A boto3 S3 client for ``endpoint``; ``config`` goes to ``botocore.config.Config``."""
    return boto3.client(
        "s3", endpoint_url=endpoint, config=botocore.config.Config(**config), **S3_OPTIONS
    )


def oss_v2_client(endpoint: str, **config: Any) -> Any:
    """An OSS SDK V2 client for ``endpoint``; ``config`` goes to its ``Config``."""
    import alibabacloud_oss_v2 as oss_v2

    settings: dict[str, Any] = {
        "region": OSS_REGION,
        "endpoint": endpoint,
        "credentials_provider": oss_v2.credentials.StaticCredentialsProvider("test", "test"),
        "use_path_style": True,
    }
    return oss_v2.Client(oss_v2.config.Config(**{**settings, **config}))


class LocalStore:
    """moto on ``127.0.0.1:<free port>`` in a background thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self.wrong_crc: set[tuple[str, str]] = set()
        self.omit_crc: set[tuple[str, str]] = set()
        # Objects whose S3 x-amz-checksum-* values are served with one bit flipped.
        self.wrong_checksum: set[tuple[str, str]] = set()
        # Buckets that refuse V1-signed requests with 403, as OSS does today.
        self.v4_only: set[str] = set()
        self.before_request: Callable[[Seen], None] | None = None
        # GETs of objects in flight per bucket, and the most seen at once.
        self._in_flight: dict[str, int] = {}
        self._peak_in_flight: dict[str, int] = {}
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            "127.0.0.1", 0, self._wrap(app), threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self.s3 = s3_client(self.endpoint)
        self._s3_plain = s3_client(self.endpoint, request_checksum_calculation="when_required")

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join()

    # -- buckets and objects ---------------------------------------------------------

    def new_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:16]}"
        self.s3.create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes, *, checksum: bool = True) -> str:
        """Store an object; ``checksum=False`` stores it with no whole-object checksum.

        Without one, neither the S3 checksum fields (boto3 sends a CRC32 by default)
        nor the OSS ``x-oss-hash-crc64ecma`` header is served for it, as with objects
        from older S3-compatible stores and gateways: nothing catches a mixed file at
        the end, so the per-answer checks alone must prevent it.
        """
        if checksum:
            self.omit_crc.discard((bucket, key))
            client = self.s3
        else:
            self.omit_crc.add((bucket, key))
            client = self._s3_plain
        return str(client.put_object(Bucket=bucket, Key=key, Body=data)["ETag"])

    def put_empty(self, bucket: str, keys: Iterable[str]) -> None:
        """Store empty objects straight in moto's backend: a listing of many keys
        without a request (and its checksums) per key."""
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key in keys:
            backend.put_object(bucket, key, b"")

    def oss_bucket(self, name: str) -> oss2.Bucket:
        return oss_bucket(self.endpoint, name)

    # -- what the server saw ---------------------------------------------------------

    def requests(self, bucket: str, method: str | None = None) -> list[Seen]:
        with self._lock:
            return [
                s
                for s in self._seen
                if s.bucket == bucket and (method is None or s.method == method)
            ]

    def peak_in_flight(self, bucket: str) -> int:
        """The most GETs of objects in ``bucket`` the server was answering at once.

        A GET counts from its arrival until just before the last chunk of its body is
        written, a window inside the client's, so the count never exceeds what the
        client really had in flight.
        """
        with self._lock:
            return self._peak_in_flight.get(bucket, 0)

    def _enter(self, bucket: str) -> None:
        with self._lock:
            count = self._in_flight.get(bucket, 0) + 1
            self._in_flight[bucket] = count
            self._peak_in_flight[bucket] = max(count, self._peak_in_flight.get(bucket, 0))

    def _leave(self, bucket: str) -> None:
        with self._lock:
            self._in_flight[bucket] -= 1

    def _counted(self, bucket: str, body: Iterable[bytes]) -> Iterator[bytes]:
        left = False
        try:
            previous: bytes | None = None
            for chunk in body:
                if previous is not None:
                    yield previous
                previous = chunk
            self._leave(bucket)
            left = True
            if previous is not None:
                yield previous
        finally:
            if not left:
                self._leave(bucket)
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def ranged_gets(self, bucket: str) -> list[str]:
        return [s.range for s in self.requests(bucket, "GET") if s.range]

    # -- the wrapper -----------------------------------------------------------------

    def _crc(self, bucket: str, key: str) -> int | None:
        stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key)
        if stored is None:
            return None
        crc = int(fastcrc.crc64.xz(stored.value))
        return crc ^ 1 if (bucket, key) in self.wrong_crc else crc

    def _wrap(self, app: WsgiApp) -> WsgiApp:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            # WSGI hands the path over as latin-1 text; keys are UTF-8.
            raw = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
            path = unquote(raw).lstrip("/")
            bucket, _, key = path.partition("/")
            headers = {
                name[5:].replace("_", "-").lower(): value
                for name, value in environ.items()
                if name.startswith("HTTP_")
            }
            v1_query = "OSSAccessKeyId=" in environ.get("QUERY_STRING", "")
            method, byte_range = environ["REQUEST_METHOD"], environ.get("HTTP_RANGE")
            seen = Seen(method, bucket, key, byte_range, headers, v1_query)
            with self._lock:
                self._seen.append(seen)
            if bucket in self.v4_only and signed_v1(seen):
                length = str(len(_V1_REFUSED))
                refused = [("Content-Type", "application/xml"), ("Content-Length", length)]
                start_response("403 Forbidden", refused)
                return [_V1_REFUSED]
            if self.before_request is not None:
                self.before_request(seen)

            def start(status: str, response_headers: list[tuple[str, str]], *exc: Any) -> Any:
                if seen.method in ("GET", "HEAD") and key and status[:3] in ("200", "206"):
                    crc = None if (bucket, key) in self.omit_crc else self._crc(bucket, key)
                    if crc is not None:
                        response_headers.append(("x-oss-hash-crc64ecma", str(crc)))
                if (bucket, key) in self.wrong_checksum:
                    response_headers = [_corrupt_checksum(h) for h in response_headers]
                return start_response(status, response_headers, *exc)

            if _is_oss_listing(environ, key):
                return _oss_listing(app, _without_empty_token(_as_s3(environ)), start)
            counted = seen.method == "GET" and bool(key)
            if counted:
                self._enter(bucket)
            try:
                body = app(_without_empty_token(_as_s3(environ)), start)
            except BaseException:
                if counted:
                    self._leave(bucket)
                raise
            return self._counted(bucket, body) if counted else body

        return wrapped
