"""partdl: parallel, resumable, verified downloads of large objects and of trees.

>>> import oss2, partdl
>>> auth = oss2.ProviderAuthV4(oss2.credentials.EnvironmentVariableCredentialsProvider())
>>> bucket = oss2.Bucket(auth, "https://oss-cn-hangzhou.aliyuncs.com", "my-bucket",
...                      region="cn-hangzhou")
>>> partdl.download_file(bucket, "datasets/big.tar", "big.tar",
...                      part_size=8 * 1024 * 1024, task_num=8)
>>> partdl.download_prefix(bucket, "datasets/v3/", "data/", task_num=16)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .api import download_many, download_prefix
from .backend import Backend, RangeBody
from .backends import open_backend
from .backends._body import DEFAULT_STALL_TIMEOUT
from .backends.oss_v2 import OssV2Bucket
from .backends.s3 import S3Bucket
from .backends.subrange import ByteRange, narrowed
from .batch import BatchProgress, BatchResult, ObjectOutcome, Status
from .control import Control, ControlAction
from .crc import ChecksumAlgorithm
from .engine import download
from .errors import (
    AccessDeniedError,
    DownloadCancelledError,
    DownloadInterruptedError,
    DownloadLockedError,
    DownloadPausedError,
    IntegrityError,
    InvalidArgumentError,
    LocalFileError,
    NotFoundError,
    ObjectChangedError,
    PartdlError,
    PartialDownloadError,
    TransferError,
    UnsafeKeyError,
)
from .model import Checksum, DownloadResult, ObjectStat
from .options import DEFAULT_CHUNK_SIZE, DEFAULT_TASK_NUM, ProgressCallback
from .plan import DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE
from .retry import RetryPolicy
from .transfer import TransferOptions

if TYPE_CHECKING:
    from .backends.http import download_url

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PART_SIZE",
    "DEFAULT_TASK_NUM",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "AccessDeniedError",
    "Backend",
    "BatchProgress",
    "BatchResult",
    "ByteRange",
    "Checksum",
    "ChecksumAlgorithm",
    "Control",
    "ControlAction",
    "DownloadCancelledError",
    "DownloadInterruptedError",
    "DownloadLockedError",
    "DownloadPausedError",
    "DownloadResult",
    "IntegrityError",
    "InvalidArgumentError",
    "LocalFileError",
    "NotFoundError",
    "ObjectChangedError",
    "ObjectOutcome",
    "ObjectStat",
    "OssV2Bucket",
    "PartdlError",
    "PartialDownloadError",
    "RangeBody",
    "RetryPolicy",
    "S3Bucket",
    "Status",
    "TransferError",
    "TransferOptions",
    "UnsafeKeyError",
    "__version__",
    "download",
    "download_file",
    "download_many",
    "download_prefix",
    "download_url",
]


def download_file(
    bucket: Any,
    key: str,
    path: str | os.PathLike[str],
    part_size: int | None = None,
    task_num: int = DEFAULT_TASK_NUM,
    checkpoint: bool = True,
    *,
    checkpoint_file: str | os.PathLike[str] | None = None,
    progress_callback: ProgressCallback | None = None,
    version_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    control: Control | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    byte_range: ByteRange | tuple[int, int | None] | None = None,
    fsync: bool = True,
) -> DownloadResult:
    """Download ``key`` from ``bucket`` to ``path`` in parallel ranges, resumably.

    ``bucket`` is an ``oss2.Bucket``, an :class:`OssV2Bucket` (an OSS SDK V2 client and
    a bucket name), a :class:`S3Bucket` (a boto3 client and a bucket name) or a boto3
    ``s3.Bucket`` resource. ``part_size`` (100 KB to 5 GB; chosen from the
    object size when None) and ``task_num`` (parallel GETs) shape the transfer. With
    ``checkpoint`` a ``<path>.dcp`` file (or ``checkpoint_file``) records finished
    parts, so running the same call again after any interruption fetches only what is
    missing. ``progress_callback(consumed_bytes, total_bytes)`` is called from the
    calling thread. ``headers`` are sent with every request (request payer, traffic
    limit, ...). A connection that delivers nothing for ``stall_timeout`` seconds is
    abandoned and its part resumed on a new one, under ``retry``. The destination is
    replaced only once the whole file is in place and its checksum matches the server's.
    ``byte_range=(start, end)`` downloads only those bytes, ``end`` inclusive as in HTTP
    (``None`` for the end of the object). Once this returns, the file and the removal
    of its checkpoint survive a power cut; ``fsync=False`` skips every flush to disk
    (scratch data: the file is complete for every process at once, but after a power
    cut or an OS crash it may be missing, old or hold zeros where data was).

    Raises a :class:`PartdlError` subclass on failure; bad arguments raise
    :class:`InvalidArgumentError`, which is also a ``ValueError``.
    """
    whole = open_backend(
        bucket,
        key,
        version_id=version_id,
        headers=headers,
        pool_size=task_num,
        stall_timeout=stall_timeout,
    )
    return download(
        narrowed(whole, byte_range),
        path,
        part_size=part_size,
        task_num=task_num,
        checkpoint=checkpoint,
        checkpoint_file=checkpoint_file,
        progress_callback=progress_callback,
        retry=retry,
        control=control,
        chunk_size=chunk_size,
        fsync=fsync,
    )


def __getattr__(name: str) -> Any:
    # download_url is the one entry point that needs requests; importing it on first
    # use spares S3 users (botocore speaks urllib3 directly) ~40 ms of start-up.
    if name == "download_url":
        from .backends.http import download_url

        return download_url
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
