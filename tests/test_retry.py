"""The retry policy, as tables: pure arithmetic."""

from __future__ import annotations

import pytest

from partdl.errors import InvalidArgumentError
from partdl.retry import RetryPolicy


@pytest.mark.parametrize(
    ("policy", "failures", "elapsed", "gives_up"),
    [
        (RetryPolicy(), 1, 0.0, False),
        (RetryPolicy(), 4, 0.0, False),
        (RetryPolicy(), 5, 0.0, True),
        (RetryPolicy(attempts=1), 1, 0.0, True),
        (RetryPolicy(deadline=10.0), 1, 9.9, False),
        (RetryPolicy(deadline=10.0), 1, 10.0, True),
        (RetryPolicy.never(), 1, 0.0, True),
    ],
)
def test_gives_up(policy: RetryPolicy, failures: int, elapsed: float, gives_up: bool) -> None:
    assert policy.gives_up(failures, elapsed) is gives_up


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [
        (0, 0.5, 0.0),
        (1, 1.0, 0.2),
        (2, 1.0, 0.4),
        (3, 0.5, 0.4),
        (10, 1.0, 10.0),  # capped at backoff_max
        (60, 0.25, 2.5),
        (1, 0.0, 0.0),  # full jitter reaches zero
    ],
)
def test_backoff_is_exponential_with_full_jitter(
    failures: int, jitter: float, expected: float
) -> None:
    assert RetryPolicy().backoff_for(failures, jitter) == pytest.approx(expected)


@pytest.mark.parametrize(
    "arguments",
    [{"attempts": 0}, {"backoff": -1.0}, {"backoff_max": -1.0}, {"deadline": 0.0}],
)
def test_invalid_policies_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(**arguments)  # type: ignore[arg-type]


def test_policy_is_immutable() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.attempts = 3  # type: ignore[misc]
