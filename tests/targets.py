"""The backends under one face, so the behavioural suite runs against each.

A target is one object in the local store reached through one backend: tests ask
it to download, to overwrite the object, and to count the ranged GETs the server saw.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import partdl
from tests.store import LocalStore, Seen, oss_v2_client, s3_client


@dataclasses.dataclass
class Target:
    name: str
    store: LocalStore
    bucket: str
    fetch: Callable[[Target, Path, dict[str, Any]], partdl.DownloadResult] = dataclasses.field(
        repr=False
    )
    key: str = "data/object.bin"

    def put(self, data: bytes) -> str:
        return self.store.put(self.bucket, self.key, data)

    def download(self, path: Path, **options: Any) -> partdl.DownloadResult:
        return self.fetch(self, path, options)

    def ranged_gets(self) -> int:
        """Ranged GETs that fetched parts: an HTTP target's size probe is its HEAD."""
        gets = self.store.requests(self.bucket, "GET")
        return sum(1 for seen in gets if seen.range and not _is_size_probe(seen))

    def methods(self) -> list[str]:
        """The methods of every request the server saw for the object itself."""
        return [seen.method for seen in self.store.requests(self.bucket) if seen.key]


def _oss_download(target: Target, path: Path, options: dict[str, Any]) -> partdl.DownloadResult:
    bucket = target.store.oss_bucket(target.bucket)
    return partdl.download_file(bucket, target.key, path, **options)


@functools.cache
def _oss_v2(endpoint: str) -> Any:
    # One client per store, as an application keeps one: it pools its connections.
    return oss_v2_client(endpoint)


def _oss_v2_download(target: Target, path: Path, options: dict[str, Any]) -> partdl.DownloadResult:
    bucket = partdl.OssV2Bucket(_oss_v2(target.store.endpoint), target.bucket)
    return partdl.download_file(bucket, target.key, path, **options)


def _is_size_probe(seen: Seen) -> bool:
    # Part GETs always carry If-Match (moto always sends an ETag); the probe cannot.
    return seen.range == "bytes=0-0" and "if-match" not in seen.headers


def _s3_download(target: Target, path: Path, options: dict[str, Any]) -> partdl.DownloadResult:
    bucket = partdl.S3Bucket(target.store.s3, target.bucket)
    return partdl.download_file(bucket, target.key, path, **options)


@functools.cache
def signer(endpoint: str) -> Any:
    """A SigV4 client for presigning, as a user's application would have."""
    return s3_client(endpoint, signature_version="s3v4")


def presign(target: Target, operation: str = "get_object") -> str:
    params = {"Bucket": target.bucket, "Key": target.key}
    url: str = signer(target.store.endpoint).generate_presigned_url(operation, Params=params)
    return url


def _http_download(target: Target, path: Path, options: dict[str, Any]) -> partdl.DownloadResult:
    # Signed afresh for every call: a resumed download must not depend on the signature.
    return partdl.download_url(presign(target), path, **options)


def _http_head_download(
    target: Target, path: Path, options: dict[str, Any]
) -> partdl.DownloadResult:
    head_url = presign(target, "head_object")
    return partdl.download_url(presign(target), path, head_url=head_url, **options)


# name -> how to build a target on a fresh bucket.
FACTORIES: dict[str, Callable[[LocalStore, str], Target]] = {
    "oss": lambda store, bucket: Target("oss", store, bucket, _oss_download),
    "ossv2": lambda store, bucket: Target("ossv2", store, bucket, _oss_v2_download),
    "s3": lambda store, bucket: Target("s3", store, bucket, _s3_download),
    # A presigned GET URL alone: size and ETag come from a bytes=0-0 GET.
    "http": lambda store, bucket: Target("http", store, bucket, _http_download),
    # A presigned GET URL plus a presigned HEAD URL.
    "http-head": lambda store, bucket: Target("http-head", store, bucket, _http_head_download),
}
