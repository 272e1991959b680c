"""A tree's objects on any ``concurrent.futures.Executor``: processes here, a Dask cluster.

Planning stays where the call was made (the *driver*): the listing, the filters, the
key checks, the skip-unchanged decisions and the tree's state are the driver's alone,
so a tree has one writer of its state whatever runs the transfers. What is left to
fetch goes to the executor as tasks: the objects of a window of the listing are
grouped into batches balanced by bytes (:func:`balance`), and each batch runs as one
task, :func:`run_task`, with a shared scheduler of its own on the worker. A worker
therefore keeps at most ``task_num`` GETs in flight, and the executor at most
``slots x task_num``.

An object is never split across tasks: its parts, its checkpoint and its final
checksum stay in one process, so a huge object is one verified file with one
checkpoint story, however many workers there are. A batch holding one huge object is
simply the heaviest batch.

A task that raises, or is lost with its worker, reports each of its objects as failed
(:class:`~partdl.TransferError`); what it had finished is in place, and a large
object it had started keeps its checkpoint, so running the same call again (with or
without an executor) fetches only what is missing. A ``KeyboardInterrupt`` (or any
error) in the driver cancels every task not yet finished.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from typing import TypeVar

from . import files
from .batch import make_folder
from .errors import LocalFileError, PartdlError, TransferError
from .execute import Meter, ObjectOutcome, PlannedObject, Status, execute
from .options import TransferOptions
from .plan import DEFAULT_PART_SIZE
from .state import state_dir

logger = logging.getLogger("partdl")

T = TypeVar("T")

# Objects planned before they are balanced into batches: bounds the driver's memory
# at any listing size while still balancing well.
WINDOW = 4096
# Batches per executor slot in a window (and tasks waiting per slot): more than one,
# so a slot that finishes early finds work, and a lost task takes fewer objects with it.
_PER_SLOT = 2


def balance(items: Sequence[T], weight: Callable[[T], int], count: int) -> list[list[T]]:
    """``items`` in at most ``count`` groups of nearly equal total ``weight``.

    Heaviest first, each into the lightest group so far (the LPT rule: never worse
    than 4/3 of the best split). Empty groups are left out; items keep no order.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    groups: list[list[T]] = [[] for _ in range(min(count, len(items)))]
    heap = [(0, index) for index in range(len(groups))]
    for item in sorted(items, key=weight, reverse=True):
        load, index = heapq.heappop(heap)
        groups[index].append(item)
        heapq.heappush(heap, (load + weight(item), index))
    return [group for group in groups if group]


def executor_slots(executor: Executor) -> int:
    """How many tasks ``executor`` runs at once: its workers (Dask: their threads)."""
    client = getattr(executor, "_client", None)
    nthreads = getattr(client, "nthreads", None)
    if callable(nthreads):  # distributed's ClientExecutor
        with contextlib.suppress(Exception):
            return max(1, int(sum(nthreads().values())))
    workers = getattr(executor, "_max_workers", None)
    if isinstance(workers, int) and workers > 0:
        return workers
    return os.cpu_count() or 2


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One batch of planned objects, as it travels to a worker.

    The plans carry their backends, which pickle with their bucket (an ``oss2.Bucket``
    as it is, an :class:`~partdl.S3Bucket` or :class:`~partdl.OssV2Bucket` as a recipe
    for a new client). ``repr`` shows only counts: a task's repr is what executors log.
    """

    plans: tuple[PlannedObject, ...]
    options: TransferOptions
    root: str | None
    """The tree's directory, whose folders the worker makes on its own disk."""

    def __repr__(self) -> str:
        size = sum(_weight(plan) for plan in self.plans)
        return f"TaskSpec({len(self.plans)} objects, about {size} bytes)"


def run_task(spec: TaskSpec) -> list[ObjectOutcome]:
    """Fetch one batch on this worker, with a scheduler of ``task_num`` connections."""
    folders = _Folders(spec.root)
    plans: list[PlannedObject] = []
    failed: list[ObjectOutcome] = []
    for plan in spec.plans:
        try:
            folders.make_for(plan)
        except PartdlError as exc:
            failed.append(_failed(plan, exc))
        else:
            plans.append(plan)
    outcomes: list[ObjectOutcome] = []
    execute(plans, spec.options, Meter(lambda: None), outcomes.append)
    return [_portable(outcome) for outcome in (*failed, *outcomes)]


class ExecutorRunner:
    """The batch's execution seam, run on ``executor`` instead of in this process."""

    def __init__(self, executor: Executor, root: str | None) -> None:
        self._executor = executor
        self._root = root
        self._slots = executor_slots(executor)

    def __call__(
        self,
        plans: Iterable[PlannedObject],
        options: TransferOptions,
        meter: Meter,
        on_outcome: Callable[[ObjectOutcome], None],
    ) -> None:
        pending: dict[Future[list[ObjectOutcome]], TaskSpec] = {}
        try:
            todo = iter(plans)
            while window := list(itertools.islice(todo, WINDOW)):
                for group in balance(window, _weight, _PER_SLOT * self._slots):
                    spec = TaskSpec(tuple(group), options, self._root)
                    while len(pending) >= 2 * _PER_SLOT * self._slots:
                        self._collect(pending, meter, on_outcome)
                    pending[self._executor.submit(run_task, spec)] = spec
            while pending:
                self._collect(pending, meter, on_outcome)
        finally:
            for future in pending:
                future.cancel()

    @staticmethod
    def _collect(
        pending: dict[Future[list[ObjectOutcome]], TaskSpec],
        meter: Meter,
        on_outcome: Callable[[ObjectOutcome], None],
    ) -> None:
        done, _ = wait(list(pending), timeout=0.1, return_when=FIRST_COMPLETED)
        meter.tick()
        for future in done:
            spec = pending.pop(future)
            try:
                outcomes = future.result()
            except Exception as exc:  # a lost worker, a broken pool, a bug: the task's objects
                logger.warning("a task of %d objects failed: %r", len(spec.plans), exc)
                lost = TransferError(f"the task fetching this object was lost: {exc!r}")
                outcomes = [_failed(plan, lost) for plan in spec.plans]
            for outcome in outcomes:
                if outcome.status is Status.DOWNLOADED:
                    meter.add(outcome.size)
                on_outcome(outcome)


def _weight(plan: PlannedObject) -> int:
    # Without a listing the size is unknown until the GET: count it as one part.
    return plan.listed.size if plan.listed is not None else DEFAULT_PART_SIZE


def _failed(plan: PlannedObject, error: PartdlError) -> ObjectOutcome:
    return ObjectOutcome(
        plan.key,
        plan.destination,
        Status.FAILED,
        plan.listed.size if plan.listed else 0,
        error=error,
        source=plan.backend.source,
        relative=plan.relative,
    )


def _portable(outcome: ObjectOutcome) -> ObjectOutcome:
    """``outcome`` with an error that survives pickling on its way back to the driver."""
    error = outcome.error
    if error is None:
        return outcome
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        error = PartdlError(str(error))
    return ObjectOutcome(
        outcome.key,
        outcome.path,
        outcome.status,
        outcome.size,
        error=error,
        result=outcome.result,
        source=outcome.source,
        relative=outcome.relative,
        mtime_ns=outcome.mtime_ns,
    )


class _Folders:
    """The folders of a tree on this worker's disk, made as the driver's would be.

    The driver checked every path; a worker on another machine still refuses a link
    or a file where a folder should be, so nothing lands outside the tree there either.
    """

    def __init__(self, root: str | None) -> None:
        self._root = root
        self._made: set[str] = set()

    def make_for(self, plan: PlannedObject) -> None:
        if self._root is None:
            self._plain(os.path.dirname(plan.destination))
            return
        relative = os.path.relpath(os.path.dirname(plan.destination), self._root)
        parts = [] if relative == os.curdir else relative.split(os.sep)
        if os.pardir in parts:
            raise LocalFileError(errno.EINVAL, f"{plan.destination} is outside {self._root}")
        current = self._root
        self._plain(self._root)
        self._plain(os.path.join(state_dir(self._root), "checkpoints"))
        for part in parts:
            current = os.path.join(current, part)
            if current in self._made:
                continue
            make_folder(current)
            self._made.add(current)

    def _plain(self, folder: str) -> None:
        if folder in self._made:
            return
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise files.local_error(exc, folder, "make the folder") from exc
        self._made.add(folder)


__all__ = ["ExecutorRunner", "TaskSpec", "balance", "executor_slots", "run_task"]
