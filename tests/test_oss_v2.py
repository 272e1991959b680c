"""partdl.OssV2Bucket: what the behavioural suite (the ``ossv2`` target) does not cover."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss_v2
import pytest

import partdl
from tests.helpers import PART, leftovers
from tests.store import OSS_V4, LocalStore, oss_v2_client

KEY = "data/object.bin"


@pytest.mark.parametrize(
    ("client", "name", "message"),
    [(object(), "b", "alibabacloud_oss_v2.Client"), (None, "", "bucket name")],
)
def test_bad_buckets_are_refused(client: Any, name: str, message: str) -> None:
    real = oss_v2_client("http://127.0.0.1:9") if client is None else client
    with pytest.raises(partdl.InvalidArgumentError, match=message):
        partdl.OssV2Bucket(real, name)


def test_headers_go_with_every_request_and_every_request_is_v4(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(4 * PART)
    store.put(bucket_name, KEY, data)
    store.v4_only.add(bucket_name)
    bucket = partdl.OssV2Bucket(oss_v2_client(store.endpoint), bucket_name)
    headers = {"x-oss-request-payer": "requester", "x-oss-traffic-limit": "8388608"}

    result = partdl.download_file(bucket, KEY, tmp_path / "out", PART, 2, headers=headers)

    assert (tmp_path / "out").read_bytes() == data
    assert result.verified
    sent = [seen for seen in store.requests(bucket_name) if seen.key and seen.method != "PUT"]
    assert [seen.method for seen in sent] == ["HEAD"] + ["GET"] * 4
    for seen in sent:
        assert seen.headers["x-oss-request-payer"] == "requester"
        assert seen.headers["x-oss-traffic-limit"] == "8388608"
        assert seen.headers["authorization"].startswith(OSS_V4)
    assert all(seen.headers.get("if-match") == result.etag for seen in sent[1:])
    assert headers == {"x-oss-request-payer": "requester", "x-oss-traffic-limit": "8388608"}


def test_no_credentials_is_access_denied_and_creates_nothing(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, b"data")
    empty = oss_v2.credentials.StaticCredentialsProvider("", "")
    client = oss_v2_client(store.endpoint, credentials_provider=empty)
    with pytest.raises(partdl.AccessDeniedError, match="credentials"):
        partdl.download_file(partdl.OssV2Bucket(client, bucket_name), KEY, tmp_path / "out")
    assert os.listdir(tmp_path) == []


class _Opaque(oss_v2.types.HttpResponse):  # type: ignore[misc]
    """A response partdl cannot see into: only the SDK's interface."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    request = property(lambda self: self._inner.request)
    is_closed = property(lambda self: self._inner.is_closed)
    is_stream_consumed = property(lambda self: self._inner.is_stream_consumed)
    status_code = property(lambda self: self._inner.status_code)
    headers = property(lambda self: self._inner.headers)
    reason = property(lambda self: self._inner.reason)
    content = property(lambda self: self._inner.content)

    def __enter__(self) -> _Opaque:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def read(self) -> bytes:
        return bytes(self._inner.read())

    def close(self) -> None:
        self._inner.close()

    def iter_bytes(self, **kwargs: Any) -> Iterator[bytes]:
        return iter(self._inner.iter_bytes(block_size=7_000))  # chunks unlike partdl's


class _OpaqueClient(oss_v2.types.HttpClient):  # type: ignore[misc]
    """Another HTTP client, as an application may plug in."""

    def __init__(self) -> None:
        self._inner = oss_v2.transport.RequestsHttpClient()

    def send(self, request: Any, **kwargs: Any) -> Any:
        return _Opaque(self._inner.send(request, **kwargs))

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()


def test_a_body_from_another_http_client_is_read_through_the_sdk(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(5 * PART + 17)
    store.put(bucket_name, KEY, data)
    client = oss_v2_client(store.endpoint, http_client=_OpaqueClient())
    out = tmp_path / "out"
    out.write_bytes(b"old")

    result = partdl.download_file(partdl.OssV2Bucket(client, bucket_name), KEY, out, PART, 3)

    assert out.read_bytes() == data
    assert result.verified
    assert leftovers(tmp_path, "out") == []

    store.wrong_crc.add((bucket_name, KEY))
    with pytest.raises(partdl.IntegrityError):
        partdl.download_file(partdl.OssV2Bucket(client, bucket_name), KEY, out, PART, 3)
    assert out.read_bytes() == data
    assert leftovers(tmp_path, "out") == []
