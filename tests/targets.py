"""The backends under one face, so the behavioural suite runs against each.

A target is one object in the local store reached through one backend: tests ask
it to download, to overwrite the object, and to count the ranged GETs the server saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import partdl
from tests.store import LocalStore


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
        return len(self.store.ranged_gets(self.bucket))

    def methods(self) -> list[str]:
        """The methods of every request the server saw for the object itself."""
        return [seen.method for seen in self.store.requests(self.bucket) if seen.key]


def _oss_download(target: Target, path: Path, options: dict[str, Any]) -> partdl.DownloadResult:
    bucket = target.store.oss_bucket(target.bucket)
    return partdl.download_file(bucket, target.key, path, **options)


# name -> how to build a target on a fresh bucket. The S3 and HTTP backends add theirs.
FACTORIES: dict[str, Callable[[LocalStore, str], Target]] = {
    "oss": lambda store, bucket: Target("oss", store, bucket, _oss_download),
}
