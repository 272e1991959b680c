"""The planner, as tables."""

from __future__ import annotations

import itertools

import pytest

from partdl.errors import InvalidArgumentError
from partdl.plan import (
    AUTO_MIN_PARTS,
    DEFAULT_PART_SIZE,
    MAX_AUTO_PARTS,
    MAX_PART_SIZE,
    MIN_AUTO_PART_SIZE,
    MIN_PART_SIZE,
    GiB,
    MiB,
    Part,
    choose_part_size,
    plan_parts,
    validate_task_num,
)

P = MIN_PART_SIZE


@pytest.mark.parametrize(
    ("size", "part_size", "expected"),
    [
        (0, P, []),
        (1, P, [(0, 1)]),
        (P - 1, P, [(0, P - 1)]),
        (P, P, [(0, P)]),
        (P + 1, P, [(0, P), (P, P + 1)]),
        (3 * P, P, [(0, P), (P, 2 * P), (2 * P, 3 * P)]),
        (10, MAX_PART_SIZE, [(0, 10)]),
    ],
)
def test_plan_parts(size: int, part_size: int, expected: list[tuple[int, int]]) -> None:
    parts = plan_parts(size, part_size)
    assert [(p.start, p.end) for p in parts] == expected
    assert [p.index for p in parts] == list(range(len(expected)))
    assert sum(p.size for p in parts) == size


def test_plan_covers_a_large_object_without_gaps() -> None:
    parts = plan_parts(7 * GiB + 3, 8 * MiB)
    assert parts[0].start == 0
    assert parts[-1].end == 7 * GiB + 3
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert parts[-1].size == 3


@pytest.mark.parametrize(
    ("size", "requested", "expected"),
    [
        (0, None, MIN_AUTO_PART_SIZE),
        (1, None, MIN_AUTO_PART_SIZE),
        (AUTO_MIN_PARTS * MIN_AUTO_PART_SIZE + 1, None, MIN_AUTO_PART_SIZE + 64 * 1024),
        (64 * MiB, None, 8 * MiB),
        (100 * 10**6, None, 12_517_376),  # 8 parts, each a multiple of 64 KiB
        (AUTO_MIN_PARTS * DEFAULT_PART_SIZE - 1, None, DEFAULT_PART_SIZE),
        (AUTO_MIN_PARTS * DEFAULT_PART_SIZE, None, DEFAULT_PART_SIZE),
        (DEFAULT_PART_SIZE * MAX_AUTO_PARTS, None, DEFAULT_PART_SIZE),
        (DEFAULT_PART_SIZE * MAX_AUTO_PARTS + 1, None, 2 * DEFAULT_PART_SIZE),
        (10**15, None, MAX_PART_SIZE),
        (10**6, P, P),
        (10**6, MAX_PART_SIZE, MAX_PART_SIZE),
    ],
)
def test_choose_part_size(size: int, requested: int | None, expected: int) -> None:
    assert choose_part_size(size, requested) == expected


@pytest.mark.parametrize("bad", [P - 1, 50 * 1024, MAX_PART_SIZE + 1, 6 * GiB, 0, -1])
def test_part_size_out_of_bounds_names_the_bounds(bad: int) -> None:
    with pytest.raises(InvalidArgumentError, match=r"102,400 bytes .* 5,368,709,120 bytes"):
        choose_part_size(10, bad)


@pytest.mark.parametrize("bad", [1.5, "8MiB", True, None])
def test_part_size_of_the_wrong_type(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        plan_parts(10, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task_num", "ok"),
    [
        (1, True),
        (64, True),
        (1000, True),
        (1001, False),
        (0, False),
        (-1, False),
        (True, False),
        (2.0, False),
    ],
)
def test_task_num(task_num: object, ok: bool) -> None:
    if ok:
        assert validate_task_num(task_num) == task_num  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError, match="task_num"):
            validate_task_num(task_num)  # type: ignore[arg-type]


def test_part_is_a_value() -> None:
    assert Part(0, 0, 10) == Part(0, 0, 10)
    assert Part(0, 5, 10).size == 5
