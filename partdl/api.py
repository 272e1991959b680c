"""The entry points for many objects, sharing one :class:`TransferOptions`.

``download_file`` and ``download_url`` join this module when the engine's
scheduler lands (their signatures are being reworked meanwhile).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, cast

from .backends import open_backend
from .backends._body import DEFAULT_STALL_TIMEOUT
from .batch import (
    BatchProgressCallback,
    BatchResult,
    Entry,
    ObjectCallback,
    run_batch,
)
from .errors import InvalidArgumentError
from .filters import PathFilter
from .keys import relative_to_prefix
from .listing import BucketBackend, WholeObjectBackend
from .options import DEFAULT_CHUNK_SIZE, DEFAULT_TASK_NUM
from .retry import RetryPolicy
from .transfer import TransferOptions

if TYPE_CHECKING:
    import requests

Item = tuple[Any, str, "str | os.PathLike[str]"]


def bucket_backend(bucket: Any, key: str, options: TransferOptions) -> BucketBackend:
    """A backend for ``key`` that can list ``bucket`` and reach its other keys."""
    backend = open_backend(
        bucket,
        key or "-",
        headers=options.headers,
        pool_size=options.task_num,
        stall_timeout=options.stall_timeout,
    )
    if not all(hasattr(backend, name) for name in ("for_key", "list_objects", "read_whole")):
        raise InvalidArgumentError(f"{type(bucket).__qualname__} cannot list objects")
    return cast(BucketBackend, backend)


def download_prefix(
    bucket: Any,
    prefix: str,
    directory: str | os.PathLike[str],
    part_size: int | None = None,
    task_num: int = DEFAULT_TASK_NUM,
    checkpoint: bool = True,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    progress_callback: BatchProgressCallback | None = None,
    on_object: ObjectCallback | None = None,
    dry_run: bool = False,
    headers: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    executor: Executor | None = None,
) -> BatchResult:
    """Download every object under ``prefix`` into ``directory``, as a tree.

    ``prefix`` names a folder (a ``/`` is added when missing; ``""`` is the whole
    bucket); the key ``prefix + "a/b.bin"`` goes to ``directory/a/b.bin``. ``include``
    and ``exclude`` are globs on that relative path (see :mod:`partdl.filters`). All
    objects share ``task_num`` connections: never more GETs in flight. An object of
    one part costs one GET and no HEAD; larger ones are fetched in parts and resume
    from their checkpoint in ``directory/.partdl/``. A rerun skips every object whose
    ETag is the one recorded there and whose file is untouched, so it sends only LIST
    requests when nothing changed. Finished files take the object's Last-Modified as
    their mtime.

    A key that cannot be a file under ``directory`` (``..``, a NUL, a name too long,
    a file another key needs as a folder) fails alone; nothing is written outside
    ``directory``. ``progress_callback(BatchProgress)`` and ``on_object(ObjectOutcome)``
    are called from the calling thread. With ``dry_run`` nothing is fetched or written:
    the result tells what would be. Returns a :class:`BatchResult`; if any object
    failed, raises :class:`PartialDownloadError` (with the result) once every other
    object has finished. A failing listing raises its error.

    ``executor`` (any ``concurrent.futures.Executor``: a ``ProcessPoolExecutor``, a
    Dask ``Client.get_executor()``) runs the transfers in batches balanced by bytes,
    each batch a task with ``task_num`` connections of its own; the listing, the
    skip decisions and the tree's state stay in this process (see
    :mod:`partdl.distribute`).
    """
    options = _options(part_size, task_num, checkpoint, retry, chunk_size, stall_timeout, headers)
    select = PathFilter(include, exclude)
    if not isinstance(prefix, str):
        raise InvalidArgumentError(f"prefix must be a string, got {type(prefix).__name__}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    template = bucket_backend(bucket, prefix, options)

    def entries() -> Iterator[Entry]:
        for listed in template.list_objects(prefix):
            relative = relative_to_prefix(listed.key, prefix)
            if select.active and not select(relative.rstrip("/")):
                continue
            key = listed.key
            yield Entry(key, relative, listed, lambda key=key: template.for_key(key))  # type: ignore[misc]

    return run_batch(
        entries(),
        directory=os.fspath(directory),
        options=options,
        dry_run=dry_run,
        progress_callback=progress_callback,
        on_object=on_object,
        executor=_checked_executor(executor),
    )


def download_many(
    items: Iterable[Item],
    part_size: int | None = None,
    task_num: int = DEFAULT_TASK_NUM,
    checkpoint: bool = True,
    *,
    directory: str | os.PathLike[str] | None = None,
    progress_callback: BatchProgressCallback | None = None,
    on_object: ObjectCallback | None = None,
    dry_run: bool = False,
    headers: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    session: requests.Session | None = None,
    executor: Executor | None = None,
) -> BatchResult:
    """Download ``(bucket, key, path)`` items through one pool of ``task_num`` GETs.

    ``bucket`` is any bucket :func:`partdl.download_file` takes (they may differ from
    item to item), or None with ``key`` an http(s):// URL (``session`` then serves
    every URL). Items are read as they are needed, so a generator of any length works.
    Without ``directory`` each ``path`` is used as given (its folders are made) and a
    large object's checkpoint sits beside it. With ``directory``, paths are relative
    to it, checked like keys of a tree, and unchanged objects are skipped on a rerun,
    as in :func:`download_prefix`. An object of one part costs one GET (and, without
    a listing to pin it, no HEAD either: the GET's answer says the size). The other
    arguments (``executor`` included: without a listing, batches are balanced by
    count), the result and the errors are those of :func:`download_prefix`.
    """
    options = _options(part_size, task_num, checkpoint, retry, chunk_size, stall_timeout, headers)
    with contextlib.ExitStack() as stack:
        opener = _Openers(options, session, stack)

        def entries() -> Iterator[Entry]:
            for item in items:
                bucket, key, path = _item(item)
                backend = opener.open(bucket, key)
                shown = key if bucket is not None else backend.source
                yield Entry(shown, os.fspath(path), None, lambda backend=backend: backend)  # type: ignore[misc]

        return run_batch(
            entries(),
            directory=None if directory is None else os.fspath(directory),
            options=options,
            dry_run=dry_run,
            progress_callback=progress_callback,
            on_object=on_object,
            executor=_checked_executor(executor),
        )


def _checked_executor(executor: object) -> Executor | None:
    if executor is None or isinstance(executor, Executor):
        return executor
    raise InvalidArgumentError(
        f"executor must be a concurrent.futures.Executor, got {type(executor).__qualname__}"
    )


def _item(item: Any) -> tuple[Any, str, str | os.PathLike[str]]:
    if not isinstance(item, tuple | list) or len(item) != 3:
        raise InvalidArgumentError(f"an item must be (bucket, key, path), got {item!r}")
    bucket, key, path = item
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"an item's key must be a non-empty string, got {key!r}")
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise InvalidArgumentError(f"an item's path must be a non-empty path, got {path!r}")
    return bucket, key, path


class _Openers:
    """One backend per bucket, siblings per key: every item shares its bucket's pool."""

    def __init__(
        self,
        options: TransferOptions,
        session: requests.Session | None,
        stack: contextlib.ExitStack,
    ) -> None:
        self._options = options
        self._session = session
        self._stack = stack
        self._buckets: dict[int, tuple[Any, BucketBackend]] = {}

    def open(self, bucket: Any, key: str) -> WholeObjectBackend:
        if bucket is None:
            return self._url(key)
        known = self._buckets.get(id(bucket))
        if known is None:
            known = self._buckets[id(bucket)] = (bucket, bucket_backend(bucket, key, self._options))
        return known[1].for_key(key)

    def _url(self, url: str) -> WholeObjectBackend:
        from .backends.http import CONNECT_TIMEOUT, HttpBackend, new_session

        if self._session is None:
            self._session = new_session(self._options.task_num)
            self._stack.callback(self._session.close)
        return HttpBackend(
            url,
            session=self._session,
            headers=self._options.headers,
            timeout=(CONNECT_TIMEOUT, self._options.stall_timeout),
        )


def _options(
    part_size: int | None,
    task_num: int,
    checkpoint: bool,
    retry: RetryPolicy | None,
    chunk_size: int,
    stall_timeout: float,
    headers: Mapping[str, str] | None,
) -> TransferOptions:
    return TransferOptions(
        part_size=part_size,
        task_num=task_num,
        checkpoint=checkpoint,
        retry=retry if retry is not None else RetryPolicy(),
        chunk_size=chunk_size,
        stall_timeout=stall_timeout,
        headers=headers,
    )
