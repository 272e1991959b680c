"""partdl's own S3 client (the CLI's s3:// with plain keys from the environment): its
signature matches botocore's byte for byte, it downloads, lists, verifies and fails
like the boto3 backend, and the command uses it only where boto3 would do the same."""

from __future__ import annotations

import datetime
import http.server
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import partdl
from partdl.backends import _s3_sign
from partdl.backends._signing import Keys, uri_encode
from partdl.backends.s3_direct import S3DirectBackend, S3DirectBucket
from partdl.cli.sources import Scheme, Source, StoreConfig, s3_bucket
from partdl.crc import ChecksumAlgorithm
from partdl.errors import ObjectChangedDuringRead
from tests.store import LocalStore

# -- the signature ------------------------------------------------------------------------

SIGNED = [
    ("GET", "127.0.0.1:9000", "/bkt/a b+c%d?e#f/ü~.bin", {}, {}, ""),
    (
        "GET",
        "bkt.s3.us-west-2.amazonaws.com",
        "/",
        {"list-type": "2", "prefix": "p q/", "continuation-token": "a+/=", "empty": ""},
        {"x-amz-checksum-mode": "ENABLED"},
        "",
    ),
    (
        "HEAD",
        "h:1",
        "/k",
        {"versionId": "CAEQ/x=="},
        {"X-Amz-Request-Payer": "requester", "x-amz-expected-bucket-owner": " 12  34 "},
        "session/token+=",
    ),
]


@pytest.mark.parametrize(("method", "host", "key", "params", "headers", "token"), SIGNED)
def test_the_signature_is_botocores(
    method: str,
    host: str,
    key: str,
    params: dict[str, str],
    headers: dict[str, str],
    token: str,
) -> None:
    path = uri_encode(key, keep_slash=True)
    query = "?" + urlencode(params, quote_via=quote, safe="-_.~") if params else ""
    request = AWSRequest(method=method, url=f"http://{host}{path}{query}", headers=dict(headers))
    S3SigV4Auth(Credentials("AKID", "SECRET", token or None), "s3", "us-west-2").add_auth(request)
    stamp = request.headers["X-Amz-Date"]
    now = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    keys = Keys("AKID", "SECRET", token)
    added = _s3_sign.sign(method, host, path, params, headers, keys, "us-west-2", now)
    assert added["authorization"] == request.headers["Authorization"]
    assert added["x-amz-content-sha256"] == request.headers["X-Amz-Content-SHA256"]
    assert added.get("x-amz-security-token") == (token or None)


# -- against the local store --------------------------------------------------------------


def _direct(store: LocalStore, name: str) -> S3DirectBucket:
    return S3DirectBucket(store.endpoint, name, "us-east-1", Keys("test", "test"))


def test_a_download_is_byte_identical_verified_and_signed(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    key = "dir/a b+c%d?e#ü.bin"
    data = os.urandom(700_000)
    store.put(bucket_name, key, data)
    result = partdl.download_file(
        _direct(store, bucket_name), key, tmp_path / "f", part_size=100 * 1024, task_num=3
    )
    assert (tmp_path / "f").read_bytes() == data
    assert result.verified
    assert result.checksum is not None
    assert result.checksum.algorithm in set(ChecksumAlgorithm)
    seen = [s for s in store.requests(bucket_name) if s.method in ("HEAD", "GET")]
    assert [s.method for s in seen].count("HEAD") == 1
    assert len([s for s in seen if s.range]) == 7
    for request in seen:
        assert request.key == key
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=test/")
        # The checksums are asked for where the object is pinned, as boto3's backend does.
        assert ("x-amz-checksum-mode" in request.headers) is (request.method == "HEAD")


def test_a_wrong_checksum_is_caught(store: LocalStore, bucket_name: str, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    store.put(bucket_name, "k", data)
    store.wrong_checksum.add((bucket_name, "k"))
    with pytest.raises(partdl.IntegrityError):
        partdl.download_file(_direct(store, bucket_name), "k", tmp_path / "f", part_size=102400)
    assert not (tmp_path / "f").exists()


def test_a_missing_object_is_not_found_and_a_changed_one_is_refused(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    bucket = _direct(store, bucket_name)
    with pytest.raises(partdl.NotFoundError):
        partdl.download_file(bucket, "nope", tmp_path / "f")
    store.put(bucket_name, "k", b"first version!")
    backend = S3DirectBackend(bucket, "k")
    stat = backend.stat()
    store.put(bucket_name, "k", b"second version")
    with pytest.raises(ObjectChangedDuringRead):
        backend.read(0, 4, stat)
    with pytest.raises(partdl.NotFoundError):
        partdl.download_prefix(_direct(store, "no-such-bucket-here"), "p/", tmp_path / "d")


def test_a_tree_lists_past_a_thousand_keys_with_odd_names(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    odd = ["p/sp ace", "p/pl+us", "p/per%25cent", "p/q?u#e", "p/ü/ñ"]
    store.put_empty(bucket_name, [f"p/n{i:04d}" for i in range(1001)] + ["other/x"])
    for i, key in enumerate(odd):
        store.put(bucket_name, key, key.encode() * (i + 1))
    listed = list(S3DirectBackend(_direct(store, bucket_name), "p/").list_objects("p/"))
    assert len(listed) == 1006
    assert {o.key for o in listed} >= set(odd)
    assert all(o.etag and o.etag.startswith('"') and o.last_modified for o in listed)
    result = partdl.download_prefix(_direct(store, bucket_name), "p/", tmp_path, task_num=4)
    assert not result.failed
    assert len(result.downloaded) == 1006
    assert (tmp_path / "ü" / "ñ").read_bytes() == "p/ü/ñ".encode() * 5
    gets = store.requests(bucket_name, "GET")
    assert not store.requests(bucket_name, "HEAD")  # a small object: one GET, no HEAD
    assert len([g for g in gets if g.key.startswith("p/")]) == 1006


# -- which client the command uses ----------------------------------------------------------


@pytest.fixture
def aws_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def _chosen(bucket: str, config: StoreConfig) -> Any:
    return s3_bucket(Source(Scheme.S3, f"s3://{bucket}/k", bucket, "k"), config)


@pytest.mark.parametrize(
    ("env", "config", "host"),
    [
        ({}, StoreConfig(endpoint="http://127.0.0.1:9"), "127.0.0.1"),
        # As botocore: path style at any endpoint given, the virtual host at AWS's own.
        ({"AWS_ENDPOINT_URL_S3": "https://minio.example"}, StoreConfig(), "minio.example"),
        ({}, StoreConfig(region="eu-west-1"), "bkt.s3.eu-west-1.amazonaws.com"),
        ({"AWS_REGION": "ap-south-1"}, StoreConfig(), "bkt.s3.ap-south-1.amazonaws.com"),
        ({"AWS_SESSION_TOKEN": "t"}, StoreConfig(endpoint="http://localhost:9"), "localhost"),
        (  # what `aws configure` writes: its region is the one used
            {
                "CONFIG": "[default]\nregion = sa-east-1\noutput = json\n"
                "[profile x]\nsso_session = y\n"
            },
            StoreConfig(),
            "bkt.s3.sa-east-1.amazonaws.com",
        ),
        (
            {"HTTP_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1"},
            StoreConfig(endpoint="http://127.0.0.1:9"),
            "127.0.0.1",
        ),
    ],
)
def test_the_command_uses_its_own_s3_client_with_plain_keys_and_a_known_endpoint(
    aws_keys: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    config: StoreConfig,
    host: str,
) -> None:
    for name, value in env.items():
        if name == "CONFIG":
            (tmp_path / "config").write_text(value)
            aws_keys.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
        else:
            aws_keys.setenv(name, value)
    bucket = _chosen("bkt", config)
    assert isinstance(bucket, S3DirectBucket)
    assert bucket.pool.origin.host == host
    assert bucket.keys.security_token == env.get("AWS_SESSION_TOKEN", "")


@pytest.mark.parametrize(
    ("env", "config", "name"),
    [
        ({"AWS_PROFILE": "default"}, StoreConfig(endpoint="http://127.0.0.1:9"), "bkt"),
        ({}, StoreConfig(endpoint="http://127.0.0.1:9", profile="other"), "bkt"),
        ({}, StoreConfig(), "bkt"),  # no endpoint and no region: boto3 finds them
        ({}, StoreConfig(region="eu-west-1"), "dotted.name"),  # no virtual host for it
        ({}, StoreConfig(region="us-east-1"), "Legacy_Name"),
        ({}, StoreConfig(region="us-east-1"), "dir--use1-az4--x-s3"),  # a directory bucket
        ({}, StoreConfig(region="cn-north-1"), "bkt"),  # another partition
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, StoreConfig(region="us-east-1"), "bkt"),
        ({"HTTP_PROXY": "http://p:1"}, StoreConfig(endpoint="http://127.0.0.1:9"), "bkt"),
        (
            {"CONFIG": "[default]\nregion = eu-west-1\ns3 =\n  addressing_style = path\n"},
            StoreConfig(region="eu-west-1"),
            "bkt",
        ),
        ({"CONFIG": "[default]\nendpoint_url = http://127.0.0.1:9\n"}, StoreConfig(), "bkt"),
        ({"AWS_ACCESS_KEY_ID": ""}, StoreConfig(endpoint="http://127.0.0.1:9"), "bkt"),
    ],
)
def test_the_command_leaves_the_rest_to_boto3(
    aws_keys: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    config: StoreConfig,
    name: str,
) -> None:
    # Keys in a file too, for the cases whose keys boto3 takes from a profile.
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "".join(
            f"[{profile}]\naws_access_key_id = a\naws_secret_access_key = b\n"
            for profile in ("default", "other")
        )
    )
    aws_keys.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for variable, value in env.items():
        if variable == "CONFIG":
            (tmp_path / "config").write_text(value)
            aws_keys.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
        elif value:
            aws_keys.setenv(variable, value)
        else:
            aws_keys.delenv(variable)
    bucket = _chosen(name, config)
    assert isinstance(bucket, partdl.S3Bucket)


class _WrongRegion(http.server.BaseHTTPRequestHandler):
    """S3's answer to a request signed for another region than the bucket's."""

    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self.send_response(301)
        self.send_header("x-amz-bucket-region", "eu-central-1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_bucket_in_another_region_is_named_in_the_error() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WrongRegion)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        bucket = S3DirectBucket(
            f"http://127.0.0.1:{server.server_address[1]}", "bkt", "us-east-1", Keys("a", "b")
        )
        with pytest.raises(partdl.InvalidArgumentError, match=r"--region eu-central-1"):
            S3DirectBackend(bucket, "k").stat()
    finally:
        server.shutdown()
        server.server_close()


def test_a_bucket_pickles_without_its_connections_or_showing_its_secret() -> None:
    bucket = S3DirectBucket("http://127.0.0.1:9", "bkt", "us-east-1", Keys("a", "s3cret", "t"))
    copy = pickle.loads(pickle.dumps(bucket))
    assert copy == bucket
    assert copy.pool is not bucket.pool
    assert "s3cret" not in repr(bucket) + repr(bucket.keys)


def test_a_tree_on_two_processes_is_identical(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    objects = {f"p/{n:02}.bin": os.urandom(1000 + n) for n in range(12)}
    objects["p/big.bin"] = os.urandom(5 * 102400 + 7)
    for key, data in objects.items():
        store.put(bucket_name, key, data)
    # spawn: the test process runs the store's threads, which a fork would copy mid-lock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        result = partdl.download_prefix(
            _direct(store, bucket_name), "p/", tmp_path, part_size=102400, executor=pool
        )
    assert sorted(result.downloaded) == sorted(objects)
    for key, data in objects.items():
        assert (tmp_path / key[2:]).read_bytes() == data


def test_a_config_file_that_does_not_parse_is_left_to_boto3_to_report(
    aws_keys: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "config").write_text("[default\nregion = x\n")
    aws_keys.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with pytest.raises(partdl.InvalidArgumentError, match="AWS configuration"):
        _chosen("bkt", StoreConfig(endpoint="http://127.0.0.1:9"))


def test_the_own_client_imports_neither_boto3_nor_botocore(aws_keys: pytest.MonkeyPatch) -> None:
    aws_keys.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code = (
        "import sys\n"
        "from partdl.cli.sources import Scheme, Source, StoreConfig, s3_bucket\n"
        "bucket = s3_bucket(Source(Scheme.S3, 's3://b/k', 'b', 'k'), StoreConfig())\n"
        "from partdl.backends import open_backend\n"
        "open_backend(bucket, 'k')\n"
        "print(type(bucket).__name__, sorted(m for m in sys.modules if m.startswith('boto')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["S3DirectBucket", "[]"]
