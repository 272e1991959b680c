"""partdl's own OSS client (the CLI's oss:// when nothing needs oss2): its V4 signature
matches oss2's byte for byte, and it downloads, lists and fails like the oss2 backend."""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import partdl
from partdl.backends._oss_sign import canonical_query, sign
from partdl.backends._signing import Keys, uri_encode
from partdl.backends.oss_direct import OssDirectBackend, OssDirectBucket
from partdl.cli.sources import Scheme, Source, StoreConfig, oss_bucket
from partdl.errors import ObjectChangedDuringRead
from partdl.oss_setup import OssKeys
from tests.helpers import OSS_REGION
from tests.store import OSS_V4, LocalStore

NOW = datetime.datetime(2026, 12, 1, 8, 9, 10, tzinfo=datetime.UTC)


# -- the signature ------------------------------------------------------------------------


SIGNED = [
    ("GET", "data/object.bin", {}, {"Range": "bytes=0-9", "If-Match": '"abc"'}, ""),
    ("HEAD", "a b+c%d?e#f/ü~.bin", {"versionId": "CAEQ/x=="}, {}, ""),
    ("GET", "k", {}, {"x-oss-request-payer": "requester", "Content-Type": "a/b"}, "sts-token"),
    (
        "GET",
        "",
        {"list-type": "2", "prefix": "p q/", "max-keys": "1000", "continuation-token": "a+/="},
        {},
        "",
    ),
    ("GET", "", {"list-type": "2", "prefix": "", "encoding-type": "url"}, {}, ""),
    # A signed name that is a prefix of another sorts first, whatever the case given.
    ("GET", "k", {}, {"X-Oss-Meta-A-B": "2", "x-oss-meta-a": "1", "Content-MD5": "m"}, ""),
]


@pytest.mark.parametrize(("method", "key", "params", "headers", "token"), SIGNED)
def test_the_signature_is_the_one_oss2_computes(
    method: str, key: str, params: dict[str, str], headers: dict[str, str], token: str
) -> None:
    import oss2
    import oss2.http

    theirs = oss2.http.Request(
        method,
        "http://127.0.0.1/b/x",
        params=dict(params),
        headers=dict(headers),
        region=OSS_REGION,
        product="oss",
    )
    oss2.ProviderAuthV4(OssKeys("AKID", "SECRET", token))._sign_request(theirs, "bucket", key)
    when = datetime.datetime.strptime(theirs.headers["x-oss-date"], "%Y%m%dT%H%M%SZ")
    mine = sign(
        method, ("bucket", key), params, headers, Keys("AKID", "SECRET", token), OSS_REGION, when
    )
    assert mine["authorization"] == theirs.headers["authorization"]
    assert mine["x-oss-date"] == theirs.headers["x-oss-date"]
    assert mine.get("x-oss-security-token") == theirs.headers.get("x-oss-security-token")


def test_a_pinned_signature_does_not_drift() -> None:
    # Computed once with oss2 2.19 for these inputs; guards the signer without oss2.
    added = sign(
        "GET",
        ("examplebucket", "exampleobject"),
        {},
        {},
        Keys("accesskeyid", "accesskeysecret"),
        "cn-hangzhou",
        NOW,
    )
    assert added["x-oss-date"] == "20261201T080910Z"
    assert added["x-oss-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert added["authorization"].startswith(
        "OSS4-HMAC-SHA256 Credential=accesskeyid/20261201/cn-hangzhou/oss/aliyun_v4_request, "
        "Signature="
    )
    assert added["authorization"].endswith(PINNED)


PINNED = "Signature=8f59013b00811fdce19c599b2b765388e092c32305d5b3131366aaf9ca48905f"


@pytest.mark.parametrize(
    ("text", "keep_slash", "encoded"),
    [
        ("a/b c", True, "a/b%20c"),
        ("a/b c", False, "a%2Fb%20c"),
        ("~-_.", False, "~-_."),
        ("+=&?#%", False, "%2B%3D%26%3F%23%25"),
        ("ü", True, "%C3%BC"),
    ],
)
def test_uri_encoding_keeps_only_unreserved_characters(
    text: str, keep_slash: bool, encoded: str
) -> None:
    assert uri_encode(text, keep_slash=keep_slash) == encoded


def test_the_canonical_query_is_sorted_and_bare_names_have_no_equals_sign() -> None:
    assert canonical_query({"prefix": "a b", "list-type": "2", "acl": ""}) == (
        "acl&list-type=2&prefix=a%20b"
    )


# -- addressing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "host", "port", "scheme", "target"),
    [
        (
            "https://oss-cn-hangzhou.aliyuncs.com",
            "bkt.oss-cn-hangzhou.aliyuncs.com",
            None,
            "https",
            "/a/b%20c",
        ),
        (
            "oss-cn-hangzhou.aliyuncs.com",
            "bkt.oss-cn-hangzhou.aliyuncs.com",
            None,
            "http",
            "/a/b%20c",
        ),
        (
            "https://bkt.oss-cn-hangzhou.aliyuncs.com",
            "bkt.oss-cn-hangzhou.aliyuncs.com",
            None,
            "https",
            "/a/b%20c",
        ),
        ("http://127.0.0.1:9000", "127.0.0.1", 9000, "http", "/bkt/a/b%20c"),
        ("http://localhost:9000/", "localhost", 9000, "http", "/bkt/a/b%20c"),
        ("http://[::1]:9000", "::1", 9000, "http", "/bkt/a/b%20c"),
    ],
)
def test_addressing_is_path_style_for_addresses_and_virtual_hosted_otherwise(
    endpoint: str, host: str, port: int | None, scheme: str, target: str
) -> None:
    bucket = OssDirectBucket(endpoint, "bkt", OSS_REGION, OssKeys("a", "b"))
    origin = bucket.pool.origin
    assert (origin.scheme, origin.host, origin.port) == (scheme, host, port)
    assert bucket.target("a/b c") == target


@pytest.mark.parametrize(
    ("endpoint", "name"),
    [("ftp://x", "b"), ("http://", "b"), ("http://h", ""), ("http://h", "a/b")],
)
def test_a_malformed_endpoint_or_bucket_name_is_refused(endpoint: str, name: str) -> None:
    with pytest.raises(partdl.InvalidArgumentError):
        OssDirectBucket(endpoint, name, OSS_REGION, OssKeys("a", "b"))


def test_a_bucket_pickles_without_its_connections_and_keeps_its_identity() -> None:
    bucket = OssDirectBucket("http://127.0.0.1:9", "bkt", OSS_REGION, OssKeys("a", "b"))
    copy = pickle.loads(pickle.dumps(bucket))
    assert copy == bucket
    assert copy.pool is not bucket.pool
    assert "b" not in repr(bucket.keys()).replace("access_key_id='a'", "")


# -- against the local store --------------------------------------------------------------


def _direct(store: LocalStore, name: str, token: str = "") -> OssDirectBucket:
    return OssDirectBucket(store.endpoint, name, OSS_REGION, OssKeys("test", "test", token))


def test_a_download_is_byte_identical_and_every_request_is_signed_v4(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    key = "dir/a b+c%d?e#ü.bin"
    data = os.urandom(700_000)
    store.put(bucket_name, key, data)
    result = partdl.download_file(
        _direct(store, bucket_name, "tok"), key, tmp_path / "f", part_size=100 * 1024, task_num=3
    )
    assert (tmp_path / "f").read_bytes() == data
    assert result.verified
    seen = [s for s in store.requests(bucket_name) if s.method in ("HEAD", "GET")]
    assert [s.method for s in seen].count("HEAD") == 1
    assert len([s for s in seen if s.range]) == 7
    for request in seen:
        assert request.key == key
        assert request.headers["authorization"].startswith(OSS_V4)
        assert request.headers["x-oss-security-token"] == "tok"


def test_a_missing_object_is_not_found_and_a_changed_one_is_refused(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    bucket = _direct(store, bucket_name)
    with pytest.raises(partdl.NotFoundError):
        partdl.download_file(bucket, "nope", tmp_path / "f")
    store.put(bucket_name, "k", b"first version!")
    backend = OssDirectBackend(bucket, "k")
    stat = backend.stat()
    store.put(bucket_name, "k", b"second version")
    with pytest.raises(ObjectChangedDuringRead):
        backend.read(0, 4, stat)
    assert not (tmp_path / "f").exists()


def test_a_listing_pages_through_more_than_a_thousand_keys_with_odd_names(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    odd = ["p/sp ace", "p/pl+us", "p/per%25cent", "p/q?u#e", "p/ü/ñ"]
    store.put_empty(bucket_name, [f"p/n{i:04d}" for i in range(1001)] + ["other/x"])
    for i, key in enumerate(odd):
        store.put(bucket_name, key, key.encode() * (i + 1))
    listed = list(OssDirectBackend(_direct(store, bucket_name), "p/").list_objects("p/"))
    assert len(listed) == 1006
    assert {o.key for o in listed} >= set(odd)
    assert "other/x" not in {o.key for o in listed}
    assert all(o.etag and o.etag.startswith('"') and o.last_modified for o in listed)
    result = partdl.download_prefix(_direct(store, bucket_name), "p/", tmp_path, task_num=4)
    assert not result.failed
    assert len(result.downloaded) == 1006
    assert (tmp_path / "q?u#e").read_bytes() == b"p/q?u#e" * 4
    assert (tmp_path / "ü" / "ñ").read_bytes() == "p/ü/ñ".encode() * 5


# -- which client the command uses ----------------------------------------------------------


def _source(name: str) -> Source:
    return Source(Scheme.OSS, f"oss://{name}/k", name, "k")


@pytest.fixture
def keys_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "OSS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "test")
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "sign_version", "direct"),
    [
        ({}, None, True),
        ({"HTTPS_PROXY": "http://proxy:3128"}, None, False),  # the endpoint is https
        ({"HTTP_PROXY": "http://proxy:3128"}, None, True),
        ({"all_proxy": "http://proxy:3128"}, None, False),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".aliyuncs.com"}, None, True),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "aliyuncs.com"}, None, True),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "liyuncs.com"}, None, False),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, None, True),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "oss-cn-hangzhou.aliyuncs.com:443"},
            None,
            False,
        ),
        ({"https_proxy": "", "HTTPS_PROXY": "http://p:1"}, None, True),  # lowercase wins
        ({}, "1", False),  # V1 is oss2's
    ],
)
def test_the_command_uses_its_own_client_unless_a_proxy_or_v1_needs_oss2(
    keys_env: pytest.MonkeyPatch, env: dict[str, str], sign_version: str | None, direct: bool
) -> None:
    for name, value in env.items():
        keys_env.setenv(name, value)
    config = StoreConfig(
        endpoint="https://oss-cn-hangzhou.aliyuncs.com",
        region=OSS_REGION,
        sign_version=sign_version,
    )
    bucket = oss_bucket(_source("bkt"), config)
    assert isinstance(bucket, OssDirectBucket) is direct
    if not direct:
        assert type(bucket).__module__.startswith("oss2")


@pytest.mark.parametrize(
    ("no_proxy", "bypassed"),
    [
        ("127.0.0.1", True),
        ("127.0.0.0/8", True),
        ("10.0.0.0/8", False),
        ("localhost,127.0.0.1:9000", True),
        ("127.0.0.1:9001", False),
        ("", False),
    ],
)
def test_no_proxy_exempts_an_address_by_itself_its_port_or_its_block(
    keys_env: pytest.MonkeyPatch, no_proxy: str, bypassed: bool
) -> None:
    keys_env.setenv("HTTP_PROXY", "http://proxy:3128")
    keys_env.setenv("NO_PROXY", no_proxy)
    config = StoreConfig(endpoint="http://127.0.0.1:9000", region=OSS_REGION)
    assert isinstance(oss_bucket(_source("bkt"), config), OssDirectBucket) is bypassed


def test_a_ca_bundle_named_by_the_environment_is_trusted(keys_env: pytest.MonkeyPatch) -> None:
    keys_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    config = StoreConfig(endpoint="https://oss-cn-hangzhou.aliyuncs.com", region=OSS_REGION)
    bucket = oss_bucket(_source("bkt"), config)
    assert isinstance(bucket, OssDirectBucket)
    assert bucket.verify == "/etc/ssl/bundle.pem"


def test_the_command_downloads_from_oss_without_importing_oss2(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    store.put(bucket_name, "obj", data)
    program = (
        "import sys\nfrom partdl.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "assert 'oss2' not in sys.modules and 'requests' not in sys.modules, 'imported'\n"
        "sys.exit(code)\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if "PROXY" not in k.upper()},
        "OSS_ACCESS_KEY_ID": "test",
        "OSS_ACCESS_KEY_SECRET": "test",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            program,
            f"oss://{bucket_name}/obj",
            str(tmp_path / "f"),
            "--endpoint",
            store.endpoint,
            "--region",
            OSS_REGION,
            "-q",
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "f").read_bytes() == data
    agents = {s.headers.get("user-agent", "") for s in store.requests(bucket_name, "GET")}
    assert agents == {f"partdl/{partdl.__version__}"}


def test_without_oss2_the_command_says_what_needs_it(
    keys_env: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_oss2(name: str, *args: object, **kwargs: object) -> object:
        if name == "oss2":
            raise ImportError("no oss2 here")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_oss2)
    config = StoreConfig(endpoint="https://oss-cn-hangzhou.aliyuncs.com", region=OSS_REGION)
    assert isinstance(oss_bucket(_source("bkt"), config), OssDirectBucket)
    keys_env.setenv("HTTPS_PROXY", "http://proxy:3128")
    with pytest.raises(partdl.InvalidArgumentError, match=r"behind a proxy.*partdl\[oss\]"):
        oss_bucket(_source("bkt"), config)
