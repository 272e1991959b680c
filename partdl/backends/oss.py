"""Alibaba Cloud OSS through an ``oss2.Bucket``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import oss2
import oss2.exceptions
import requests
import requests.adapters

from ..crc import ChecksumAlgorithm
from ..errors import PartdlError, TransientError
from ..model import Checksum, ObjectStat
from ._body import NETWORK_ERRORS, Urllib3Body
from ._http import check_partial_response, error_class


def _translate(exc: oss2.exceptions.OssError, what: str) -> PartdlError:
    """The one place oss2's errors become partdl's."""
    status, code = exc.status, getattr(exc, "code", "") or ""
    if status < 0:
        # oss2 reports a failure to get any answer (refused, reset, timed out) as a
        # RequestError with a negative status; the wrapped exception's type says which.
        # Its text is left out: it carries the request URL.
        cause = getattr(exc, "exception", None)
        reason = type(cause).__name__ if cause is not None else type(exc).__name__
        return TransientError(f"{what}: no answer ({reason})")
    return error_class(status, code)(f"{what}: HTTP {status} {code}".rstrip())


def _sized_session(session: Any, pool_size: int | None) -> Any:
    """A copy of the caller's ``oss2.Session`` whose pool keeps ``pool_size`` connections.

    oss2 pools 10 connections per host (``oss2.defaults.connection_pool_size``); with
    more workers than that, requests opens a connection for every GET beyond the tenth
    and throws it away afterwards (a TCP and TLS handshake per part, and a urllib3
    warning). The copy shares everything else with the caller's session (proxies,
    TLS settings, cookies); it is made only when the caller's session uses requests'
    stock adapters, since a custom adapter is a choice the caller made. None: keep it.
    """
    inner = getattr(session, "session", None)
    if type(session) is not oss2.Session or not isinstance(inner, requests.Session):
        return None
    if isinstance(pool_size, bool) or not isinstance(pool_size, int):
        return None  # validated (and refused) with the other options later
    adapters: dict[str, requests.adapters.HTTPAdapter] = {}
    for prefix, adapter in inner.adapters.items():
        if type(adapter) is not requests.adapters.HTTPAdapter:
            return None
        adapters[prefix] = adapter
    if all(getattr(a, "_pool_maxsize", 0) >= pool_size for a in adapters.values()):
        return None
    sized = copy.copy(inner)  # requests' own pickling state: same settings, new object
    sized.adapters = type(inner.adapters)()
    for prefix, adapter in adapters.items():
        sized.mount(
            prefix,
            requests.adapters.HTTPAdapter(
                pool_connections=getattr(adapter, "_pool_connections", 10),
                pool_maxsize=max(pool_size, getattr(adapter, "_pool_maxsize", 0)),
                max_retries=adapter.max_retries,
                pool_block=getattr(adapter, "_pool_block", False),
            ),
        )
    outer = copy.copy(session)
    outer.session = sized
    return outer


def _private_bucket(bucket: oss2.Bucket, pool_size: int | None) -> oss2.Bucket:
    """A shallow copy of the caller's bucket for partdl's requests; theirs is untouched.

    With ``enable_crc`` (oss2's default) every GET builds a CRC adapter, and with it a
    crcmod table in pure Python (about 0.3 ms of CPU per request, holding the GIL),
    for a checksum oss2 never checks on a ranged GET. partdl reads the raw stream and
    checksums it itself, so the copy turns that off. See :func:`_sized_session`.
    """
    private = copy.copy(bucket)
    private.enable_crc = False
    session = _sized_session(bucket.session, pool_size)
    if session is not None:
        private.session = session
    return private


class OssBackend:
    def __init__(
        self,
        bucket: oss2.Bucket,
        key: str,
        *,
        version_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        stall_timeout: float | None = None,
        pool_size: int | None = None,
    ) -> None:
        self._bucket = _private_bucket(bucket, pool_size)
        self._key = key
        self._version_id = version_id
        self._stall_timeout = stall_timeout
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
        body = Urllib3Body(response.raw, end - start, stall_timeout=self._stall_timeout)
        try:
            check_partial_response(result.status, result.headers, start, end, stat.size)
        except PartdlError:
            body.close()
            raise
        return body
