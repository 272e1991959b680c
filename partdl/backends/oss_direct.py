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
from ._direct import DirectBackend, connect, send_checked, target
from ._http import content_length, oss_stat
from ._oss_sign import Keys, sign
from ._wire import Headers, Pool, Response


class CredentialsProvider(Protocol):
    """What oss2's and alibabacloud-credentials' providers offer: credentials now."""

    def get_credentials(self) -> Any: ...


@dataclass(frozen=True)
class OssDirectBucket:
    """One OSS bucket, its region and credentials, and the connections to it.

    Every backend opened on it shares its pool; it pickles without its connections.
    """

    scheme: ClassVar[str] = "oss"
    payer_header: ClassVar[str] = "x-oss-request-payer"
    stat_headers: ClassVar[Mapping[str, str]] = {}

    endpoint: str
    name: str
    region: str
    credentials: CredentialsProvider = field(repr=False)
    pool_size: int = 10
    verify: bool | str = True
    """For https: True (certifi's CAs), False (no check) or a CA bundle's path."""
    user_agent: str = "partdl"
    pool: Pool = field(init=False, repr=False, compare=False)
    path_style: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pool, path_style = connect(self.endpoint, self.name, self.pool_size, self.verify, "OSS")
        object.__setattr__(self, "pool", pool)
        object.__setattr__(self, "path_style", path_style)

    def target(self, key: str) -> str:
        """The request target for ``key`` ("" for the bucket itself), without a query."""
        return target(self.name, key, self.path_style)

    def keys(self) -> Keys:
        found = self.credentials.get_credentials()
        return Keys(
            found.get_access_key_id(),
            found.get_access_key_secret(),
            found.get_security_token() or "",
        )

    def send(
        self,
        method: str,
        key: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        what: str,
    ) -> Response:
        """One signed request; an error answer raises partdl's error for it."""
        now = datetime.datetime.now(datetime.UTC)
        sent = {"User-Agent": self.user_agent, **headers}
        sent.update(sign(method, (self.name, key), params, sent, self.keys(), self.region, now))
        return send_checked(self.pool, method, self.target(key), params, sent, what)

    def stat_of(self, headers: Headers, version_id: str | None) -> ObjectStat | None:
        size = content_length(headers)
        return None if size is None else oss_stat(headers, size, version_id)


class OssDirectBackend(DirectBackend):
    """:class:`~._direct.DirectBackend` on an :class:`OssDirectBucket`."""
