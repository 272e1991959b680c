"""Running things: the server process, one contender process, its wall time and peak RSS."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fastcrc

from partdl.plan import MiB

from .clients import OSS_BUCKET, PLAIN_PREFIX, S3_BUCKET
from .scenarios import (
    ARIA2C,
    AWS_CLI,
    CURL,
    DD,
    PARTDL_CLI,
    PARTDL_CLI_OSS,
    RCLONE,
    S5CMD,
    TOOLS,
    ObjectSpec,
    Variant,
    tool_path,
)
from .server import RESTART_PATH, Behaviour
from .trees import TreeSpec

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / ".data"
_SERVER_START_TIMEOUT = 120.0
_FILE_CHUNK = 64 * MiB
_RSS_POLL_MS = 10


@dataclass(frozen=True, slots=True)
class Measurement:
    """One run of one variant."""

    label: str
    run: int
    wall: float
    """Seconds from spawning the process to its exit."""
    inner: float | None
    """Seconds inside the download call, for the Python contenders."""
    max_rss: int
    """Peak resident set of the process, bytes (its ``VmHWM``)."""
    cpu: float
    """User plus system CPU seconds of the process (``wait4``)."""
    ok: bool
    error: str = ""
    medium: str = "disk"
    """Where the destination was: ``disk`` (the checkout's filesystem) or ``tmpfs``."""
    sync: float = 0.0
    """Seconds the ``sync`` before this run took (outside the timing): the previous
    runs' writeback that would otherwise have landed in this one."""
    dirty: int = 0
    """Bytes dirty or under writeback machine-wide just before that ``sync``."""
    cpu_self: float | None = None
    """CPU seconds of the calling process alone, as a partdl client reports it."""
    cpu_workers: float | None = None
    """CPU seconds of the executor's worker processes (partdl on processes)."""


def object_path(spec: ObjectSpec) -> Path:
    return DATA / f"{spec.name}-{spec.base_size}.bin"


def object_file(spec: ObjectSpec) -> Path:
    """The random file behind ``spec``, created on first use."""
    path = object_path(spec)
    if path.exists() and path.stat().st_size == spec.base_size:
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    with open(staging, "wb") as handle:
        left = spec.base_size
        while left:
            chunk = os.urandom(min(left, 16 * MiB))
            handle.write(chunk)
            left -= len(chunk)
    staging.replace(path)
    # Its writeback must not land in the first measured runs.
    os.sync()
    return path


def file_crc(path: Path) -> tuple[int, int]:
    """(size, CRC-64/XZ) of a file, to check every contender's output."""
    crc = size = 0
    buffer = bytearray(_FILE_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            crc = fastcrc.crc64.xz(view[:count], initial=crc)
            size += count
    return size, crc


class ServerProcess:
    """``benchmarks.server`` in its own process, so it never shares a GIL with a contender."""

    def __init__(
        self,
        objects: dict[str, tuple[Path, int]],
        behaviour: Behaviour,
        trees: list[tuple[TreeSpec, Path]] | None = None,
    ) -> None:
        argv = [sys.executable, "-m", "benchmarks.server"]
        for name, (path, repeat) in objects.items():
            argv += ["--object", f"{name}={path}*{repeat}"]
        for tree, path in trees or ():
            argv += ["--tree", f"{tree.argument()}@{path}"]
        argv += ["--rate", str(behaviour.rate), "--delay", str(behaviour.delay)]
        argv += ["--slow-every", str(behaviour.slow_every)]
        argv += ["--slow-rate", str(behaviour.slow_rate)]
        self._proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env()
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], _SERVER_START_TIMEOUT)
        line = self._proc.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError("the benchmark server did not start")
        self.endpoint = f"http://127.0.0.1:{int(line.split()[1])}"

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()  # the server exits when its stdin closes
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


@contextlib.contextmanager
def serving(
    objects: dict[str, tuple[Path, int]],
    behaviour: Behaviour,
    trees: list[tuple[TreeSpec, Path]] | None = None,
) -> Iterator[str]:
    server = ServerProcess(objects, behaviour, trees)
    try:
        yield server.endpoint
    finally:
        server.close()


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = str(ROOT)
    # s5cmd reads its credentials from the environment; the server checks none. No
    # shared config or instance metadata may slow a contender's start.
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        OSS_ACCESS_KEY_ID="bench",
        OSS_ACCESS_KEY_SECRET="bench",
    )
    return env


def _mib(part: int | None) -> int:
    return max((part or MiB) // MiB, 1)


def command(variant: Variant, endpoint: str, name: str, dest: Path, size: int) -> list[str]:
    """The exact command line one run of ``variant`` executes (``size``: the object's)."""
    url = f"{endpoint}/{PLAIN_PREFIX}/{name}"
    if variant.contender == CURL:
        return ["curl", "-sS", "--fail", "-o", str(dest), url]
    if variant.contender == DD:
        count = str(-(-size // MiB))
        return ["dd", "if=/dev/zero", f"of={dest}", "bs=1M", f"count={count}", "conv=fsync"]
    if variant.contender == S5CMD:
        # s5cmd uses path style for an endpoint that is not AWS's; --part-size is MiB.
        return [
            tool_path(S5CMD) or S5CMD,
            *("--endpoint-url", endpoint, "--log", "error"),
            "cp",
            *("--concurrency", str(variant.task_num), "--part-size", str(_mib(variant.part_size))),
            f"s3://{S3_BUCKET}/{name}",
            str(dest),
        ]
    if variant.contender == ARIA2C:
        # -k is at least 1 MiB and at most 1 GiB in aria2c; falloc reserves the file as
        # partdl does (aria2c's default, prealloc, writes zeros first).
        split = min(_mib(variant.part_size), 1024)
        n = str(min(variant.task_num, 16))
        return [
            "aria2c",
            *("-x", n, "-s", n, "-k", f"{split}M"),
            "--file-allocation=falloc",
            *("-d", str(dest.parent), "-o", dest.name),
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "--summary-interval=0",
            "--console-log-level=error",
            "-q",
            url,
        ]
    if variant.contender == PARTDL_CLI_OSS:
        argv = [tool_path(PARTDL_CLI_OSS) or "partdl", f"oss://{OSS_BUCKET}/{name}", str(dest)]
        return argv + _partdl_cli_options(variant, endpoint)
    if variant.contender == PARTDL_CLI:
        argv = [tool_path(PARTDL_CLI) or "partdl", f"s3://{S3_BUCKET}/{name}", str(dest)]
        return argv + _partdl_cli_options(variant, endpoint, region="us-east-1")
    kind = variant.contender
    argv = [sys.executable, "-m", "benchmarks.clients", kind, "--endpoint", endpoint]
    argv += ["--name", name, "--dest", str(dest), "--task-num", str(variant.task_num)]
    if variant.part_size is not None:
        argv += ["--part-size", str(variant.part_size)]
    if not variant.checkpoint:
        argv.append("--no-checkpoint")
    if not variant.crc:
        argv.append("--no-crc")
    if variant.chunk_size is not None:
        argv += ["--chunk-size", str(variant.chunk_size)]
    if not variant.fsync:
        argv.append("--no-fsync")
    return argv


TOOLS_DIR = DATA / "tools"
"""Where the tree tools' private configuration and URL lists live (never a destination)."""
RCLONE_REMOTE = "bench"


def aws_config() -> Path:
    """A private ``AWS_CONFIG_FILE`` made by ``aws configure set`` once: 8 requests at
    once, path style."""
    path = TOOLS_DIR / "aws-config"
    if path.exists():
        return path
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    aws = tool_path(AWS_CLI) or "aws"
    env = {**child_env(), "AWS_CONFIG_FILE": str(path)}
    for setting, value in (
        ("default.s3.max_concurrent_requests", "8"),
        ("default.s3.addressing_style", "path"),
    ):
        subprocess.run([aws, "configure", "set", setting, value], env=env, check=True)
    return path


def aria2_input(tree: TreeSpec, endpoint: str) -> Path:
    """``aria2c -i``'s input: every object's plain URL, with ``out=`` its path in the tree."""
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    path = TOOLS_DIR / f"aria2-{tree.name}.txt"
    lines = []
    for item in tree.objects():
        lines += [f"{endpoint}/{PLAIN_PREFIX}/{item.key}", f"  out={item.key[len(tree.prefix) :]}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rclone_env(endpoint: str) -> list[str]:
    """An S3 remote named ``bench``, configured from the environment alone."""
    name = f"RCLONE_CONFIG_{RCLONE_REMOTE.upper()}_"
    return [
        f"RCLONE_CONFIG={TOOLS_DIR / 'rclone.conf'}",  # absent: nothing but these
        f"{name}TYPE=s3",
        f"{name}PROVIDER=Other",
        f"{name}ENDPOINT={endpoint}",
        f"{name}ACCESS_KEY_ID=bench",
        f"{name}SECRET_ACCESS_KEY=bench",
        f"{name}REGION=us-east-1",
    ]


def _partdl_cli_options(
    variant: Variant, endpoint: str, *, region: str = "cn-hangzhou"
) -> list[str]:
    """The ``partdl`` command's flags: the endpoint, the region V4 signs, the knobs."""
    argv = ["--endpoint", endpoint, "--region", region, "-q"]
    argv += ["--task-num", str(variant.task_num)]
    if variant.part_size is not None:
        argv += ["--part-size", f"{variant.part_size}B"]
    if not variant.fsync:
        argv.append("--no-fsync")
    if variant.dry_run:
        argv.append("--dry-run")
    return argv


def tree_command(variant: Variant, endpoint: str, tree: TreeSpec, dest: Path) -> list[str]:
    """The exact command line one run of ``variant`` executes to fetch ``tree`` into the
    directory ``dest``; every tool at ``variant.task_num`` GETs in flight."""
    n = str(variant.task_num)
    s3_url = f"s3://{S3_BUCKET}/{tree.prefix}"
    contender = variant.contender
    if contender == S5CMD:
        workers = ["--numworkers", str(variant.file_workers)] if variant.file_workers else []
        per_file = variant.task_num // (variant.file_workers or 1) or 1
        return [
            tool_path(S5CMD) or S5CMD,
            *("--endpoint-url", endpoint, "--log", "error", *workers),
            *("cp", "--concurrency", str(per_file)),
            f"{s3_url}*",
            f"{dest}/",
        ]
    if contender == AWS_CLI:
        return [
            "env",
            f"AWS_CONFIG_FILE={aws_config()}",
            "AWS_DEFAULT_REGION=us-east-1",
            tool_path(AWS_CLI) or "aws",
            *("s3", "cp", "--recursive", "--endpoint-url", endpoint),
            *("--only-show-errors", "--no-progress", s3_url, str(dest)),
        ]
    if contender == RCLONE:
        return [
            # rclone 1.60's S3 backend refuses a custom CA bundle on its own transport
            # ("unsupported transport"); the endpoint is plain HTTP and needs none.
            *("env", "-u", "AWS_CA_BUNDLE"),
            *_rclone_env(endpoint),
            tool_path(RCLONE) or RCLONE,
            *("copy", f"{RCLONE_REMOTE}:{S3_BUCKET}/{tree.prefix}", str(dest)),
            *("--transfers", n, "--checkers", n, "-q"),
        ]
    if contender == ARIA2C:
        return [
            "aria2c",
            *("-i", str(aria2_input(tree, endpoint)), "-d", str(dest)),
            *("-j", n, "-x", "1", "--file-allocation=falloc"),
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "--summary-interval=0",
            "--console-log-level=error",
            "-q",
        ]
    if contender == PARTDL_CLI_OSS:
        argv = [tool_path(contender) or "partdl", f"oss://{OSS_BUCKET}/{tree.prefix}", str(dest)]
        return [*argv, "--recursive", *_partdl_cli_options(variant, endpoint)]
    if contender == PARTDL_CLI:
        argv = [tool_path(PARTDL_CLI) or "partdl", s3_url, str(dest), "--recursive"]
        argv += ["--endpoint", endpoint, "--region", "us-east-1", "--task-num", n, "-q"]
        return [*argv, "--dry-run"] if variant.dry_run else argv
    argv = [sys.executable, "-m", "benchmarks.clients", contender, "--endpoint", endpoint]
    argv += ["--prefix", tree.prefix, "--dest", str(dest), "--task-num", n]
    if variant.part_size is not None:
        argv += ["--part-size", str(variant.part_size)]
    if variant.processes > 1:
        argv += ["--processes", str(variant.processes)]
    if variant.dry_run:
        argv.append("--dry-run")
    if not variant.fsync:
        argv.append("--no-fsync")
    return argv


def _high_water(pid: int) -> int:
    """``VmHWM`` of a running process, bytes; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _wait(pid: int, timeout: float) -> tuple[int, int, float, float]:
    """Wait for ``pid`` to exit: (exit status, peak RSS in bytes, time of exit, CPU s).

    The peak comes from polling ``VmHWM``, the high-water mark of the process's own
    address space. ``ru_maxrss`` from ``wait4`` would not do: Linux folds into it the
    peak of the address space the child ran in before ``exec``, which is this
    runner's when ``subprocess`` spawns with ``vfork``.
    """
    pidfd = os.pidfd_open(pid)
    deadline = time.perf_counter() + timeout
    peak = 0
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while not poller.poll(_RSS_POLL_MS):
            peak = max(peak, _high_water(pid))
            if time.perf_counter() > deadline:
                os.kill(pid, 9)
                poller.poll()
                break
        ended = time.perf_counter()
    finally:
        os.close(pidfd)
    _, status, usage = os.wait4(pid, 0)
    return status, peak, ended, usage.ru_utime + usage.ru_stime


@dataclass(frozen=True, slots=True)
class Execution:
    code: int
    wall: float
    peak_rss: int
    cpu: float


def execute(argv: list[str], log: Path, timeout: float) -> Execution:
    """Run ``argv`` with its output going to ``log``."""
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=out, env=child_env())
        status, peak, ended, cpu = _wait(proc.pid, timeout)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Execution(proc.returncode, ended - started, peak, cpu)


def _client_report(log: Path) -> dict[str, float]:
    """The JSON line a Python contender prints last (see ``benchmarks.clients``)."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith('{"seconds"'):
            found: dict[str, float] = json.loads(line)
            return found
    return {}


class SetAside:
    """Where the disk runs' trees go instead of being deleted between runs.

    ext4 does not hand out an inode freed in the last ``dirty_expire_centisecs`` (30 s):
    creating a file then checks each such inode and skips it (``recently_deleted`` in
    ``ext4_create``). Deleting 2,000 files before every run made each later run's file
    creations search past all of them; within three rounds every contender's system
    time grew from 0.4 to 2.4 s and its wall time doubled, whoever ran. A user's fresh
    download meets no such graveyard, so a run's tree is renamed aside (one rename),
    its pages dropped once the ``sync`` made them clean, and the lot deleted when the
    benchmark ends or the disk runs short, after which tree runs wait out the window.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._count = 0
        self._pending: list[Path] = []
        self._emptied = 0.0

    def take(self, work: Path) -> None:
        """Move everything in ``work`` aside."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for entry in work.iterdir():
            self._count += 1
            moved = self.directory / f"{self._count}-{entry.name}"
            entry.rename(moved)
            self._pending.append(moved)

    def drop_pages(self) -> None:
        """Evict the set-aside files' clean pages, so they do not crowd later runs' memory."""
        for root in self._pending:
            for folder, _, files in os.walk(root):
                for name in files:
                    with contextlib.suppress(OSError):
                        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                        try:
                            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                        finally:
                            os.close(fd)
        self._pending.clear()

    def make_room(self, need: int) -> None:
        """Empty the set-aside folder if the disk would keep less than ``need`` free."""
        if self.directory.exists() and shutil.disk_usage(self.directory).free < need:
            self.empty()

    def empty(self) -> None:
        if not self.directory.exists():
            return
        shutil.rmtree(self.directory, ignore_errors=True)
        self._pending.clear()
        os.sync()
        self._emptied = time.monotonic()

    def wait_window(self) -> None:
        """Sleep until the inodes the last :meth:`empty` freed can be reused."""
        if self._emptied:
            time.sleep(max(0.0, self._emptied + _inode_reuse_window() - time.monotonic()))


def _inode_reuse_window() -> float:
    try:
        with open("/proc/sys/vm/dirty_expire_centisecs") as expire:
            return int(expire.read()) / 100 + 1
    except (OSError, ValueError):
        return 31.0


_SET_ASIDE_MARGIN = 4 * 1024 * MiB


def clean(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def dirty_bytes() -> int:
    """``Dirty`` plus ``Writeback`` from ``/proc/meminfo``: what a ``sync`` would wait for."""
    total = 0
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith((b"Dirty:", b"Writeback:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return total


def restart_stragglers(endpoint: str) -> None:
    """Make the server count ranged GETs from zero, so that this run meets the same slow
    GETs as every other (where the scenario has any; otherwise the count is unused)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        connection.request("POST", RESTART_PATH)
        if connection.getresponse().status != 204:
            raise RuntimeError(f"the benchmark server did not restart its count at {endpoint}")
    finally:
        connection.close()


def settle(*, sync: bool) -> tuple[float, int]:
    """Flush dirty pages before a run: (seconds it took, bytes dirty before it).

    The destinations are deleted after each run, so their own pages go with them;
    what ``sync`` still waits for is writeback already under way, the journal, and
    whatever else on the machine has written. It is machine-wide, like the disk.
    """
    dirty = dirty_bytes()
    if not sync:
        return 0.0, dirty
    started = time.perf_counter()
    os.sync()
    return time.perf_counter() - started, dirty


@dataclass(frozen=True, slots=True)
class RunContext:
    """Where one run writes and how its output is judged."""

    work: Path
    medium: str
    endpoint: str
    name: str
    expected: tuple[int, int]
    """(size, CRC-64/XZ) of the object."""
    tree: TreeSpec | None = None
    """A tree to fetch instead of the object; ``name`` is then its backing file."""
    aside: SetAside | None = None
    """Where this medium's finished trees go instead of being deleted (the disk)."""


_PARTDL_STATE = ".partdl"
"""The one folder partdl adds to a tree (its per-object state for the next run)."""
_SPOT_CHECKS = 6


def _tree_files(root: Path) -> dict[str, int]:
    """Every file under ``root`` but partdl's state folder: relative path to size."""
    found = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root and _PARTDL_STATE in dirs:
            dirs.remove(_PARTDL_STATE)
        for name in files:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = path.stat().st_size
    return found


def _same_bytes(path: Path, backing: Path, offset: int, size: int) -> bool:
    with open(path, "rb", buffering=0) as mine, open(backing, "rb", buffering=0) as source:
        source.seek(offset)
        left = size
        while left:
            want = min(left, 8 * MiB)
            if mine.read(want) != source.read(want):
                return False
            left -= want
        return mine.read(1) == b""


def check_tree(variant: Variant, dest: Path, tree: TreeSpec, backing: Path) -> str:
    """Empty when ``dest`` holds exactly ``tree`` (every path and size, and the bytes of
    a spread of files, big ones included); otherwise what is wrong."""
    found = _tree_files(dest) if dest.is_dir() else {}
    if variant.dry_run:
        return f"a dry run wrote {len(found)} files" if found else ""
    objects = list(tree.objects())
    wanted = {item.key[len(tree.prefix) :]: item.size for item in objects}
    if found != wanted:
        missing = len(wanted.keys() - found.keys())
        extra = len(found.keys() - wanted.keys())
        return (
            f"{len(found)} files, {sum(found.values()):,} bytes (wanted {len(wanted)}, "
            f"{tree.size:,}): {missing} missing, {extra} unexpected, "
            f"{sum(found[k] != wanted[k] for k in found.keys() & wanted.keys())} of wrong size"
        )
    step = max(len(objects) // _SPOT_CHECKS, 1)
    sample = {0, len(objects) - 1, *range(0, len(objects), step)}
    for index in sorted(sample):
        item = objects[index]
        if not _same_bytes(dest / item.key[len(tree.prefix) :], backing, item.offset, item.size):
            return f"{item.key}: content differs from the object"
    return ""


def _check(variant: Variant, dest: Path, expected: tuple[int, int]) -> str:
    if not dest.exists():
        return "no output file"
    if variant.contender == DD:  # zeros, not the object: only its size can be checked
        return "" if dest.stat().st_size >= expected[0] else "short output"
    if file_crc(dest) != expected:
        return "output differs from the object"
    return ""


def measure(
    variant: Variant, run: int, target: RunContext, timeout: float, *, sync: bool = True
) -> Measurement:
    """One whole-process run; the output is checked byte for byte (by CRC), then removed."""
    clean(target.work)
    tree = target.tree
    aside = None
    if tree is not None and target.aside is not None:
        aside = target.aside
        aside.make_room(2 * tree.size + _SET_ASIDE_MARGIN)
        aside.wait_window()
    synced, dirty = settle(sync=sync)
    if aside is not None:
        aside.drop_pages()
    restart_stragglers(target.endpoint)
    dest = target.work / ("tree" if tree is not None else "out.bin")
    log = DATA / "last-run.log"
    if tree is not None:
        argv = tree_command(variant, target.endpoint, tree, dest)
    else:
        argv = command(variant, target.endpoint, target.name, dest, target.expected[0])
    done = execute(argv, log, timeout)
    error = ""
    if done.code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        error = f"exit {done.code}: {tail[0][:200]}"
    elif tree is not None:
        error = check_tree(variant, dest, tree, Path(target.name))
    else:
        error = _check(variant, dest, target.expected)
    reported = _client_report(log) if variant.contender not in TOOLS else {}
    inner = reported.get("seconds")
    # The client's own final reading catches a peak in the last poll interval.
    rss = max(done.peak_rss, int(reported.get("peak_rss", 0)))
    if aside is not None:
        aside.take(target.work)
    else:
        clean(target.work)
    return Measurement(
        variant.label,
        run,
        done.wall,
        inner,
        rss,
        done.cpu,
        not error,
        error,
        medium=target.medium,
        sync=synced,
        dirty=dirty,
        cpu_self=reported.get("cpu_self"),
        cpu_workers=reported.get("cpu_workers"),
    )
