"""S3 and S3-compatible stores with no SDK: partdl's own HTTP client, signing V4 itself.

This is how the ``partdl`` command reaches s3:// when the keys are plain ones from
the environment and the endpoint is known (see :func:`partdl.cli.sources.s3_bucket`):
creating a boto3 client costs about 0.6 s of start-up, and botocore about 2.3 ms of
CPU a request, which on a tree of small objects is most of the run. HEAD, the ranged
and whole GETs and ListObjectsV2 are :mod:`._direct`'s, signed by :mod:`._s3_sign`;
the HEAD and a whole GET ask for the object's checksums (``x-amz-checksum-mode``),
and a full-object CRC is verified as :mod:`.s3` does through boto3.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ..model import ObjectStat
from ._direct import DirectBackend, StoreBucket
from ._http import content_length
from ._s3_sign import sign
from ._signing import Keys
from ._wire import Headers
from .s3 import full_object_checksum

# The answer's checksum headers under the names boto3 gives them, which
# s3.full_object_checksum reads.
_CHECKSUM_HEADERS = {
    "x-amz-checksum-crc64nvme": "ChecksumCRC64NVME",
    "x-amz-checksum-crc32c": "ChecksumCRC32C",
    "x-amz-checksum-crc32": "ChecksumCRC32",
    "x-amz-checksum-type": "ChecksumType",
}


@dataclass(frozen=True)
class S3DirectBucket(StoreBucket):
    """One S3 bucket at an endpoint, its region and keys, and the connections to it."""

    kind: ClassVar[str] = "S3"
    scheme: ClassVar[str] = "s3"
    payer_header: ClassVar[str] = "x-amz-request-payer"
    stat_headers: ClassVar[Mapping[str, str]] = {"x-amz-checksum-mode": "ENABLED"}

    keys: Keys = field(repr=False)
    virtual_host: bool = field(default=False, kw_only=True)
    """``bucket.endpoint`` (AWS's own endpoints) rather than ``endpoint/bucket``, which
    botocore uses for every endpoint it is given."""

    def _path_style(self) -> bool | None:
        return not self.virtual_host

    def _signature(
        self,
        method: str,
        key: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        now: datetime.datetime,
    ) -> dict[str, str]:
        host = self.pool.origin.host_header
        return sign(method, host, path, params, headers, self.keys, self.region, now)

    def stat_of(self, headers: Headers, version_id: str | None) -> ObjectStat | None:
        size = content_length(headers)
        if size is None:
            return None
        named = {
            name: value
            for header, name in _CHECKSUM_HEADERS.items()
            if (value := headers.get(header))
        }
        return ObjectStat(
            size=size,
            etag=headers.get("ETag"),
            last_modified=headers.get("Last-Modified"),
            checksum=full_object_checksum(named),
            version_id=headers.get("x-amz-version-id") or version_id,
        )


# A name that is one DNS label: what a virtual host over TLS takes (a dot would break
# the certificate's wildcard; botocore goes path style for the rest, on rules of its own).
_VIRTUAL_HOSTABLE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def aws_endpoint(bucket: str, region: str) -> str | None:
    """AWS's own endpoint for ``bucket`` in ``region`` (its virtual host is
    ``bucket.s3.region.amazonaws.com``), or None where botocore knows more: a name that
    is no DNS label, a directory bucket (``--x-s3``), the China partition, FIPS or dual
    stack endpoints asked for."""
    plain = _VIRTUAL_HOSTABLE.fullmatch(bucket) and not bucket.endswith("--x-s3")
    if not plain or not region or region.startswith("cn-"):
        return None
    if any(os.environ.get(f"AWS_USE_{what}_ENDPOINT") for what in ("FIPS", "DUALSTACK")):
        return None
    return f"https://s3.{region}.amazonaws.com"


class S3DirectBackend(DirectBackend):
    """:class:`~._direct.DirectBackend` on an :class:`S3DirectBucket`."""
