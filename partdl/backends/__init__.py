"""Backends, one small module each, chosen by the type of the ``bucket`` given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..backend import Backend
from ..errors import InvalidArgumentError


def open_backend(
    bucket: Any,
    key: str,
    *,
    version_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Backend:
    """The backend for ``bucket``: an ``oss2.Bucket`` (or anything already a Backend).

    The SDK modules are imported only when such a bucket is passed, so partdl works
    with just the SDK its user has.
    """
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"key must be a non-empty string, got {key!r}")
    module = type(bucket).__module__
    if module.startswith("oss2"):
        from .oss import OssBackend

        return OssBackend(bucket, key, version_id=version_id, headers=headers)
    raise InvalidArgumentError(
        f"unsupported bucket type {type(bucket).__qualname__}: pass an oss2.Bucket"
    )
