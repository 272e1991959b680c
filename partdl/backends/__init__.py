"""Backends, one small module each, chosen by the type of the ``bucket`` given."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from ..backend import Backend
from ..errors import InvalidArgumentError
from ..plan import DEFAULT_STALL_TIMEOUT, validate_stall_timeout


def _is_instance(bucket: Any, module: str, name: str) -> bool:
    """Whether ``bucket`` is a ``partdl.backends.<module>.<name>``: a bucket of that
    class exists only once its module is loaded, so none is imported to tell."""
    loaded = sys.modules.get(f"{__name__}.{module}")
    return loaded is not None and isinstance(bucket, getattr(loaded, name))


def open_backend(
    bucket: Any,
    key: str,
    *,
    version_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    pool_size: int | None = None,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
) -> Backend:
    """The backend for ``bucket``: an ``oss2.Bucket``, an :class:`OssV2Bucket`, an
    :class:`S3Bucket` or a boto3 ``s3.Bucket`` resource.

    The SDK modules are imported only when such a bucket is passed, so partdl works
    with just the SDK its user has. ``pool_size`` (the download's ``task_num``) is how
    many connections the backend should keep for reuse; ``stall_timeout`` is how long
    a body may go without delivering a byte before its connection is abandoned.
    """
    validate_stall_timeout(stall_timeout)
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"key must be a non-empty string, got {key!r}")
    module = type(bucket).__module__
    if module.startswith("oss2"):
        from .oss import OssBackend, refuse_client_side_encryption

        refuse_client_side_encryption(bucket)
        return OssBackend(
            bucket,
            key,
            version_id=version_id,
            headers=headers,
            pool_size=pool_size,
            stall_timeout=stall_timeout,
        )
    if _is_instance(bucket, "oss_direct", "OssDirectBucket"):
        from .oss_direct import OssDirectBackend

        return OssDirectBackend(
            bucket, key, version_id=version_id, headers=headers, stall_timeout=stall_timeout
        )
    if _is_instance(bucket, "s3_direct", "S3DirectBucket"):
        from .s3_direct import S3DirectBackend

        return S3DirectBackend(
            bucket, key, version_id=version_id, headers=headers, stall_timeout=stall_timeout
        )
    if _is_instance(bucket, "oss_v2", "OssV2Bucket"):
        from .oss_v2 import OssV2Backend

        return OssV2Backend(
            bucket, key, version_id=version_id, headers=headers, stall_timeout=stall_timeout
        )
    # A boto3 resource's class is generated at run time: it is known by its name.
    is_resource = module.startswith("boto3.") and type(bucket).__name__ == "s3.Bucket"
    if _is_instance(bucket, "s3", "S3Bucket") or is_resource:
        if headers:
            raise InvalidArgumentError(
                "headers are for OSS; pass S3 request options as "
                "partdl.S3Bucket(client, name, extra_args={...})"
            )
        from .s3 import S3Backend, S3Bucket

        s3_bucket = bucket if isinstance(bucket, S3Bucket) else S3Bucket.from_resource(bucket)
        return S3Backend(s3_bucket, key, version_id=version_id, stall_timeout=stall_timeout)
    raise InvalidArgumentError(
        f"unsupported bucket type {type(bucket).__qualname__}: pass an oss2.Bucket, "
        "a partdl.OssV2Bucket, a partdl.S3Bucket or a boto3 s3.Bucket"
    )
