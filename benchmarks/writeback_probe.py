"""How much of the final fsync can early writeback hide?  (Measurement only.)

    python -m benchmarks.writeback_probe DIR [--size-mib 1024] [--rounds 5]

Writes SIZE MiB into a fresh preallocated file under DIR the way partdl does (8
threads, 16 MiB parts, 1 MiB pwrites, paced at about 1 GiB/s as a loopback download
arrives), then fsyncs it; the wall time covers the writes and the fsync. Methods:

- ``none``: nothing until the final fsync (partdl before issue 10);
- ``sfr``: ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` of each part as it completes;
- ``fadvise``: ``posix_fadvise(POSIX_FADV_DONTNEED)`` of each part as it completes;
- ``fdatasync``: a helper thread runs ``fdatasync`` whenever parts completed since
  its last call;
- ``sfr-thread``: a helper thread runs ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` on
  each completed part, so no writer waits for the block layer;
- ``nosync``: ``sfr`` hints but no final fsync (what ``fsync=False`` costs);
- ``bare``: no hint and no fsync.

Methods alternate within each round and the file is deleted between runs; medians
and the spread are printed.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import queue
import statistics
import sys
import threading
import time

MiB = 1 << 20
PART = 16 * MiB
CHUNK = MiB
THREADS = 8
RATE = 1024 * MiB  # bytes per second, all threads together

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_sfr = _libc.sync_file_range
_sfr.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
SYNC_FILE_RANGE_WRITE = 2


def run(directory: str, size: int, method: str) -> float:  # noqa: PLR0915
    path = os.path.join(directory, f"probe-{method}.bin")
    if os.path.exists(path):
        os.unlink(path)
    os.sync()  # start every run with an empty writeback queue
    block = os.urandom(CHUNK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.posix_fallocate(fd, 0, size)
    parts = queue.Queue[int]()
    for start in range(0, size, PART):
        parts.put(start)
    dirty = threading.Event()
    finished = threading.Event()

    ranges = queue.Queue[tuple[int, int] | None]()

    def syncer() -> None:
        while not finished.is_set():
            dirty.wait()
            dirty.clear()
            os.fdatasync(fd)

    def ranger() -> None:
        while (item := ranges.get()) is not None:
            _sfr(fd, item[0], item[1], SYNC_FILE_RANGE_WRITE)

    helper = threading.Thread(target=ranger if method == "sfr-thread" else syncer, daemon=True)
    if method in ("fdatasync", "sfr-thread"):
        helper.start()
    per_thread = RATE / THREADS
    began = time.monotonic()

    def worker() -> None:
        written = 0
        start_time = time.monotonic()
        while True:
            try:
                start = parts.get_nowait()
            except queue.Empty:
                return
            end = min(start + PART, size)
            for offset in range(start, end, CHUNK):
                os.pwrite(fd, block[: min(CHUNK, end - offset)], offset)
                written += CHUNK
                ahead = written / per_thread - (time.monotonic() - start_time)
                if ahead > 0:
                    time.sleep(ahead)
            if method in ("sfr", "nosync"):
                _sfr(fd, start, end - start, SYNC_FILE_RANGE_WRITE)
            elif method == "fadvise":
                os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)
            elif method == "fdatasync":
                dirty.set()
            elif method == "sfr-thread":
                ranges.put((start, end - start))

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished.set()
    dirty.set()
    ranges.put(None)
    if method in ("fdatasync", "sfr-thread"):
        helper.join()
    if method not in ("nosync", "bare"):
        os.fsync(fd)
    elapsed = time.monotonic() - began
    os.close(fd)
    os.unlink(path)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--methods", default="none,sfr,sfr-thread,fadvise,fdatasync,nosync,bare")
    args = parser.parse_args()
    methods = args.methods.split(",")
    times: dict[str, list[float]] = {method: [] for method in methods}
    for number in range(args.rounds):
        order = methods if number % 2 == 0 else methods[::-1]
        for method in order:
            times[method].append(run(args.directory, args.size_mib * MiB, method))
            print(f"round {number} {method:9s} {times[method][-1]:.2f} s", file=sys.stderr)
    for method, values in times.items():
        print(
            f"{method:9s} median {statistics.median(values):.2f} s  "
            f"min {min(values):.2f}  max {max(values):.2f}  "
            f"({', '.join(f'{v:.2f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
