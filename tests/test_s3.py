"""The S3 backend: full-object checksums, versions, request options, error mapping.

Against moto (tests/store.py), and tests/servers.py for answers moto does not give.
"""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from typing import Any

import boto3
import pytest

import partdl
from partdl import crc
from partdl.backends.s3 import S3Backend, full_object_checksum
from partdl.crc import ChecksumAlgorithm, checksum, crc64
from partdl.errors import ObjectChangedDuringRead, TransientError
from partdl.model import Checksum
from tests.helpers import PART, leftovers
from tests.servers import ObjectServer
from tests.store import S3_OPTIONS, LocalStore, s3_client
from tests.test_crc import REFERENCES

KEY = "data/object.bin"
MiB = 1024 * 1024
S3_ALGORITHMS = [ChecksumAlgorithm.CRC32, ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC64NVME]


def b64(value: int, width: int) -> str:
    return base64.b64encode(value.to_bytes(width // 8, "big")).decode()


def download(store: LocalStore, bucket: str, path: Path, **options: Any) -> partdl.DownloadResult:
    return partdl.download_file(partdl.S3Bucket(store.s3, bucket), KEY, path, **options)


# -- reading HeadObject's checksum (pure) ----------------------------------------------


CRC32_OF_ABC = b64(checksum(ChecksumAlgorithm.CRC32, b"abc"), 32)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ({"ChecksumCRC32": CRC32_OF_ABC, "ETag": '"e"'}, ("crc32", b"abc")),
        ({"ChecksumCRC32": CRC32_OF_ABC, "ChecksumType": "FULL_OBJECT"}, ("crc32", b"abc")),
        # A multipart upload with a FULL_OBJECT checksum: the type says it all.
        (
            {"ChecksumCRC32": CRC32_OF_ABC, "ChecksumType": "FULL_OBJECT", "ETag": '"e-3"'},
            ("crc32", b"abc"),
        ),
        ({"ChecksumCRC32": CRC32_OF_ABC + "-3", "ChecksumType": "COMPOSITE"}, None),
        ({"ChecksumCRC32": CRC32_OF_ABC, "ChecksumType": "COMPOSITE"}, None),
        # No type, multipart (ETag or value says so): composite by default, not used.
        ({"ChecksumCRC32": CRC32_OF_ABC + "-2", "ETag": '"e"'}, None),
        ({"ChecksumCRC32": CRC32_OF_ABC, "ETag": '"d41d8cd98f00b204e9800998ecf8427e-2"'}, None),
        ({"ChecksumSHA256": base64.b64encode(b"x" * 32).decode()}, None),
        ({"ChecksumCRC32": "not base64!"}, None),
        ({"ChecksumCRC32": b64(1, 64)}, None),  # eight bytes for a 32-bit CRC
        ({"ETag": '"e"'}, None),
    ],
)
def test_full_object_checksum_from_head(
    head: dict[str, str], expected: tuple[str, bytes] | None
) -> None:
    got = full_object_checksum(head)
    if expected is None:
        assert got is None
    else:
        algorithm = ChecksumAlgorithm(expected[0])
        assert got == Checksum(algorithm, REFERENCES[algorithm](expected[1]))


def test_crc64nvme_is_preferred_and_decoded_big_endian() -> None:
    value = REFERENCES[ChecksumAlgorithm.CRC64NVME](b"123456789")
    head = {"ChecksumCRC64NVME": b64(value, 64), "ChecksumCRC32": CRC32_OF_ABC}
    assert full_object_checksum(head) == Checksum(ChecksumAlgorithm.CRC64NVME, value)
    assert value == 0xAE8B14860A799888


# -- full-object checksums against moto ------------------------------------------------


@pytest.mark.parametrize("algorithm", S3_ALGORITHMS, ids=lambda a: a.value)
def test_full_object_checksum_is_verified(
    store: LocalStore, bucket_name: str, tmp_path: Path, algorithm: ChecksumAlgorithm
) -> None:
    data = os.urandom(9 * PART + 5)
    store.s3.put_object(
        Bucket=bucket_name, Key=KEY, Body=data, ChecksumAlgorithm=algorithm.value.upper()
    )
    result = download(store, bucket_name, tmp_path / "out", part_size=PART, task_num=3)
    assert (tmp_path / "out").read_bytes() == data
    assert result.verified
    assert result.checksum == Checksum(algorithm, REFERENCES[algorithm](data))
    assert result.crc64 is None  # that field is the OSS CRC-64 only


def test_crc64nvme_without_an_engine_downloads_unverified(
    store: LocalStore, bucket_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installation with neither anycrc nor awscrt cannot check S3's default checksum:
    # the download still completes, checked part by part with CRC-64/XZ, and says so.
    monkeypatch.setattr(crc, "_crc64nvme_engine", lambda: None)
    data = os.urandom(3 * PART + 5)
    store.s3.put_object(Bucket=bucket_name, Key=KEY, Body=data, ChecksumAlgorithm="CRC64NVME")
    result = download(store, bucket_name, tmp_path / "out", part_size=PART, task_num=2)
    assert (tmp_path / "out").read_bytes() == data
    assert not result.verified
    assert result.checksum == Checksum(
        ChecksumAlgorithm.CRC64XZ, REFERENCES[ChecksumAlgorithm.CRC64XZ](data)
    )
    assert leftovers(tmp_path) == ["out"]


def _multipart(store: LocalStore, bucket: str, parts: list[bytes], **create: str) -> None:
    upload = store.s3.create_multipart_upload(
        Bucket=bucket, Key=KEY, ChecksumAlgorithm="CRC32", **create
    )
    done = []
    for number, body in enumerate(parts, 1):
        answer = store.s3.upload_part(
            Bucket=bucket,
            Key=KEY,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="CRC32",
        )
        done.append(
            {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]}
        )
    store.s3.complete_multipart_upload(
        Bucket=bucket, Key=KEY, UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )


def test_multipart_full_object_checksum_is_verified(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(PART)]
    _multipart(store, bucket_name, parts, ChecksumType="FULL_OBJECT")
    result = download(store, bucket_name, tmp_path / "out", part_size=3 * PART)
    assert result.verified
    assert result.checksum == Checksum(
        ChecksumAlgorithm.CRC32, REFERENCES[ChecksumAlgorithm.CRC32](b"".join(parts))
    )


def test_composite_checksum_is_not_claimed_verified(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(PART)]
    _multipart(store, bucket_name, parts)  # CRC32 defaults to COMPOSITE
    result = download(store, bucket_name, tmp_path / "out", part_size=3 * PART)
    data = b"".join(parts)
    assert (tmp_path / "out").read_bytes() == data
    assert not result.verified
    # The parts were still checksummed (CRC-64, for resume) and folded into one value.
    assert result.checksum == Checksum(ChecksumAlgorithm.CRC64XZ, crc64(data))


@pytest.mark.parametrize("algorithm", S3_ALGORITHMS, ids=lambda a: a.value)
def test_wrong_checksum_is_an_integrity_error_and_leaves_nothing(
    store: LocalStore, bucket_name: str, tmp_path: Path, algorithm: ChecksumAlgorithm
) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old content")
    data = os.urandom(6 * PART)
    store.s3.put_object(
        Bucket=bucket_name, Key=KEY, Body=data, ChecksumAlgorithm=algorithm.value.upper()
    )
    store.wrong_checksum.add((bucket_name, KEY))

    with pytest.raises(partdl.IntegrityError, match=algorithm.value):
        download(store, bucket_name, out, part_size=PART, task_num=3)

    assert out.read_bytes() == b"old content"
    assert leftovers(tmp_path, "out") == []
    assert len(store.ranged_gets(bucket_name)) == 2 * 6  # once more from scratch, then no


# -- buckets, versions, request options ------------------------------------------------


def test_a_boto3_bucket_resource_is_accepted(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * PART)
    store.put(bucket_name, KEY, data)
    resource = boto3.resource("s3", endpoint_url=store.endpoint, **S3_OPTIONS)
    result = partdl.download_file(resource.Bucket(bucket_name), KEY, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert result.verified  # boto3 uploads with a CRC32 by default


def test_version_id_pins_an_older_version(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.s3.put_bucket_versioning(
        Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"}
    )
    old = os.urandom(5 * PART)
    first = store.s3.put_object(Bucket=bucket_name, Key=KEY, Body=old)["VersionId"]
    store.put(bucket_name, KEY, os.urandom(5 * PART))

    result = download(store, bucket_name, tmp_path / "out", part_size=PART, version_id=first)

    # Without VersionId on each GET, If-Match on the old ETag would fail every time.
    assert (tmp_path / "out").read_bytes() == old
    assert result.restarts == 0
    with pytest.raises(partdl.NotFoundError) as raised:
        download(store, bucket_name, tmp_path / "other", version_id="no-such-version")
    # A HEAD's answer has no body: its code is its status, said once.
    assert str(raised.value).endswith("HTTP 404"), str(raised.value)


def test_extra_args_go_with_every_request(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, os.urandom(4 * PART))
    bucket = partdl.S3Bucket(store.s3, bucket_name, extra_args={"RequestPayer": "requester"})
    partdl.download_file(bucket, KEY, tmp_path / "out", part_size=PART)
    sent = [s for s in store.requests(bucket_name) if s.method in ("HEAD", "GET")]
    assert len(sent) == 1 + 4
    assert all(s.headers.get("x-amz-request-payer") == "requester" for s in sent)


def test_s3_bucket_arguments_are_checked_and_the_sse_key_is_not_shown(
    store: LocalStore, tmp_path: Path
) -> None:
    misspelt: Any = {"RequestPayerr": "requester"}  # as an untyped caller might
    with pytest.raises(partdl.InvalidArgumentError, match="RequestPayerr"):
        partdl.S3Bucket(store.s3, "b", extra_args=misspelt)
    with pytest.raises(partdl.InvalidArgumentError, match="boto3 S3 client"):
        partdl.S3Bucket(object(), "b")
    with pytest.raises(partdl.InvalidArgumentError, match="non-empty"):
        partdl.S3Bucket(store.s3, "")
    with pytest.raises(partdl.InvalidArgumentError, match="extra_args"):
        partdl.download_file(
            partdl.S3Bucket(store.s3, "b"), KEY, tmp_path / "out", headers={"x": "y"}
        )
    secret = partdl.S3Bucket(store.s3, "b", extra_args={"SSECustomerKey": "s3cr3t-key"})
    assert "s3cr3t-key" not in repr(secret)
    assert os.listdir(tmp_path) == []


# -- error mapping ------------------------------------------------------------------------


def test_missing_bucket_is_not_found(store: LocalStore, tmp_path: Path) -> None:
    with pytest.raises(partdl.NotFoundError):
        download(store, "no-such-bucket-partdl", tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_a_changed_etag_is_object_changed_during_read(store: LocalStore, bucket_name: str) -> None:
    store.put(bucket_name, KEY, os.urandom(2 * PART))
    backend = S3Backend(partdl.S3Bucket(store.s3, bucket_name), KEY)
    stat = backend.stat()
    store.put(bucket_name, KEY, os.urandom(2 * PART))
    with pytest.raises(ObjectChangedDuringRead, match="412"):
        backend.read(0, PART, stat)


@pytest.fixture
def no_retries() -> dict[str, Any]:
    """botocore retries 503s itself; one attempt shows what partdl makes of it."""
    return {"retries": {"total_max_attempts": 1}}


_XML = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{}</Code><Message>m</Message></Error>'


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (403, "AccessDenied", partdl.AccessDeniedError),
        (403, "InvalidObjectState", partdl.PartdlError),  # archived, not forbidden
        (503, "SlowDown", TransientError),
        (500, "InternalError", TransientError),
        (429, "TooManyRequests", TransientError),
        (412, "PreconditionFailed", ObjectChangedDuringRead),
        (404, "NoSuchKey", partdl.NotFoundError),
    ],
)
def test_error_answers_map_to_typed_errors(
    no_retries: dict[str, Any], status: int, code: str, error: type[partdl.PartdlError]
) -> None:
    with ObjectServer(error=(status, _XML.format(code).encode())) as server:
        backend = S3Backend(partdl.S3Bucket(s3_client(server.endpoint, **no_retries), "b"), KEY)
        with pytest.raises(partdl.PartdlError) as raised:
            backend.read(0, 10, partdl.ObjectStat(size=10, etag='"e"', last_modified=None))
    assert type(raised.value) is error
    assert f"HTTP {status}" in str(raised.value)


def test_forbidden_head_is_access_denied_and_leaves_nothing(
    no_retries: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"precious")
    with ObjectServer(error=(403, b"")) as server:
        bucket = partdl.S3Bucket(s3_client(server.endpoint, **no_retries), "b")
        with pytest.raises(partdl.AccessDeniedError):
            partdl.download_file(bucket, KEY, out)
    assert out.read_bytes() == b"precious"
    assert leftovers(tmp_path, "out") == []


def test_unreachable_endpoint_is_transient(no_retries: dict[str, Any]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = s3_client(f"http://127.0.0.1:{port}", connect_timeout=2, **no_retries)
    with pytest.raises(TransientError):
        S3Backend(partdl.S3Bucket(client, "b"), KEY).stat()


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment in which boto3 finds no credentials, and asks no metadata service."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_credentials")
def test_missing_credentials_are_access_denied(store: LocalStore, tmp_path: Path) -> None:
    client = boto3.Session().client("s3", endpoint_url=store.endpoint, region_name="us-east-1")
    with pytest.raises(partdl.AccessDeniedError, match="credentials"):
        partdl.download_file(partdl.S3Bucket(client, "b"), KEY, tmp_path / "out")
    assert leftovers(tmp_path) == []
