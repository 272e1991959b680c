"""Small helpers shared by the download tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PART = 100 * 1024  # the smallest part size: many parts from small objects
# The region every test's OSS client signs V4 for; the local store checks no signature.
OSS_REGION = "cn-hangzhou"


def oss_bucket(endpoint: str, name: str, **options: Any) -> Any:
    """An oss2 bucket signing V4, as OSS requires today; ``options`` go to ``oss2.Bucket``.

    Here rather than in tests/store.py so that child processes need not import moto.
    """
    import oss2

    auth = oss2.ProviderAuthV4(oss2.credentials.StaticCredentialsProvider("test", "test"))
    return oss2.Bucket(auth, endpoint, name, region=OSS_REGION, **options)


class Interrupt(Exception):
    """Raised from a progress callback to stop a download part-way."""


def stop_after(fraction: float) -> Any:
    """A progress callback that raises once ``fraction`` of the bytes are in."""

    def callback(consumed: int, total: int) -> None:
        if total and consumed >= fraction * total:
            raise Interrupt(f"stopped at {consumed} of {total}")

    return callback


def leftovers(directory: Path, *keep: str) -> list[str]:
    """Everything in ``directory`` except the named files."""
    return sorted(name for name in os.listdir(directory) if name not in keep)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The header line of a checkpoint (JSON Lines: a header, then part records)."""
    header = path.read_bytes().split(b"\n")[0]
    document: dict[str, Any] = json.loads(header)["checkpoint"]
    return document


def recorded_parts(checkpoint: Path) -> dict[int, int]:
    """Parts in the header plus those appended to the journal since."""
    parts = {index: crc for index, crc in read_checkpoint(checkpoint)["parts"]}
    for line in checkpoint.read_bytes().split(b"\n")[1:]:
        if line:
            record = json.loads(line)
            parts[record["part"]] = record["crc"]
    return parts
