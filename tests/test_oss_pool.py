"""The OSS backend works on a private copy of the caller's bucket, sized to task_num."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import oss2
import pytest
import requests.adapters

import partdl
from partdl.backends.oss import OssBackend
from tests.helpers import oss_bucket
from tests.store import LocalStore

KEY = "pool/object"
PART = 100 * 1024


def _pool_size(session: oss2.Session, endpoint: str) -> int:
    adapter = session.session.get_adapter(endpoint)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    return int(adapter.poolmanager.connection_pool_kw["maxsize"])


def test_download_leaves_the_callers_bucket_as_it_was(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(20 * PART + 7)
    store.put(bucket_name, KEY, data)
    bucket = store.oss_bucket(bucket_name)
    session = bucket.session
    out = tmp_path / "out"
    partdl.download_file(bucket, KEY, out, part_size=PART, task_num=16)
    assert out.read_bytes() == data
    assert bucket.session is session
    assert bucket.enable_crc is True
    assert _pool_size(session, store.endpoint) == oss2.defaults.connection_pool_size


def test_private_bucket_keeps_a_connection_per_worker(store: LocalStore, bucket_name: str) -> None:
    bucket = store.oss_bucket(bucket_name)
    backend = OssBackend(bucket, KEY, pool_size=32)
    private = backend._bucket
    assert private is not bucket
    assert private.enable_crc is False  # partdl checksums the raw stream itself
    assert _pool_size(private.session, store.endpoint) == 32
    assert bucket.session.session.trust_env  # the caller's session still reads the environment


def test_the_environments_ca_bundle_still_applies(
    store: LocalStore, bucket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/somewhere/ca.pem")
    bucket = store.oss_bucket(bucket_name)
    private = OssBackend(bucket, KEY, pool_size=8)._bucket
    assert private.session.session.verify == "/somewhere/ca.pem"
    assert bucket.session.session.verify is True


def test_a_pool_already_large_enough_is_shared(store: LocalStore, bucket_name: str) -> None:
    bucket = store.oss_bucket(bucket_name)
    backend = OssBackend(bucket, KEY, pool_size=oss2.defaults.connection_pool_size)
    theirs = bucket.session.session.get_adapter(store.endpoint)
    assert backend._bucket.session.session.get_adapter(store.endpoint) is theirs


def test_a_callers_own_adapter_is_respected(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    class Adapter(requests.adapters.HTTPAdapter):
        pass

    data = os.urandom(3 * PART)
    store.put(bucket_name, KEY, data)
    adapter = Adapter(pool_maxsize=2)
    session = oss2.Session(adapter=adapter)
    bucket = oss_bucket(store.endpoint, bucket_name, session=session)
    backend = OssBackend(bucket, KEY, pool_size=16)
    assert backend._bucket.session.session.get_adapter(store.endpoint) is adapter
    out = tmp_path / "out"
    partdl.download_file(bucket, KEY, out, part_size=PART, task_num=4)
    assert out.read_bytes() == data


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_a_proxy_from_the_environment_is_used(
    store: LocalStore, bucket_name: str, tmp_path: Path, no_proxy_environment: pytest.MonkeyPatch
) -> None:
    store.put(bucket_name, KEY, os.urandom(PART))
    no_proxy_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    bucket = store.oss_bucket(bucket_name)
    before = len(store.requests(bucket_name))
    with pytest.raises(partdl.TransferError):
        partdl.download_file(
            bucket, KEY, tmp_path / "out", task_num=16, retry=partdl.RetryPolicy(attempts=1)
        )
    assert len(store.requests(bucket_name)) == before  # nothing got past the dead proxy


def test_no_proxy_from_the_environment_is_honoured(
    store: LocalStore, bucket_name: str, tmp_path: Path, no_proxy_environment: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2 * PART)
    store.put(bucket_name, KEY, data)
    no_proxy_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    no_proxy_environment.setenv("NO_PROXY", "127.0.0.1,localhost")
    out = tmp_path / "out"
    partdl.download_file(store.oss_bucket(bucket_name), KEY, out, part_size=PART, task_num=16)
    assert out.read_bytes() == data
