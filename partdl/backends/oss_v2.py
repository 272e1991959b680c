"""Alibaba Cloud OSS through the OSS SDK V2 (``alibabacloud_oss_v2.Client``).

Nothing here imports the SDK at module level: :class:`OssV2Bucket` is part of
partdl's public API, and ``import partdl`` must work for users who only have oss2 or
boto3. ``alibabacloud_oss_v2`` is imported when an :class:`OssV2Backend` is made.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import AccessDeniedError, InvalidArgumentError, PartdlError, TransientError
from ..listing import ListedObject, http_date, quoted_etag
from ..model import ObjectStat
from ..plan import DEFAULT_STALL_TIMEOUT
from ._http import check_partial_response, error_class, oss_stat

if TYPE_CHECKING:
    from ._body import Urllib3Body

# urllib3 (behind ``_body``) comes with the SDK: it is imported where the SDK is used,
# not by ``import partdl``.


@dataclass(frozen=True, slots=True)
class OssV2Bucket:
    """An OSS SDK V2 client and a bucket name: how :func:`partdl.download_file` reaches
    OSS through ``alibabacloud-oss-v2``.

    >>> import alibabacloud_oss_v2 as oss
    >>> config = oss.config.load_default()
    >>> config.region = "cn-hangzhou"
    >>> config.credentials_provider = oss.credentials.EnvironmentVariableCredentialsProvider()
    >>> bucket = partdl.OssV2Bucket(oss.Client(config), "my-bucket")
    >>> partdl.download_file(bucket, "datasets/big.tar", "big.tar")

    The client signs (V4 by default), resolves the endpoint from its region and
    retries failed requests as it was configured to; partdl adds ``If-Match`` and the
    ``Range`` to every GET and checks the answers. It holds nothing but the client and
    the name, so what is needed to build it again elsewhere is the client's ``Config``.
    """

    client: Any
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgumentError(f"bucket name must be a non-empty string, got {self.name!r}")
        operations = ("head_object", "get_object")
        if not all(callable(getattr(self.client, op, None)) for op in operations):
            raise InvalidArgumentError(
                "client must be an alibabacloud_oss_v2.Client, "
                f"got {type(self.client).__qualname__}"
            )


# The code the SDK reports when an error answer has no XML body (any HEAD): no code.
_NO_CODE = "BadErrorResponse"


def _translate(exc: BaseException, what: str) -> PartdlError:
    """The one place the OSS SDK V2's errors become partdl's."""
    from alibabacloud_oss_v2 import exceptions as sdk

    # Every operation wraps what went wrong in an OperationError.
    cause = exc.unwrap() if isinstance(exc, sdk.OperationError) else exc
    if isinstance(cause, sdk.ServiceError):
        status = int(cause.status_code or 0)
        code = "" if cause.code in (None, _NO_CODE) else str(cause.code)
        return error_class(status, code)(f"{what}: HTTP {status} {code}".rstrip())
    if isinstance(cause, sdk.CredentialsBaseError):
        return AccessDeniedError(f"{what}: no usable OSS credentials ({cause})")
    if isinstance(cause, sdk.RequestError | sdk.ResponseError):
        # Its text is left out: it carries the request URL.
        inner = cause.unwrap()
        reason = type(inner).__name__ if inner is not None else type(cause).__name__
        return TransientError(f"{what}: no answer ({reason})")
    if isinstance(
        cause,
        sdk.ParamInvalidError
        | sdk.ParamNullError
        | sdk.ParamNullOrEmptyError
        | sdk.ParamRequiredError
        | sdk.BucketNameInvalidError
        | sdk.ObjectNameInvalidError,
    ):
        return InvalidArgumentError(f"{what}: {cause}")
    from ._body import NETWORK_ERRORS

    if isinstance(cause, NETWORK_ERRORS):
        return TransientError(f"{what}: {cause!r}")
    return PartdlError(f"{what}: {cause}")


def _raw_stream(body: Any) -> Any:
    """The urllib3 response under the SDK's ``StreamBodyReader``, or None.

    With the SDK's own ``RequestsHttpClient`` the body is a requests response read
    in streaming mode; its urllib3 response fills a buffer without a copy and exposes
    the socket the stall timeout is set on. The SDK publishes neither, so they are
    looked up by name; another HTTP client gets the generic :class:`_ChunkBody`.
    """
    import urllib3

    response = getattr(getattr(body, "_response", None), "_internal_response", None)
    raw = getattr(response, "raw", None)
    return raw if isinstance(raw, urllib3.response.HTTPResponse) else None


class _ChunkBody:
    """A body from the SDK's ``iter_bytes`` for an HTTP client partdl cannot see into.

    A stall is bounded by that client's own read timeout (``readwrite_timeout``).
    """

    def __init__(self, body: Any, length: int) -> None:
        from ._body import NETWORK_ERRORS

        self._errors = NETWORK_ERRORS
        self._body = body
        self._chunks: Iterator[bytes] = iter(body.iter_bytes())
        self._pending = memoryview(b"")
        self._remaining = length

    def readinto(self, buffer: memoryview, /) -> int:
        if not self._pending:
            try:
                self._pending = memoryview(next(self._chunks, b""))
            except self._errors as exc:  # requests' errors are OSErrors
                raise TransientError(f"connection failed mid-body: {exc!r}") from exc
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self._remaining -= count
        return count

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._body.close()  # an unfinished body takes its connection down with it


class OssV2Backend:
    """One OSS object through an ``alibabacloud_oss_v2.Client``.

    ``headers`` (request payer, traffic limit, ...) go with every HEAD and GET, as
    with oss2. The HEAD's ``x-oss-hash-crc64ecma`` becomes ``stat.checksum``; every
    GET sends ``If-Match`` with the HEAD's ETag and the version asked for.
    """

    def __init__(
        self,
        bucket: OssV2Bucket,
        key: str,
        *,
        version_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
    ) -> None:
        from alibabacloud_oss_v2 import exceptions, models

        from ._body import NETWORK_ERRORS

        self._models = models
        self._client = bucket.client
        self._name = bucket.name
        self._key = key
        self._version_id = version_id
        self._headers = dict(headers or {})
        self._stall_timeout = stall_timeout
        self._sdk_errors: tuple[type[BaseException], ...] = (
            exceptions.BaseError,
            *NETWORK_ERRORS,
        )

    @property
    def source(self) -> str:
        return f"oss://{self._name}/{self._key}"

    def _request(self, kind: Any, **fields: Any) -> Any:
        # The mapping is copied: the SDK adds its own headers to the one it is given.
        return kind(
            bucket=self._name,
            key=self._key,
            version_id=self._version_id,
            headers=dict(self._headers),
            **fields,
        )

    def stat(self) -> ObjectStat:
        what = f"HEAD {self.source}"
        try:
            result = self._client.head_object(self._request(self._models.HeadObjectRequest))
        except self._sdk_errors as exc:
            raise _translate(exc, what) from exc
        return self._stat_of(result.headers, int(result.headers["Content-Length"]))

    def _stat_of(self, headers: Mapping[str, str], size: int) -> ObjectStat:
        return oss_stat(headers, size, self._version_id)

    def _body(self, result: Any, length: int) -> Urllib3Body | _ChunkBody:
        from ._body import Urllib3Body

        raw = _raw_stream(result.body)
        if raw is not None:
            return Urllib3Body(raw, length, stall_timeout=self._stall_timeout)
        return _ChunkBody(result.body, length)

    def read(self, start: int, end: int, stat: ObjectStat) -> Urllib3Body | _ChunkBody:
        what = f"GET {self.source} bytes {start}-{end - 1}"
        request = self._request(
            self._models.GetObjectRequest,
            range_header=f"bytes={start}-{end - 1}",
            if_match=stat.etag or None,
        )
        try:
            result = self._client.get_object(request)
        except self._sdk_errors as exc:
            raise _translate(exc, what) from exc
        body = self._body(result, end - start)
        try:
            check_partial_response(result.status_code, result.headers, start, end, stat)
        except PartdlError:
            body.close()
            raise
        return body

    # -- trees of objects (partdl.batch) -----------------------------------------------

    def for_key(self, key: str) -> OssV2Backend:
        """The backend for another key of this bucket, on the same client."""
        sibling = copy.copy(self)
        sibling._key = key
        sibling._version_id = None
        return sibling

    def read_whole(self, etag: str | None) -> tuple[ObjectStat, Urllib3Body | _ChunkBody]:
        """GET the whole object; its stat comes from the answer's headers, not a HEAD."""
        what = f"GET {self.source}"
        request = self._request(self._models.GetObjectRequest, if_match=etag or None)
        try:
            result = self._client.get_object(request)
        except self._sdk_errors as exc:
            raise _translate(exc, what) from exc
        length = str(result.headers.get("Content-Length", ""))
        size = int(length) if length.isdigit() else -1
        body = self._body(result, max(size, 0))
        if result.status_code != 200 or size < 0:
            body.close()
            raise TransientError(f"{what}: expected HTTP 200 with a Content-Length")
        return self._stat_of(result.headers, size), body

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Every object under ``prefix`` (the SDK's ListObjectsV2 paginator), a page at a time."""
        payer = next(
            (v for k, v in self._headers.items() if k.lower() == "x-oss-request-payer"), None
        )
        request = self._models.ListObjectsV2Request(
            bucket=self._name, prefix=prefix, max_keys=1000, request_payer=payer
        )
        what = f"LIST oss://{self._name}/{prefix}"
        try:
            for page in self._client.list_objects_v2_paginator().iter_page(request):
                for info in page.contents or ():
                    modified = info.last_modified
                    yield ListedObject(
                        key=info.key,
                        size=int(info.size),
                        etag=quoted_etag(info.etag),
                        last_modified=http_date(modified) if modified is not None else None,
                    )
        except self._sdk_errors as exc:
            raise _translate(exc, what) from exc
