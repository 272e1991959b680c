"""The OSS backend works on a private copy of the caller's bucket, sized to task_num."""

from __future__ import annotations

import os
from pathlib import Path

import oss2
import requests.adapters

import partdl
from partdl.backends.oss import OssBackend
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
    assert private.session.session.verify == bucket.session.session.verify


def test_a_pool_already_large_enough_is_shared(store: LocalStore, bucket_name: str) -> None:
    bucket = store.oss_bucket(bucket_name)
    backend = OssBackend(bucket, KEY, pool_size=oss2.defaults.connection_pool_size)
    assert backend._bucket.session is bucket.session


def test_a_callers_own_adapter_is_respected(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    class Adapter(requests.adapters.HTTPAdapter):
        pass

    data = os.urandom(3 * PART)
    store.put(bucket_name, KEY, data)
    session = oss2.Session(adapter=Adapter(pool_maxsize=2))
    bucket = oss2.Bucket(oss2.Auth("test", "test"), store.endpoint, bucket_name, session=session)
    backend = OssBackend(bucket, KEY, pool_size=16)
    assert backend._bucket.session is session
    out = tmp_path / "out"
    partdl.download_file(bucket, KEY, out, part_size=PART, task_num=4)
    assert out.read_bytes() == data
