"""partdl: parallel, resumable, verified downloads of large objects and of trees.

>>> import oss2, partdl
>>> auth = oss2.ProviderAuthV4(oss2.credentials.EnvironmentVariableCredentialsProvider())
>>> bucket = oss2.Bucket(auth, "https://oss-cn-hangzhou.aliyuncs.com", "my-bucket",
...                      region="cn-hangzhou")
>>> partdl.download_file(bucket, "datasets/big.tar", "big.tar",
...                      part_size=8 * 1024 * 1024, task_num=8)
>>> partdl.download_prefix(bucket, "datasets/v3/", "data/", task_num=16)

``import partdl`` loads none of this: each name is imported from its module when it
is first used (PEP 562), so a program or a command line that only imports partdl,
or downloads one object, does not pay for the HTTP stack or the tree layer (SQLite,
the batch planner) it does not use.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs more than partdl

if TYPE_CHECKING:
    from .api import download, download_file, download_many, download_prefix, download_url
    from .backend import Backend, RangeBody
    from .backends.oss_v2 import OssV2Bucket
    from .backends.s3 import S3Bucket
    from .backends.subrange import ByteRange
    from .batch import BatchFailure, BatchProgress, BatchResult
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
        ObjectChangedDuringRead,
        ObjectChangedError,
        PartdlError,
        PartialDownloadError,
        TransferError,
        TransientError,
        UnsafeKeyError,
    )
    from .execute import ObjectOutcome, Status
    from .model import Checksum, DownloadResult, ObjectStat
    from .options import DEFAULT_TASK_NUM, TransferOptions
    from .plan import DEFAULT_PART_SIZE, MAX_PART_SIZE, MAX_TASK_NUM, MIN_PART_SIZE
    from .retry import RetryPolicy

__version__ = "0.1.0"

# Where each public name lives; the batch names come from the module that defines
# them (execute), so taking ``partdl.Status`` does not load the planner.
_HOMES = {
    "api": ("download", "download_file", "download_many", "download_prefix", "download_url"),
    "backend": ("Backend", "RangeBody"),
    "backends.oss_v2": ("OssV2Bucket",),
    "backends.s3": ("S3Bucket",),
    "backends.subrange": ("ByteRange",),
    "batch": ("BatchFailure", "BatchProgress", "BatchResult"),
    "execute": ("ObjectOutcome", "Status"),
    "control": ("Control", "ControlAction"),
    "crc": ("ChecksumAlgorithm",),
    "errors": (
        "AccessDeniedError",
        "DownloadCancelledError",
        "DownloadInterruptedError",
        "DownloadLockedError",
        "DownloadPausedError",
        "IntegrityError",
        "InvalidArgumentError",
        "LocalFileError",
        "NotFoundError",
        "ObjectChangedDuringRead",
        "ObjectChangedError",
        "PartdlError",
        "PartialDownloadError",
        "TransferError",
        "TransientError",
        "UnsafeKeyError",
    ),
    "model": ("Checksum", "DownloadResult", "ObjectStat"),
    "options": ("DEFAULT_TASK_NUM", "TransferOptions"),
    "plan": ("DEFAULT_PART_SIZE", "MAX_PART_SIZE", "MAX_TASK_NUM", "MIN_PART_SIZE"),
    "retry": ("RetryPolicy",),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'partdl' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once loaded, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "DEFAULT_PART_SIZE",
    "DEFAULT_TASK_NUM",
    "MAX_PART_SIZE",
    "MAX_TASK_NUM",
    "MIN_PART_SIZE",
    "AccessDeniedError",
    "Backend",
    "BatchFailure",
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
    "ObjectChangedDuringRead",
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
    "TransientError",
    "UnsafeKeyError",
    "__version__",
    "download",
    "download_file",
    "download_many",
    "download_prefix",
    "download_url",
]
