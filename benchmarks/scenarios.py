"""What is measured: the scenarios (a)-(g) and the contenders each one runs."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field, replace

import partdl
from partdl.options import DEFAULT_CHUNK_SIZE, DEFAULT_TASK_NUM
from partdl.plan import (
    AUTO_MIN_PARTS,
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    MiB,
    choose_part_size,
)

from .server import Behaviour

# The contenders: a Python client kind (see benchmarks.clients) or an external tool.
PARTDL_OSS = "partdl-oss"
PARTDL_S3 = "partdl-s3"
PARTDL_HTTP = "partdl-http"
BOTO3 = "boto3"
OSS2 = "oss2"
ARIA2C = "aria2c"
CURL = "curl"
FLOOR = "floor"

LABELS = {
    PARTDL_OSS: "partdl (OSS)",
    PARTDL_S3: "partdl (S3)",
    PARTDL_HTTP: "partdl (HTTP)",
    BOTO3: "boto3 download_file",
    OSS2: "oss2.resumable_download",
    ARIA2C: "aria2c",
    CURL: "curl",
    FLOOR: "floor: bare sockets, no HTTP library, no CRC",
}
PER_CONNECTION_CAP = 50 * MiB
FIRST_BYTE_DELAY = 0.030


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

    @property
    def label(self) -> str:
        base = LABELS[self.contender]
        if self.contender == OSS2:
            base += " (CRC on)" if self.crc else " (CRC off)"
        elif not self.crc:
            base += ", CRC off"
        if not self.checkpoint:
            base += ", checkpoint off"
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


def available(contender: str) -> bool:
    """Whether this machine can run ``contender`` (backends land in other issues)."""
    if contender == PARTDL_S3:
        return importlib.util.find_spec("partdl.backends.s3") is not None
    if contender == PARTDL_HTTP:
        return hasattr(partdl, "download_url")
    if contender in (ARIA2C, CURL):
        return shutil.which(contender) is not None
    return True


def _everyone(part: int | None, task_num: int, *, oss2_crc_off: bool = True) -> list[Variant]:
    """partdl on each backend, then the tools users would pick instead, same knobs."""
    variants = [Variant(kind, part, task_num) for kind in (PARTDL_OSS, PARTDL_S3, PARTDL_HTTP)]
    variants += [Variant(BOTO3, part, task_num), Variant(OSS2, part, task_num)]
    if oss2_crc_off:
        variants.append(Variant(OSS2, part, task_num, crc=False))
    variants += [Variant(ARIA2C, part, task_num), Variant(CURL, part, 1)]
    return variants


def _with_ideal(scenario: Scenario) -> Scenario:
    cap = scenario.behaviour.rate
    ideal = {v.label: cap * (1 if v.contender == CURL else v.task_num) for v in scenario.variants}
    return replace(scenario, ideal=ideal)


def build(*, quick: bool) -> list[Scenario]:
    """The suite; ``quick`` shrinks every object for iterating on the harness or engine."""
    gib = 256 * MiB if quick else 1024 * MiB
    one = ObjectSpec("one", gib)
    n = DEFAULT_TASK_NUM
    default_part = choose_part_size(one.size)
    parts = 10_000 if quick else 100_000
    many = ObjectSpec("many", MIN_PART_SIZE * 1000, parts // 1000)
    small = ObjectSpec("small", 64 * MiB)
    remote = Behaviour(rate=PER_CONNECTION_CAP, delay=FIRST_BYTE_DELAY)
    scenarios = [
        Scenario(
            "a",
            f"{one.size // MiB} MiB, unthrottled",
            one,
            Behaviour(),
            (
                *_everyone(default_part, n),
                Variant(PARTDL_OSS, default_part, 16, suffix="16 workers"),
                Variant(FLOOR, default_part, n),
            ),
            "Every contender with the same part size and concurrency; curl is one stream. "
            "The floor is no contender: the same ranges fetched with bare sockets and "
            "written with pwrite, nothing checked, to show what the machine itself allows.",
        ),
        _with_ideal(
            Scenario(
                "b",
                f"{one.size // MiB} MiB, {PER_CONNECTION_CAP // MiB} MiB/s per connection",
                one,
                Behaviour(rate=PER_CONNECTION_CAP),
                tuple(_everyone(default_part, n, oss2_crc_off=False)),
                "The server paces each connection; the ideal is task_num x cap.",
            )
        ),
        Scenario(
            "c",
            f"{one.size // MiB} MiB, {FIRST_BYTE_DELAY * 1000:.0f} ms first-byte delay",
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
            f"one part of {one.size // MiB} MiB (memory)",
            one,
            Behaviour(),
            tuple(
                [Variant(kind, one.size, n) for kind in (PARTDL_OSS, PARTDL_S3, PARTDL_HTTP)]
                + [Variant(BOTO3, one.size, n), Variant(OSS2, one.size, n)]
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
            f"{one.size // MiB} MiB: CRC on vs off",
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
        Scenario(
            "g",
            f"{one.size // MiB} MiB, unthrottled: partdl part size and task_num",
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
                "h",
                f"{one.size // MiB} MiB, {FIRST_BYTE_DELAY * 1000:.0f} ms delay and "
                f"{PER_CONNECTION_CAP // MiB} MiB/s per connection: partdl part size",
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
                "i",
                f"{small.size // MiB} MiB, {FIRST_BYTE_DELAY * 1000:.0f} ms delay and "
                f"{PER_CONNECTION_CAP // MiB} MiB/s per connection: a small object",
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
    return [
        replace(s, variants=tuple(v for v in s.variants if available(v.contender)))
        for s in scenarios
    ]
