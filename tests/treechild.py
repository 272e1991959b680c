"""A tree download in its own process, stopped at a known point for the parent to kill.

    python -m tests.treechild '{"endpoint": ..., "bucket": ..., "prefix": ..., "out": ...,
                                "part_size": ..., "task_num": ..., "stop": {...}}'

``stop`` is ``{"objects": N}`` (the calling thread stops once N objects are reported
done), ``{"bytes": N}`` (once N bytes are in, from the progress callback), or a file
event as in :mod:`tests.faultchild` (``{"event": "os.rename", "endswith": ".tmp",
"nth": 2}``). The child prints ``{"event": "stopped"}`` there and blocks that thread
for good; a run that ends prints ``{"event": "result"}``. Memory mode (``"list": N``)
plans a fake listing of N keys in a dry run and prints the peak RSS.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import partdl
from partdl.api import bucket_backend
from partdl.batch import Entry, run_batch
from partdl.listing import ListedObject
from partdl.options import TransferOptions
from tests.faultchild import POINTS, FilePoint, emit, stop_here
from tests.helpers import oss_bucket


def peak_rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _download(command: dict[str, Any]) -> None:
    bucket = oss_bucket(command["endpoint"], command["bucket"])
    stop = command.get("stop") or {}
    if "event" in stop:
        POINTS.armed = FilePoint(stop["event"], stop["endswith"], stop["nth"])
    done = 0

    def on_object(outcome: partdl.ObjectOutcome) -> None:
        nonlocal done
        done += 1
        if "objects" in stop and done >= stop["objects"]:
            stop_here(f"after {done} objects")

    def progress(value: partdl.BatchProgress) -> None:
        if "bytes" in stop and value.bytes_done >= stop["bytes"]:
            stop_here(f"at {value.bytes_done} bytes")

    partdl.download_prefix(
        bucket,
        command["prefix"],
        command["out"],
        part_size=command["part_size"],
        task_num=command["task_num"],
        on_object=on_object,
        progress_callback=progress,
    )
    emit(event="result")


def _listing(count: int) -> Iterator[ListedObject]:
    """A paginated listing's worth of keys, made as they are asked for."""
    for number in range(count):
        key = f"p/shard-{number // 1000:04}/object-{number:07}.bin"
        yield ListedObject(key, 4096, f'"{number:032x}"', "Mon, 01 Jan 2024 00:00:00 GMT")


def _plan_only(command: dict[str, Any]) -> None:
    """Plan ``command["list"]`` listed keys in a dry run: keys, claims, state, results."""
    options = TransferOptions()
    bucket = oss_bucket("http://127.0.0.1:9", "bucket")
    template = bucket_backend(bucket, "p/", options)
    entries = (
        Entry(o.key, o.key[2:], o, lambda key=o.key: template.for_key(key))  # type: ignore[misc]
        for o in _listing(command["list"])
    )
    before = peak_rss_kb()
    result = run_batch(
        entries,
        directory=command["out"],
        options=options,
        dry_run=True,
        progress_callback=None,
        on_object=None,
    )
    emit(event="memory", base_kb=before, peak_kb=peak_rss_kb(), planned=len(result.downloaded))


def main() -> None:
    sys.addaudithook(POINTS)
    command = json.loads(sys.argv[1])
    if "list" in command:
        _plan_only(command)
    else:
        _download(command)


if __name__ == "__main__":
    main()
