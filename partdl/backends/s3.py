"""Amazon S3 and S3-compatible stores through a boto3 client.

Nothing here imports boto3 or botocore at module level: :class:`S3Bucket` is part of
partdl's public API, and ``import partdl`` must work for users who only have oss2.
botocore is imported when an :class:`S3Backend` is made.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ..crc import ChecksumAlgorithm, available
from ..errors import (
    AccessDeniedError,
    InvalidArgumentError,
    PartdlError,
    TransientError,
)
from ..listing import ListedObject, http_date, quoted_etag
from ..model import Checksum, ObjectStat
from ..plan import DEFAULT_STALL_TIMEOUT
from ._http import check_partial_response, error_class

if TYPE_CHECKING:
    from ._body import Urllib3Body


class S3ExtraArgs(TypedDict, total=False):
    """Options sent with every HeadObject and GetObject, named as boto3 names them."""

    RequestPayer: Literal["requester"]
    ExpectedBucketOwner: str
    SSECustomerAlgorithm: str
    SSECustomerKey: str
    SSECustomerKeyMD5: str


EXTRA_ARGS: frozenset[str] = S3ExtraArgs.__optional_keys__


@dataclass(frozen=True, slots=True)
class S3Bucket:
    """A boto3 S3 client and a bucket name: how :func:`partdl.download_file` reaches S3.

    >>> bucket = partdl.S3Bucket(boto3.client("s3"), "my-bucket")
    >>> partdl.download_file(bucket, "datasets/big.tar", "big.tar")

    ``extra_args`` go with every request (see :class:`S3ExtraArgs`), e.g.
    ``{"RequestPayer": "requester"}`` or the SSE-C key; they are left out of ``repr``
    because that key is a secret. A boto3 ``s3.Bucket`` resource may be passed to
    ``download_file`` directly instead.
    """

    client: Any
    name: str
    extra_args: S3ExtraArgs | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgumentError(f"bucket name must be a non-empty string, got {self.name!r}")
        operations = ("head_object", "get_object")
        if not all(callable(getattr(self.client, op, None)) for op in operations):
            raise InvalidArgumentError(
                f"client must be a boto3 S3 client such as boto3.client('s3'), "
                f"got {type(self.client).__qualname__}"
            )
        unknown = set(self.extra_args or {}) - EXTRA_ARGS
        if unknown:
            raise InvalidArgumentError(
                f"unsupported extra_args {sorted(unknown)}; partdl sends {sorted(EXTRA_ARGS)}"
            )

    @classmethod
    def from_resource(cls, bucket: Any) -> S3Bucket:
        """The client and name of a boto3 ``s3.Bucket`` resource."""
        return cls(bucket.meta.client, bucket.name)

    def __reduce__(self) -> tuple[Any, ...]:
        # A client does not pickle: another process gets a new one from the same
        # recipe (see partdl/backends/_s3_client.py for what travels).
        from ._s3_client import ClientRecipe

        return (_rebuilt, (ClientRecipe.of(self.client), self.name, self.extra_args))


def _rebuilt(recipe: Any, name: str, extra_args: S3ExtraArgs | None) -> S3Bucket:
    return S3Bucket(recipe.build(), name, extra_args)


# HeadObject fields, in the order they are preferred; S3 publishes one at most.
_CHECKSUM_FIELDS = (
    ("ChecksumCRC64NVME", ChecksumAlgorithm.CRC64NVME),
    ("ChecksumCRC32C", ChecksumAlgorithm.CRC32C),
    ("ChecksumCRC32", ChecksumAlgorithm.CRC32),
)
# A multipart upload's part count, as S3 appends it to composite checksums and ETags.
_PART_COUNT = re.compile(r"-\d+$")


def full_object_checksum(head: Mapping[str, Any]) -> Checksum | None:
    """The whole-object CRC a HeadObject answer (``ChecksumMode=ENABLED``) publishes.

    Only a FULL_OBJECT CRC can be rebuilt from parts of partdl's choosing. A COMPOSITE
    checksum (multipart uploads: a checksum of the parts' checksums, shown as
    ``value-N``) depends on the upload's part boundaries, so None is returned for it.
    Without an explicit ``ChecksumType`` (older servers and most S3-compatible stores)
    a value is trusted only if neither it nor the ETag ends in a ``-N`` part count,
    that is, only for an object uploaded in one piece. SHA checksums are not used,
    nor one this installation cannot compute (:func:`partdl.crc.available`).
    """
    kind = head.get("ChecksumType")
    if kind not in (None, "FULL_OBJECT"):
        return None
    for name, algorithm in _CHECKSUM_FIELDS:
        value = head.get(name)
        if not isinstance(value, str) or not value:
            continue
        etag = str(head.get("ETag") or "").strip('"')
        if _PART_COUNT.search(value) or (kind is None and _PART_COUNT.search(etag)):
            return None
        if not available(algorithm):  # CRC-64/NVME with neither anycrc nor awscrt
            return None
        return _decode_crc(value, algorithm)
    return None


def _decode_crc(value: str, algorithm: ChecksumAlgorithm) -> Checksum | None:
    """S3 sends a CRC as the base64 of its big-endian bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != algorithm.width // 8:
        return None
    return Checksum(algorithm, int.from_bytes(raw, "big"))


def _translate(exc: BaseException, what: str) -> PartdlError:
    """The one place botocore's errors become partdl's."""
    from botocore import exceptions as sdk

    from ._body import NETWORK_ERRORS

    if isinstance(exc, sdk.ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(error.get("Code") or "")
        # An answer without a body (a HEAD's) has its status for a code.
        shown = "" if code == str(status) else code
        return error_class(status, code)(f"{what}: HTTP {status} {shown}".rstrip())
    if isinstance(exc, sdk.NoCredentialsError | sdk.PartialCredentialsError):
        return AccessDeniedError(f"{what}: no usable AWS credentials ({exc})")
    if isinstance(exc, sdk.ParamValidationError):
        return InvalidArgumentError(f"{what}: {exc}")
    # A certificate that does not verify will not verify on a retry either.
    if isinstance(exc, sdk.SSLError):
        return PartdlError(f"{what}: {exc}")
    if isinstance(exc, sdk.HTTPClientError | sdk.ConnectionError | sdk.IncompleteReadError):
        return TransientError(f"{what}: {exc}")
    if isinstance(exc, NETWORK_ERRORS):
        return TransientError(f"{what}: {exc!r}")
    return PartdlError(f"{what}: {exc}")


class S3Backend:
    """One S3 object.

    The HEAD asks for checksums (``ChecksumMode=ENABLED``); a FULL_OBJECT CRC64NVME,
    CRC32C or CRC32 becomes ``stat.checksum``, so the engine checksums each part with
    the same algorithm and compares the combined value. Every ranged GET sends
    ``IfMatch`` with the HEAD's ETag, and ``VersionId`` when a version was asked for.
    """

    def __init__(
        self,
        bucket: S3Bucket,
        key: str,
        *,
        version_id: str | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
    ) -> None:
        from botocore import exceptions as sdk

        from ._body import NETWORK_ERRORS

        self._stall_timeout = stall_timeout
        self._bucket = bucket
        self._client = bucket.client
        self._name = bucket.name
        self._key = key
        self._version_id = version_id
        self._options: dict[str, Any] = {"Bucket": bucket.name, "Key": key}
        self._options.update(bucket.extra_args or {})
        if version_id:
            self._options["VersionId"] = version_id
        self._sdk_errors: tuple[type[BaseException], ...] = (
            sdk.ClientError,
            sdk.BotoCoreError,
            *NETWORK_ERRORS,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # For a task on another process: the bucket pickles as a client recipe.
        return (
            _rebuilt_backend,
            (self._bucket, self._key, self._version_id, self._stall_timeout),
        )

    @property
    def source(self) -> str:
        return f"s3://{self._name}/{self._key}"

    def stat(self) -> ObjectStat:
        head = self._call(f"HEAD {self.source}", self._client.head_object, ChecksumMode="ENABLED")
        headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return ObjectStat(
            size=int(head["ContentLength"]),
            etag=head.get("ETag"),
            # The header as sent, like the other backends, rather than boto3's datetime.
            last_modified=headers.get("last-modified"),
            checksum=full_object_checksum(head),
            version_id=head.get("VersionId") or self._version_id,
        )

    def read(self, start: int, end: int, stat: ObjectStat) -> Urllib3Body:
        what = f"GET {self.source} bytes {start}-{end - 1}"
        conditions = {"IfMatch": stat.etag} if stat.etag else {}
        response = self._call(
            what, self._client.get_object, Range=f"bytes={start}-{end - 1}", **conditions
        )
        # botocore's StreamingBody wraps the urllib3 response; read that directly.
        raw = response["Body"]._raw_stream
        body = _body(raw, end - start, self._stall_timeout)
        try:
            status = int(response["ResponseMetadata"]["HTTPStatusCode"])
            check_partial_response(status, raw.headers, start, end, stat)
        except PartdlError:
            body.close()
            raise
        return body

    def _call(self, what: str, operation: Callable[..., Any], **options: Any) -> Any:
        try:
            return operation(**self._options, **options)
        except self._sdk_errors as exc:
            raise _translate(exc, what) from exc

    # -- trees of objects (partdl.batch) -----------------------------------------------

    def for_key(self, key: str) -> S3Backend:
        """The backend for another key of this bucket, on the same client."""
        sibling = copy.copy(self)
        sibling._key = key
        sibling._version_id = None
        sibling._options = {**self._options, "Key": key}
        sibling._options.pop("VersionId", None)
        return sibling

    def read_whole(self, etag: str | None) -> tuple[ObjectStat, Urllib3Body]:
        """GET the whole object with ``ChecksumMode=ENABLED``; the stat is the answer's."""
        conditions = {"IfMatch": etag} if etag else {}
        response = self._call(
            f"GET {self.source}", self._client.get_object, ChecksumMode="ENABLED", **conditions
        )
        raw = response["Body"]._raw_stream
        size = int(response.get("ContentLength", -1))
        body = _body(raw, max(size, 0), self._stall_timeout)
        status = int(response["ResponseMetadata"]["HTTPStatusCode"])
        if status != 200 or size < 0:
            body.close()
            raise TransientError(f"GET {self.source}: expected HTTP 200, got {status}")
        headers = response["ResponseMetadata"].get("HTTPHeaders", {})
        stat = ObjectStat(
            size=size,
            etag=response.get("ETag"),
            last_modified=headers.get("last-modified"),
            checksum=full_object_checksum(response),
            version_id=response.get("VersionId") or self._version_id,
        )
        return stat, body

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Every object under ``prefix`` through the ``list_objects_v2`` paginator."""
        options = {"Bucket": self._name, "Prefix": prefix}
        options.update(
            {k: v for k, v in self._options.items() if k in ("RequestPayer", "ExpectedBucketOwner")}
        )
        what = f"LIST s3://{self._name}/{prefix}"
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                **options, PaginationConfig={"PageSize": 1000}
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    modified = item.get("LastModified")
                    yield ListedObject(
                        key=item["Key"],
                        size=int(item["Size"]),
                        etag=quoted_etag(item.get("ETag")),
                        last_modified=http_date(modified) if modified is not None else None,
                    )
        except self._sdk_errors as exc:
            raise _translate(exc, what) from exc


def _body(raw: Any, length: int, stall_timeout: float | None) -> Urllib3Body:
    # Imported here: urllib3 comes with botocore, not with ``import partdl``.
    from ._body import Urllib3Body

    return Urllib3Body(raw, length, stall_timeout=stall_timeout)


def _rebuilt_backend(
    bucket: S3Bucket, key: str, version_id: str | None, stall_timeout: float | None
) -> S3Backend:
    return S3Backend(bucket, key, version_id=version_id, stall_timeout=stall_timeout)
