"""Alibaba Cloud OSS through an ``oss2.Bucket``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import oss2
import oss2.exceptions

from ..crc import ChecksumAlgorithm
from ..errors import (
    AccessDeniedError,
    NotFoundError,
    ObjectChangedDuringRead,
    PartdlError,
    TransientError,
)
from ..model import Checksum, ObjectStat
from ._body import NETWORK_ERRORS, Urllib3Body
from ._http import check_partial_response

_RETRYABLE_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"})


def _translate(exc: oss2.exceptions.OssError, what: str) -> PartdlError:
    """The one place oss2's errors become partdl's."""
    status, code = exc.status, getattr(exc, "code", "") or ""
    detail = f"{what}: HTTP {status} {code}".rstrip()
    if status == 404:
        return NotFoundError(detail)
    if status == 403:
        return AccessDeniedError(detail)
    if status == 412:
        return ObjectChangedDuringRead(detail)
    # oss2 reports connection failures as status -2 (RequestError).
    if status < 0 or status >= 500 or status == 429 or code in _RETRYABLE_CODES:
        return TransientError(detail)
    return PartdlError(detail)


class OssBackend:
    def __init__(
        self,
        bucket: oss2.Bucket,
        key: str,
        *,
        version_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._bucket = bucket
        self._key = key
        self._version_id = version_id
        self._headers = dict(headers or {})
        self._params = {"versionId": version_id} if version_id else None

    @property
    def source(self) -> str:
        return f"oss://{self._bucket.bucket_name}/{self._key}"

    def stat(self) -> ObjectStat:
        try:
            result = self._bucket.head_object(
                self._key, headers=dict(self._headers), params=self._params
            )
        except oss2.exceptions.OssError as exc:
            raise _translate(exc, f"HEAD {self.source}") from exc
        headers = result.headers
        crc = headers.get("x-oss-hash-crc64ecma")
        return ObjectStat(
            size=int(result.content_length),
            etag=headers.get("ETag"),
            last_modified=headers.get("Last-Modified"),
            checksum=Checksum(ChecksumAlgorithm.CRC64XZ, int(crc)) if crc else None,
            version_id=headers.get("x-oss-version-id") or self._version_id,
        )

    def read(self, start: int, end: int, stat: ObjectStat) -> Urllib3Body:
        headers = dict(self._headers)
        if stat.etag:
            headers["If-Match"] = stat.etag
        try:
            result = self._bucket.get_object(
                self._key, byte_range=(start, end - 1), headers=headers, params=self._params
            )
        except oss2.exceptions.OssError as exc:
            raise _translate(exc, f"GET {self.source} bytes {start}-{end - 1}") from exc
        except NETWORK_ERRORS as exc:
            raise TransientError(f"GET {self.source}: {exc!r}") from exc
        response: Any = result.resp.response
        body = Urllib3Body(response.raw, end - start)
        try:
            check_partial_response(result.status, result.headers, start, end, stat.size)
        except PartdlError:
            body.close()
            raise
        return body
