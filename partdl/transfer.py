"""The one options type the entry points share, validated before any request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .backends._body import DEFAULT_STALL_TIMEOUT
from .errors import InvalidArgumentError
from .options import DEFAULT_CHUNK_SIZE, DEFAULT_TASK_NUM, MIN_CHUNK_SIZE
from .plan import choose_part_size, validate_part_size, validate_stall_timeout, validate_task_num
from .retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class TransferOptions:
    """The knobs every download takes, whatever it downloads.

    ``part_size`` (None: chosen per object) and ``task_num`` (the GETs in flight at
    once, for one object or for a whole tree) shape the transfer; ``checkpoint`` keeps
    large objects resumable; ``headers`` go with every OSS or HTTP request.
    """

    part_size: int | None = None
    task_num: int = DEFAULT_TASK_NUM
    checkpoint: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    headers: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        validate_task_num(self.task_num)
        if self.part_size is not None:
            validate_part_size(self.part_size)
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int):
            raise InvalidArgumentError("chunk_size must be an int")
        if self.chunk_size < MIN_CHUNK_SIZE:
            raise InvalidArgumentError(f"chunk_size must be at least {MIN_CHUNK_SIZE} bytes")
        validate_stall_timeout(self.stall_timeout)
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidArgumentError("retry must be a partdl.RetryPolicy")

    def fits_one_part(self, size: int) -> bool:
        """Whether an object of ``size`` bytes is a single part: one GET, no HEAD."""
        return size <= choose_part_size(size, self.part_size)
