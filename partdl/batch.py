"""Many objects: a prefix or a list of keys, through one pool of ``task_num`` GETs.

Three stages:

1. **Planning** (:class:`Tree`, on the calling thread): a key from the listing
   becomes a safe path (:mod:`partdl.keys`), passes the filters, claims its path
   against the other keys, and is skipped when the state of the last run shows the
   same ETag and the file is untouched. What remains is a :class:`PlannedObject`.
2. **Execution** (:func:`partdl.execute.execute`, the seam): takes the stream of
   planned objects through one shared scheduler and reports one
   :class:`ObjectOutcome` each as it ends; see that module.
3. **Recording** (:meth:`_Batch._outcome`, calling thread): each finished object is
   written to the tree's state, counted and reported as it ends, and the
   :class:`BatchResult` built.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import NamedTuple

from . import checkpoint as codec
from . import files
from .errors import DownloadLockedError, LocalFileError, PartdlError, PartialDownloadError
from .execute import Meter, ObjectOutcome, PlannedObject, Status, execute
from .keys import KeyPath, PathClaims, key_path
from .listing import ListedObject, WholeObjectBackend
from .options import TransferOptions
from .state import (
    LOOKUP_CHUNK,
    Recorded,
    TreeLock,
    TreeState,
    checkpoint_path,
    state_dir,
    unchanged,
)

logger = logging.getLogger("partdl")

# The least time between two calls of the progress callback, but for the last.
_MIN_REPORT_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """What ``progress_callback`` receives, from the calling thread.

    Totals count the objects to fetch (not the skipped ones) and grow while the
    listing streams in; ``listing_done`` says no object is left to plan. An object
    named without a listing (``download_many``) adds its bytes to ``bytes_total`` only
    once it is downloaded, when its size is known.
    """

    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    files_skipped: int
    files_failed: int
    listing_done: bool


BatchProgressCallback = Callable[[BatchProgress], object]
ObjectCallback = Callable[[ObjectOutcome], object]
# What runs the planned objects: :func:`partdl.execute.execute` in this process, or
# :class:`partdl.distribute.ExecutorRunner` on an executor.
Runner = Callable[
    [Iterable[PlannedObject], TransferOptions, Meter, Callable[[ObjectOutcome], None]], None
]


class BatchFailure(NamedTuple):
    """One object that failed: its key, the path it was meant for, and why."""

    key: str
    path: str
    error: PartdlError
    source: str = ""
    """The object as its store names it (``oss://bucket/key``, a URL without its
    query string), when a request was made for it; empty for a key refused before
    (an unsafe name, a path another key took)."""


@dataclass(slots=True)
class BatchResult:
    """What :func:`partdl.download_prefix` and :func:`partdl.download_many` return.

    Keys are the object keys (an HTTP item's URL without its query string). With
    ``dry_run``, ``downloaded`` lists what would be fetched and nothing was.
    ``bytes_downloaded`` is the size of the objects this run put in place (a file
    resumed from its checkpoint counts whole).
    """

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[BatchFailure] = field(default_factory=list)
    """Every failed object, in the order they failed."""
    bytes_downloaded: int = 0
    bytes_skipped: int = 0
    dry_run: bool = False

    @property
    def failed(self) -> dict[str, PartdlError]:
        """Each failed key's error. :func:`partdl.download_many` may name one key more
        than once (in other buckets, or to other paths): the last is kept here,
        :attr:`failures` has each."""
        return {failure.key: failure.error for failure in self.failures}

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def empty(self) -> bool:
        """No object at all: nothing was listed (or given)."""
        return not (self.downloaded or self.skipped or self.failures)


# -- planning ---------------------------------------------------------------------------


class Entry(NamedTuple):
    """One object to consider: from a listing, or named by the caller."""

    key: str
    relative: str
    """Its path under the tree (``/``-separated, unchecked), or the path as given."""
    listed: ListedObject | None
    open: Callable[[], WholeObjectBackend]


def _path_limit(directory: str, name: str, default: int) -> int:
    try:
        return os.pathconf(directory, name)
    except (OSError, ValueError):
        return default


def folds_case(directory: str) -> bool:
    """Whether the file system holding ``directory`` treats ``A`` and ``a`` as one name."""
    for path in (directory, state_dir(directory)):
        parent, name = os.path.split(path)
        if name.swapcase() == name or not os.path.exists(path):
            continue
        other = os.path.join(parent, name.swapcase())
        with contextlib.suppress(OSError):
            return os.path.exists(other) and os.path.samefile(path, other)
    return False


def sweep_temps(root: str, folder: str) -> None:
    """Remove the temp files of small downloads that died in ``folder`` of the tree.

    Keys with such names are refused, so every match is partdl's. A large object's
    temp file, which its checkpoint resumes, is kept, and so is one whose file is
    locked by a live download (``<name>.partdl.lock``).
    """
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        owner = files.temp_owner(name)
        if owner is None:
            continue
        destination = os.path.join(folder, owner)
        relative = os.path.relpath(destination, root).replace(os.sep, "/")
        if os.path.exists(checkpoint_path(root, relative)):
            continue
        try:
            with files.DestinationLock(destination):
                logger.info("removing a temp file a killed run left: %s", name)
                files.remove_quietly(os.path.join(folder, name))
        except (DownloadLockedError, LocalFileError):
            continue


def make_folder(path: str) -> None:
    """Make one folder of a tree, or accept one already there; never a link or a file."""
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except OSError as exc:
        raise files.local_error(exc, path, "make the folder") from exc
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise LocalFileError(
            errno.ENOTDIR,
            f"cannot make the folder {path}: a file or link of that name is in the way",
        )


class Tree:
    """The destination directory of a batch: its keys' paths, its state, its folders."""

    def __init__(self, directory: str, *, dry_run: bool, durable: bool = True) -> None:
        self.root = os.path.abspath(directory)
        self.dry_run = dry_run
        self.state = TreeState(self.root, read_only=dry_run, durable=durable)
        self.claims = PathClaims(fold_case=folds_case(self.root))
        self._name_max = _path_limit(self.root, "PC_NAME_MAX", 255)
        self._path_max = _path_limit(self.root, "PC_PATH_MAX", 4096)
        self._root_length = len(os.fsencode(self.root))
        self._made: set[str] = set()
        self._made_parents: set[tuple[str, ...]] = set()
        self.large_checkpoints: set[str] = set()
        if not dry_run:
            self._made.add(self.root)
            sweep_temps(self.root, self.root)

    def path(self, entry: Entry) -> KeyPath:
        path = key_path(
            entry.relative,
            root_length=self._root_length,
            name_max=self._name_max,
            path_max=self._path_max,
        )
        self.claims.claim(path, entry.key)
        return path

    def make_folders(self, parts: tuple[str, ...]) -> None:
        """Make the folders of a path under the root, refusing any link or file in the way.

        Each folder is visited once per run, and then cleared of the temp files a killed
        run left there (one directory scan per folder, not per object).
        """
        if parts in self._made_parents:  # the folder of the object before, most often
            return
        current = self.root
        for part in parts:
            current = os.path.join(current, part)
            if current in self._made:
                continue
            make_folder(current)
            self._made.add(current)
            sweep_temps(self.root, current)
        self._made_parents.add(parts)

    def sweep_checkpoints(self) -> None:
        """Drop the checkpoints (and temp files) of large objects this run did not see."""
        folder = os.path.join(state_dir(self.root), "checkpoints")
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                if path in self.large_checkpoints or not name.endswith(".dcp"):
                    continue
                data = files.read_small(path, 64 * 1024 * 1024)
                with contextlib.suppress(codec.CheckpointInvalid, TypeError):
                    saved = codec.decode(data or b"")
                    if files.is_temp_for(saved.destination, saved.temp_path):
                        files.remove_quietly(saved.temp_path)
                logger.info("removing the checkpoint of an object no longer listed: %s", name)
                files.remove_quietly(path)


def _place(tree: Tree, entry: Entry) -> KeyPath | PartdlError:
    """The entry's checked and claimed path in ``tree``, or why it cannot have one."""
    try:
        return tree.path(entry)
    except PartdlError as exc:
        return exc


def _head_if_kept(
    backend: WholeObjectBackend, recorded: Recorded, destination: str
) -> ListedObject | None:
    """A HEAD, for a key named without a listing whose earlier download is still in place.

    It costs one request instead of a GET; anything but a clean answer means fetch.
    """
    if not unchanged(recorded, backend.source, recorded.etag, recorded.size, destination):
        return None
    try:
        stat = backend.stat()
    except PartdlError as exc:
        logger.debug("HEAD %s failed (%s): fetching it", backend.source, exc)
        return None
    return ListedObject(backend.source, stat.size, stat.etag, stat.last_modified)


class _Counters:
    # A plain class: a dataclass costs a millisecond to define, at every first import.
    __slots__ = (
        "bytes_total",
        "files_done",
        "files_failed",
        "files_skipped",
        "files_total",
        "listing_done",
    )

    def __init__(self) -> None:
        self.bytes_total = self.files_total = 0
        self.files_done = self.files_skipped = self.files_failed = 0
        self.listing_done = False


class _Batch:
    """One call of download_prefix / download_many: plans, executes, records, reports."""

    def __init__(
        self,
        tree: Tree | None,
        options: TransferOptions,
        *,
        dry_run: bool,
        progress_callback: BatchProgressCallback | None,
        on_object: ObjectCallback | None,
        runner: Runner = execute,
    ) -> None:
        self._runner = runner
        self._tree = tree
        self._options = options
        self._dry_run = dry_run
        self._progress_callback = progress_callback
        self._on_object = on_object
        self._counters = _Counters()
        self._meter = Meter(self._tick)
        self._finished_since_tick = False
        self._last_report = 0.0
        self._last_value: BatchProgress | None = None
        self._claims = PathClaims()
        # Destinations of objects named without a listing: their size counts once known.
        self._unsized: set[str] = set()
        self.result = BatchResult(dry_run=dry_run)

    # -- reporting (calling thread) ------------------------------------------------------

    def _tick(self) -> None:
        """About every 0.1 s, and after each burst of news: write rows now due, report."""
        state = self._tree.state if self._tree is not None else None
        # While objects keep finishing their rows wait, up to FLUSH_INTERVAL; once a
        # tick passes with none finished, nothing is gained by waiting.
        if (
            state is not None
            and state.queued
            and (not self._finished_since_tick or state.overdue(time.monotonic()))
        ):
            state.flush()
        self._finished_since_tick = False
        self._report()

    def _report(self, *, force: bool = False) -> None:
        if self._progress_callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < _MIN_REPORT_INTERVAL:
            return
        counters = self._counters
        value = BatchProgress(
            bytes_done=self._meter.value,
            bytes_total=counters.bytes_total,
            files_done=counters.files_done,
            files_total=counters.files_total,
            files_skipped=counters.files_skipped,
            files_failed=counters.files_failed,
            listing_done=counters.listing_done,
        )
        if value != self._last_value:
            self._last_report, self._last_value = now, value
            self._progress_callback(value)

    def _finish(self, outcome: ObjectOutcome, *, planned: bool = True) -> None:
        result, counters = self.result, self._counters
        sized_now = planned and outcome.path in self._unsized
        if sized_now:
            self._unsized.discard(outcome.path)
            if outcome.status is Status.DOWNLOADED:
                counters.bytes_total += outcome.size
        if outcome.status is Status.DOWNLOADED:
            result.downloaded.append(outcome.key)
            result.bytes_downloaded += outcome.size
            counters.files_done += 1
        elif outcome.status is Status.SKIPPED:
            result.skipped.append(outcome.key)
            result.bytes_skipped += outcome.size
            counters.files_skipped += 1
        else:
            assert outcome.error is not None
            failure = BatchFailure(outcome.key, outcome.path, outcome.error, outcome.source)
            result.failures.append(failure)
            counters.files_failed += 1
            if planned:
                counters.files_total -= 1
                counters.bytes_total -= 0 if sized_now else outcome.size
            logger.info("%s failed: %s", outcome.key, outcome.error)
        if self._on_object is not None:
            self._on_object(outcome)
        self._report()

    # -- planning (calling thread) -------------------------------------------------------

    def _plans(self, entries: Iterable[Entry]) -> Iterator[PlannedObject]:
        for entry, path, recorded in self._placed(entries):
            try:
                if isinstance(path, PartdlError):
                    raise path
                plan = self._plan(entry, path, recorded)
            except PartdlError as exc:
                self._finish(
                    ObjectOutcome(
                        entry.key,
                        entry.relative,
                        Status.FAILED,
                        entry.listed.size if entry.listed else 0,
                        error=exc,
                    ),
                    planned=False,
                )
                continue
            if plan is None:
                continue
            self._counters.files_total += 1
            if plan.listed is not None:
                self._counters.bytes_total += plan.listed.size
            else:
                self._unsized.add(plan.destination)
            if self._dry_run:
                self._finish(
                    ObjectOutcome(
                        plan.key,
                        plan.destination,
                        Status.DOWNLOADED,
                        plan.listed.size if plan.listed else 0,
                    )
                )
                continue
            yield plan
        self._counters.listing_done = True
        self._report(force=True)

    def _placed(
        self, entries: Iterable[Entry]
    ) -> Iterator[tuple[Entry, KeyPath | PartdlError | None, Recorded | None]]:
        """Each entry in order, with its checked path in the tree and its row in the state.

        With rows to look up, entries are read :data:`LOOKUP_CHUNK` at a time for one
        query each; on a first run (an empty state) they stream one by one.
        """
        tree = self._tree
        if tree is None:
            for entry in entries:
                yield entry, None, None
            return
        if tree.state.empty:
            for entry in entries:
                yield entry, _place(tree, entry), None
            return
        pending = iter(entries)
        while chunk := [
            (entry, _place(tree, entry)) for entry in itertools.islice(pending, LOOKUP_CHUNK)
        ]:
            rows = tree.state.lookup_many(
                [
                    path.relative
                    for _, path in chunk
                    if isinstance(path, KeyPath) and not path.is_folder
                ]
            )
            for entry, path in chunk:
                yield entry, path, rows.get(path.relative) if isinstance(path, KeyPath) else None

    def _plan(
        self, entry: Entry, path: KeyPath | None, recorded: Recorded | None
    ) -> PlannedObject | None:
        tree = self._tree
        if tree is None or path is None:
            destination = os.path.abspath(entry.relative)
            parts = tuple(p for p in destination.split(os.sep) if p)
            self._claims.claim(KeyPath(parts, is_folder=False), entry.key)
            if not self._dry_run:
                try:
                    os.makedirs(os.path.dirname(destination), exist_ok=True)
                except OSError as exc:
                    raise files.local_error(exc, destination, "make the folder of") from exc
            return PlannedObject(entry.key, entry.open(), destination, entry.listed)
        if path.is_folder:
            if entry.listed is not None and entry.listed.size:
                # A file cannot be named "x/": its bytes are not fetched, the folder is made.
                logger.warning(
                    "%s ends in '/' but holds %d bytes: made as a folder, its bytes not fetched",
                    entry.key,
                    entry.listed.size,
                )
            if not self._dry_run:
                tree.make_folders(path.parts)
            return None
        destination = path.under(tree.root)
        backend = entry.open()
        listed = entry.listed
        if listed is None and recorded is not None:
            listed = _head_if_kept(backend, recorded, destination)
        if listed is not None and unchanged(
            recorded, backend.source, listed.etag, listed.size, destination
        ):
            self._finish(
                ObjectOutcome(entry.key, destination, Status.SKIPPED, listed.size),
                planned=False,
            )
            return None
        if not self._dry_run:
            tree.make_folders(path.parts[:-1])
        if listed is None or not self._options.fits_one_part(listed.size):
            tree.large_checkpoints.add(checkpoint_path(tree.root, path.relative))
        return PlannedObject(entry.key, backend, destination, listed, path.relative, tree.root)

    # -- the run -------------------------------------------------------------------------

    def run(self, entries: Iterable[Entry]) -> BatchResult:
        self._report(force=True)
        plans = self._plans(entries)
        if self._dry_run:
            for _ in plans:  # planning reports every object; nothing is fetched
                pass
        else:
            self._runner(plans, self._options, self._meter, self._outcome)
            if self._tree is not None:
                self._tree.state.flush()
                self._tree.sweep_checkpoints()
        self._report(force=True)
        return self.result

    def _outcome(self, outcome: ObjectOutcome) -> None:
        if outcome.status is Status.DOWNLOADED:
            self._record(outcome)
            self._finished_since_tick = True
        self._finish(outcome)

    def _record(self, outcome: ObjectOutcome) -> None:
        tree = self._tree
        if tree is None or outcome.result is None or outcome.relative is None:
            return
        mtime = outcome.mtime_ns
        if mtime is None:  # not taken where the file was finished: the file tells
            try:
                mtime = os.lstat(outcome.path).st_mtime_ns
            except OSError:
                return
        tree.state.record(
            outcome.relative, Recorded(outcome.source, outcome.result.etag, outcome.size, mtime)
        )


class _Footprint:
    """What a tree's run made before anything was fetched, to take back if it fails.

    A run that fails before a single object is in place (a listing refused: no such
    bucket, access denied), or that listed nothing (a mistyped prefix, a key given as
    one), leaves no ``.partdl`` folder it made itself, nor the directory it made; a
    large object's checkpoint, which would let a rerun resume, keeps them both.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.made_root = not os.path.lexists(root)
        self.made_state = self.made_root or not os.path.lexists(state_dir(root))
        self.take_back = False

    def _undo(self) -> bool:
        checkpoints = os.path.join(state_dir(self.root), "checkpoints")
        # A large object's checkpoint is something to resume: then everything stays.
        return self.take_back and self.made_state and not os.path.lexists(checkpoints)

    def remove_state(self) -> None:
        if self._undo():
            for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
                files.remove_quietly(os.path.join(state_dir(self.root), name))

    def remove_folders(self) -> None:
        """Only empty folders go: another run that took the lock meanwhile keeps its own."""
        if not self._undo():
            return
        with contextlib.suppress(OSError):
            os.rmdir(state_dir(self.root))
        if self.made_root:
            with contextlib.suppress(OSError):
                os.rmdir(self.root)


def run_batch(
    entries: Iterable[Entry],
    *,
    directory: str | None,
    options: TransferOptions,
    dry_run: bool,
    progress_callback: BatchProgressCallback | None,
    on_object: ObjectCallback | None,
    executor: Executor | None = None,
) -> BatchResult:
    """Run a batch and raise PartialDownloadError at the end if any object failed.

    With ``executor`` the transfers run there (see :mod:`partdl.distribute`); the
    planning, the tree's state and the result stay here.
    """
    footprint: _Footprint | None = None
    with contextlib.ExitStack() as stack:
        tree = None
        if directory is not None:
            root = os.path.abspath(directory)
            if not dry_run:
                footprint = _Footprint(root)
                try:
                    os.makedirs(root, exist_ok=True)
                except OSError as exc:
                    raise files.local_error(exc, root, "make the directory") from exc
                try:
                    os.makedirs(state_dir(root), exist_ok=True)
                except OSError as exc:  # a read-only DIR that exists, say
                    raise files.local_error(exc, state_dir(root), "make the folder") from exc
                stack.callback(footprint.remove_folders)  # last: once the lock is gone
                stack.enter_context(TreeLock(root))
                stack.callback(footprint.remove_state)  # after the state closes, under the lock
            tree = Tree(root, dry_run=dry_run, durable=options.fsync)
            stack.callback(tree.state.close)
        runner: Runner = execute
        if executor is not None:
            from .distribute import ExecutorRunner

            runner = ExecutorRunner(executor, tree.root if tree is not None else None)
        batch = _Batch(
            tree,
            options,
            dry_run=dry_run,
            progress_callback=progress_callback,
            on_object=on_object,
            runner=runner,
        )
        try:
            result = batch.run(entries)
        except BaseException:
            if footprint is not None and not batch.result.downloaded:
                footprint.take_back = True
            raise
        if footprint is not None and result.empty:
            footprint.take_back = True
    if result.failures:
        count = len(result.failures)
        first = result.failures[0]
        raise PartialDownloadError(
            f"{count} of {count + len(result.downloaded) + len(result.skipped)} objects "
            f"failed; the first, {first.key!r}: {first.error}",
            result,
        )
    return result


__all__ = [
    "BatchFailure",
    "BatchProgress",
    "BatchResult",
    "Entry",
    "ObjectOutcome",
    "PlannedObject",
    "Status",
    "Tree",
    "run_batch",
]
