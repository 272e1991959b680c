"""Alibaba Cloud OSS with no SDK: partdl's own HTTP client, signing V4 itself.

This is how the ``partdl`` command reaches oss:// when nothing it was given needs
oss2 (see :func:`partdl.cli.sources.oss_bucket`): importing oss2 costs about half a
second of start-up, a third of a whole 1 GiB download here. HEAD, the ranged and the
whole GETs and the listing (ListObjectsV2) go through :mod:`._wire`'s pooled
connections, signed by :mod:`._oss_sign`; the backend and the listing are
:mod:`._direct`'s, shared with S3. Addressing follows oss2 (see :func:`._direct.connect`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..model import ObjectStat
from ._direct import DirectBackend, StoreBucket
from ._http import content_length, oss_stat
from ._oss_sign import sign
from ._signing import Keys
from ._wire import Headers


class CredentialsProvider(Protocol):
    """What oss2's and alibabacloud-credentials' providers offer: credentials now."""

    def get_credentials(self) -> Any: ...


@dataclass(frozen=True)
class OssDirectBucket(StoreBucket):
    """One OSS bucket, its region and credentials, and the connections to it."""

    kind: ClassVar[str] = "OSS"
    scheme: ClassVar[str] = "oss"
    payer_header: ClassVar[str] = "x-oss-request-payer"
    stat_headers: ClassVar[Mapping[str, str]] = {}

    credentials: CredentialsProvider = field(repr=False)

    def keys(self) -> Keys:
        found = self.credentials.get_credentials()
        return Keys(
            found.get_access_key_id(),
            found.get_access_key_secret(),
            found.get_security_token() or "",
        )

    def _signature(
        self,
        method: str,
        key: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        now: datetime.datetime,
    ) -> dict[str, str]:
        return sign(method, (self.name, key), params, headers, self.keys(), self.region, now)

    def stat_of(self, headers: Headers, version_id: str | None) -> ObjectStat | None:
        size = content_length(headers)
        return None if size is None else oss_stat(headers, size, version_id)


class OssDirectBackend(DirectBackend):
    """:class:`~._direct.DirectBackend` on an :class:`OssDirectBucket`."""
