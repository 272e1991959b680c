"""Pure planning: how an object of ``size`` bytes is cut into ranged GETs."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidArgumentError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

MIN_PART_SIZE = 100 * KiB
MAX_PART_SIZE = 5 * GiB
# Measured (docs/benchmarks.md): behind a 30 ms first-byte delay and 50 MiB/s
# connections, 16 MiB parts reach 0.89 of task_num x cap where 8 MiB reach 0.84 (32 MiB:
# 0.91), while a 1 GiB object still makes 64 parts to spread over the workers and to
# resume from.
DEFAULT_PART_SIZE = 16 * MiB
# Auto part sizes grow so that a plan never exceeds this many parts; it keeps the
# checkpoint small and per-request latency amortised on huge objects.
MAX_AUTO_PARTS = 10_000
# An object too small to give this many workers (the default task_num) a part of
# DEFAULT_PART_SIZE is cut into this many parts instead: one round of parallel GETs
# beats fewer, longer ones (64 MiB behind a 30 ms delay and 50 MiB/s connections:
# 0.24 s in 8 parts, 0.39 s in 4). Parts stay at least MIN_AUTO_PART_SIZE, where a
# request's fixed costs start to dominate, and are multiples of 64 KiB.
AUTO_MIN_PARTS = 8
MIN_AUTO_PART_SIZE = 1 * MiB
_AUTO_ALIGN = 64 * KiB


@dataclass(frozen=True, slots=True)
class Part:
    """One byte range ``[start, end)`` of the object; ``index`` counts from 0."""

    index: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def validate_part_size(part_size: int) -> int:
    if isinstance(part_size, bool) or not isinstance(part_size, int):
        raise InvalidArgumentError(f"part_size must be an int, not {type(part_size).__name__}")
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise InvalidArgumentError(
            f"part_size must be between {MIN_PART_SIZE:,} bytes (100 KiB) and "
            f"{MAX_PART_SIZE:,} bytes (5 GiB), got {part_size:,}"
        )
    return part_size


# Each task is a thread with its own connection and chunk buffer; far past this a
# process runs out of threads or descriptors before it gains any speed.
MAX_TASK_NUM = 1000


def validate_task_num(task_num: int) -> int:
    if (
        isinstance(task_num, bool)
        or not isinstance(task_num, int)
        or not 1 <= task_num <= MAX_TASK_NUM
    ):
        raise InvalidArgumentError(
            f"task_num must be an int from 1 to {MAX_TASK_NUM}, got {task_num!r}"
        )
    return task_num


# Seconds one read of a body may wait for its next byte before the connection is
# abandoned and the part resumed on a new one (the SDKs' own read timeouts are 60 s).
DEFAULT_STALL_TIMEOUT = 30.0


def validate_stall_timeout(seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise InvalidArgumentError(f"stall_timeout must be a positive number, got {seconds!r}")
    return float(seconds)


def choose_part_size(size: int, part_size: int | None = None, *, ranged: bool = True) -> int:
    """The requested part size, validated, or an automatic one for ``size``.

    A server that ignores byte ranges (``ranged=False``) can only stream the object
    from its first byte, so the whole object is one part, up to ``MAX_PART_SIZE``.
    """
    if not ranged:
        return min(max(size, MIN_PART_SIZE), MAX_PART_SIZE)
    if part_size is not None:
        return validate_part_size(part_size)
    if size < DEFAULT_PART_SIZE * AUTO_MIN_PARTS:
        share = -(-size // AUTO_MIN_PARTS)
        return max(MIN_AUTO_PART_SIZE, -(-share // _AUTO_ALIGN) * _AUTO_ALIGN)
    chosen = DEFAULT_PART_SIZE
    while chosen * MAX_AUTO_PARTS < size and chosen < MAX_PART_SIZE:
        chosen *= 2
    return min(chosen, MAX_PART_SIZE)


def plan_parts(size: int, part_size: int) -> tuple[Part, ...]:
    """Split ``[0, size)`` into consecutive parts of ``part_size``; the last is shorter."""
    if size < 0:
        raise InvalidArgumentError(f"object size cannot be negative: {size}")
    validate_part_size(part_size)
    return tuple(
        Part(index, start, min(start + part_size, size))
        for index, start in enumerate(range(0, size, part_size))
    )
