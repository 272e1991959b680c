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

from .api import download, download_file, download_many, download_prefix, download_url
from .backend import Backend, RangeBody
from .backends.oss_v2 import OssV2Bucket
from .backends.s3 import S3Bucket
from .backends.subrange import ByteRange
from .batch import BatchProgress, BatchResult, ObjectOutcome, Status
from .control import Control, ControlAction
from .crc import ChecksumAlgorithm
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
from .options import DEFAULT_TASK_NUM, TransferOptions
from .plan import DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE
from .retry import RetryPolicy

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
