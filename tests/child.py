"""A download in its own process, for tests that kill it or measure its memory.

    python -m tests.child ENDPOINT BUCKET KEY OUT PART_SIZE TASK_NUM [--block-at FRACTION]

Prints ``BASE <peak RSS kB>`` once imports are done, then ``PROGRESS <bytes>`` lines
and ``PEAK <peak RSS kB>`` at the end (VmHWM: ``ru_maxrss`` would include the RSS of
the forking parent, which Linux carries across exec);
with ``--block-at`` it prints ``BLOCKED`` once that fraction is in and waits on stdin
forever, so the parent can kill it at a known point without racing it.
"""

from __future__ import annotations

import argparse
import sys

import partdl
from tests.helpers import oss_bucket


def peak_rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("endpoint", "bucket", "key", "out"):
        parser.add_argument(name)
    parser.add_argument("part_size", type=int)
    parser.add_argument("task_num", type=int)
    parser.add_argument("--block-at", type=float)
    args = parser.parse_args()
    bucket = oss_bucket(args.endpoint, args.bucket)
    print(f"BASE {peak_rss_kb()}", flush=True)

    def progress(consumed: int, total: int) -> None:
        print(f"PROGRESS {consumed}", flush=True)
        if args.block_at is not None and consumed >= args.block_at * total:
            print("BLOCKED", flush=True)
            sys.stdin.read()

    partdl.download_file(
        bucket, args.key, args.out, args.part_size, args.task_num, progress_callback=progress
    )
    print(f"PEAK {peak_rss_kb()}", flush=True)


if __name__ == "__main__":
    main()
