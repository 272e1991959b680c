"""The retry policy: an immutable value, pure arithmetic, no clocks or sleeps."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a part's transient failures are retried.

    ``attempts`` bounds the *consecutive* failed attempts that made no progress: a
    retried part resumes at its first missing byte, so an attempt that delivered
    bytes resets the count. ``deadline`` (seconds, optional) bounds the time one part
    may spend across all its attempts. Backoff is exponential with full jitter: the
    n-th consecutive failure waits ``uniform(0, min(backoff_max, backoff * 2**(n-1)))``.
    """

    attempts: int = 5
    backoff: float = 0.2
    backoff_max: float = 10.0
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidArgumentError(f"attempts must be at least 1, got {self.attempts}")
        if self.backoff < 0 or self.backoff_max < 0:
            raise InvalidArgumentError("backoff times cannot be negative")
        if self.deadline is not None and self.deadline <= 0:
            raise InvalidArgumentError(f"deadline must be positive, got {self.deadline}")

    @classmethod
    def never(cls) -> RetryPolicy:
        """Fail on the first transient error."""
        return cls(attempts=1, backoff=0.0, backoff_max=0.0)

    def gives_up(self, failures: int, elapsed: float) -> bool:
        """True once ``failures`` consecutive failures or ``elapsed`` seconds are too many."""
        if failures >= self.attempts:
            return True
        return self.deadline is not None and elapsed >= self.deadline

    def backoff_for(self, failures: int, jitter: float) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure.

        ``jitter`` is a uniform draw from ``[0, 1)``, passed in so the policy stays pure.
        """
        if failures < 1:
            return 0.0
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** (failures - 1))
        return jitter * ceiling
