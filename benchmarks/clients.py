"""The Python contenders, one per process: ``python -m benchmarks.clients KIND ...``.

Each run is a whole process so that its wall time includes what a user waits for
(interpreter, imports, HEAD) and its peak RSS is its own. It prints one JSON line,
``{"seconds": <time inside the download call>, "peak_rss": <VmHWM bytes>, "cpu_self":
<this process's CPU s>, "cpu_workers": <its waited-for children's CPU s>}``, which the
runner records next to the process's wall time and polled peak RSS.

With ``--prefix`` the partdl kinds fetch a tree (``download_prefix``) into ``--dest``,
a directory; ``--processes N`` runs it on a ``ProcessPoolExecutor(N)`` (spawn).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from typing import Any

# The object is served at /<bucket>/<name> whatever the bucket; these only tell the
# requests apart in a packet capture.
OSS_BUCKET, S3_BUCKET, PLAIN_PREFIX = "oss", "s3", "plain"
_MiB = 1024 * 1024  # not partdl.plan.MiB: the floor client imports nothing of partdl


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    kind: str
    endpoint: str
    name: str
    dest: str
    part_size: int | None
    task_num: int
    checkpoint: bool
    crc: bool
    chunk_size: int | None
    fsync: bool = True
    prefix: str | None = None
    """partdl only: fetch the tree under this prefix into ``dest``, a directory."""
    processes: int = 1
    dry_run: bool = False


def supports_no_fsync(kind: str) -> bool:
    """Whether this partdl's entry point for ``kind`` takes ``fsync=False`` (added by
    issue 10; older code has none)."""
    import partdl

    entry = partdl.download_url if kind == "partdl-http" else partdl.download_file
    return "fsync" in inspect.signature(entry).parameters


def _boto3_options(request: Request) -> dict[str, Any]:
    """What boto3 clients are built with, for the same server and pool."""
    from botocore.config import Config

    return {
        "endpoint_url": request.endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "bench",
        "aws_secret_access_key": "bench",
        # Every contender gets a pool that holds all of its workers' connections.
        "config": Config(s3={"addressing_style": "path"}, max_pool_connections=request.task_num),
    }


def _boto3_client(request: Request) -> Any:
    import boto3

    return boto3.client("s3", **_boto3_options(request))


def _oss2_bucket(request: Request) -> Any:
    import oss2

    oss2.defaults.connection_pool_size = max(oss2.defaults.connection_pool_size, request.task_num)
    # V4 with a region, as OSS requires today (and as partdl's CLI signs).
    auth = oss2.ProviderAuthV4(oss2.credentials.StaticCredentialsProvider("bench", "bench"))
    return oss2.Bucket(
        auth, request.endpoint, OSS_BUCKET, enable_crc=request.crc, region="cn-hangzhou"
    )


def _without_crc() -> None:
    """Measurement only: make partdl skip every checksum, to price the CRC work.

    The parts' CRC function becomes a no-op and the backend stops publishing the
    server's checksum (it would no longer match); nothing else changes.
    """
    from partdl import crc

    def no_crc(value: int, data: crc.Buffer) -> int:
        return value

    for algorithm in crc.ChecksumAlgorithm:
        crc._UPDATERS[algorithm] = no_crc


class _NoChecksum:
    """A Backend that hides the server's whole-object checksum (with ``_without_crc``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def source(self) -> str:
        return str(self._inner.source)

    def stat(self) -> Any:
        return dataclasses.replace(self._inner.stat(), checksum=None)

    def read(self, start: int, end: int, stat: Any) -> Any:
        return self._inner.read(start, end, stat)


Call = Callable[[], object]


def _partdl_tree(request: Request, bucket: Any, options: dict[str, Any]) -> Call:
    """``download_prefix`` of the request's prefix, on a process pool when asked."""
    import partdl

    prefix = request.prefix or ""
    options = {**options, "dry_run": request.dry_run}
    if request.processes <= 1:
        return functools.partial(partdl.download_prefix, bucket, prefix, request.dest, **options)

    def call() -> object:
        from concurrent.futures import ProcessPoolExecutor

        spawn = multiprocessing.get_context("spawn")
        # Leaving the block joins the workers, so their CPU time is this process's
        # children's when it reports.
        with ProcessPoolExecutor(request.processes, mp_context=spawn) as pool:
            # executor= is issue 13's keyword; the runner marks the row unavailable
            # where this partdl has none (benchmarks.scenarios.has_executor).
            entry: Any = partdl.download_prefix
            return entry(bucket, prefix, request.dest, executor=pool, **options)

    return call


def _partdl(request: Request) -> Call:
    import partdl
    from partdl.backends import open_backend

    options: dict[str, Any] = {
        "part_size": request.part_size,
        "task_num": request.task_num,
        "checkpoint": request.checkpoint,
    }
    if request.chunk_size is not None:
        options["chunk_size"] = request.chunk_size
    if not request.fsync:
        if not supports_no_fsync(request.kind):
            raise SystemExit("this partdl has no fsync=False")
        options["fsync"] = False
    if request.prefix is not None:
        if request.kind == "partdl-s3":
            return _partdl_tree(
                request, partdl.S3Bucket(_boto3_client(request), S3_BUCKET), options
            )
        return _partdl_tree(request, _oss2_bucket(request), options)
    if request.kind == "partdl-http":
        url = f"{request.endpoint}/{PLAIN_PREFIX}/{request.name}"
        return functools.partial(partdl.download_url, url, request.dest, **options)
    if request.kind == "partdl-s3":
        # A client, as boto3's own contender uses (a resource loads its model: ~0.1 s).
        bucket: Any = partdl.S3Bucket(_boto3_client(request), S3_BUCKET)
    else:
        bucket = _oss2_bucket(request)
    if request.crc:
        return functools.partial(
            partdl.download_file, bucket, request.name, request.dest, **options
        )
    _without_crc()
    backend = _NoChecksum(open_backend(bucket, request.name, pool_size=request.task_num))
    return functools.partial(partdl.download, backend, request.dest, **options)


def _boto3(request: Request) -> Call:
    from boto3.s3.transfer import TransferConfig

    part = request.part_size or 8 * 1024 * 1024
    config = TransferConfig(
        multipart_threshold=part,
        multipart_chunksize=part,
        max_concurrency=request.task_num,
        preferred_transfer_client="classic",  # s3transfer, not the CRT client
    )
    client = _boto3_client(request)
    return functools.partial(
        client.download_file, S3_BUCKET, request.name, request.dest, Config=config
    )


def _oss2(request: Request) -> Call:
    import oss2

    part = request.part_size or 8 * 1024 * 1024
    store = oss2.ResumableDownloadStore(root=os.path.dirname(request.dest), dir=".oss2-records")
    return functools.partial(
        oss2.resumable_download,
        _oss2_bucket(request),
        request.name,
        request.dest,
        multiget_threshold=part,
        part_size=part,
        num_threads=request.task_num,
        store=store,
    )


def _oss_v2(request: Request) -> Call:
    """The OSS SDK V2 downloader (``alibabacloud-oss-v2``), checkpoint on, V4 signing."""
    import alibabacloud_oss_v2 as oss

    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider("bench", "bench")
    config.region = "cn-hangzhou"
    config.endpoint = request.endpoint
    config.use_path_style = True  # an IP endpoint has no bucket host names
    client = oss.Client(config)
    part = request.part_size or 8 * 1024 * 1024
    downloader = client.downloader(
        part_size=part,
        parallel_num=request.task_num,
        enable_checkpoint=request.checkpoint,
        checkpoint_dir=os.path.dirname(request.dest),
    )
    get = oss.GetObjectRequest(bucket=OSS_BUCKET, key=request.name)
    return functools.partial(downloader.download_file, get, request.dest)


def _floor(request: Request) -> Call:
    """What this machine allows at best: the same ranges with nothing but sockets.

    No HTTP library, no checksum, no checkpoint, no retries: each of ``task_num``
    threads GETs whole parts over a fresh connection and ``recv_into``s them, 1 MiB at
    a time, straight into a reserved file with ``pwrite``. A client that parses HTTP,
    checksums and keeps a checkpoint cannot expect to beat it: it shows what the machine
    itself allows, and how much of that the contenders leave on the table.
    """
    import socket
    import threading
    from urllib.parse import urlsplit

    address = urlsplit(request.endpoint)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    target = f"/{PLAIN_PREFIX}/{request.name}"

    def size_of() -> int:
        with socket.create_connection((host, port)) as sock:
            sock.sendall(f"HEAD {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = _read_head(sock)[0]
        return int(head.split(b"content-length:")[1].split(b"\r\n")[0])

    def fetch(fd: int, start: int, end: int, view: memoryview) -> None:
        with socket.create_connection((host, port)) as sock:
            ask = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nRange: bytes={start}-{end - 1}"
            sock.sendall(f"{ask}\r\n\r\n".encode())
            head, rest = _read_head(sock)
            if not head.startswith(b"http/1.1 206"):
                raise RuntimeError(head.decode())
            os.pwrite(fd, rest, start)
            offset = start + len(rest)
            while offset < end:
                count = sock.recv_into(view[: min(len(view), end - offset)])
                if not count:
                    raise RuntimeError("short body")
                os.pwrite(fd, view[:count], offset)
                offset += count

    def call() -> None:
        size = size_of()
        step = request.part_size or 16 * _MiB
        parts = iter([(start, min(start + step, size)) for start in range(0, size, step)])
        lock = threading.Lock()
        fd = os.open(request.dest, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.posix_fallocate(fd, 0, size)

        def worker() -> None:
            view = memoryview(bytearray(_MiB))
            while True:
                with lock:
                    part = next(parts, None)
                if part is None:
                    return
                fetch(fd, *part, view)

        threads = [threading.Thread(target=worker) for _ in range(request.task_num)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        os.close(fd)

    return call


def _read_head(sock: Any) -> tuple[bytes, bytes]:
    """The response head (lower-cased) and whatever body bytes came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise RuntimeError("connection closed before the headers ended")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.lower(), rest


_PREPARE: dict[str, Callable[[Request], Call]] = {
    "partdl-oss": _partdl,
    "partdl-s3": _partdl,
    "partdl-http": _partdl,
    "boto3": _boto3,
    "oss2": _oss2,
    "oss-v2": _oss_v2,
    "floor": _floor,
}


def run(request: Request) -> float:
    """Download once; return the seconds spent inside the download call.

    Imports and the SDK's client or bucket are made first, outside the timing: the
    process's wall time, which the runner measures, includes them.
    """
    call = _PREPARE[request.kind](request)
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _parse(argv: list[str] | None) -> Request:
    parser = argparse.ArgumentParser(description="run one benchmark contender")
    parser.add_argument("kind", choices=sorted(_PREPARE))
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--dest", required=True)
    parser.add_argument("--part-size", type=int, default=None)
    parser.add_argument("--task-num", type=int, default=8)
    parser.add_argument("--no-checkpoint", action="store_true")
    parser.add_argument("--no-crc", action="store_true")
    parser.add_argument("--chunk-size", type=int, default=None, help="partdl only")
    parser.add_argument("--no-fsync", action="store_true", help="partdl only: fsync=False")
    parser.add_argument("--prefix", default=None, help="partdl only: a tree into --dest")
    parser.add_argument("--processes", type=int, default=1, help="partdl trees: executor size")
    parser.add_argument("--dry-run", action="store_true", help="partdl trees: fetch nothing")
    parser.add_argument("--name", default="", help="the object (not with --prefix)")
    args = parser.parse_args(argv)
    if args.prefix is None and not args.name:
        parser.error("--name is required without --prefix")
    return Request(
        kind=args.kind,
        endpoint=args.endpoint,
        name=args.name,
        dest=args.dest,
        part_size=args.part_size,
        task_num=args.task_num,
        checkpoint=not args.no_checkpoint,
        crc=not args.no_crc,
        chunk_size=args.chunk_size,
        fsync=not args.no_fsync,
        prefix=args.prefix,
        processes=args.processes,
        dry_run=args.dry_run,
    )


def peak_rss() -> int:
    """This process's ``VmHWM`` (peak resident set since ``exec``), bytes."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> None:
    seconds = run(_parse(argv))
    mine = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = {
        "seconds": seconds,
        "peak_rss": peak_rss(),
        "cpu_self": mine.ru_utime + mine.ru_stime,
        "cpu_workers": workers.ru_utime + workers.ru_stime,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
