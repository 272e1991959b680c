"""Every entry point, sharing one :class:`~partdl.options.TransferOptions`.

``download`` (any :class:`~partdl.backend.Backend`), ``download_file`` (a bucket
and a key), ``download_url`` (an http(s) URL), ``download_prefix`` and
``download_many`` (trees and lists of objects). Each spells out its keywords, so
``help()`` shows them, builds the options once (validated before any request or
file) and passes them down: one object to the engine's :class:`Downloader`, many to
the batch layer and the shared scheduler. The backends never import this module or
the engine. requests is imported on first use of an HTTP entry point only; the engine
on the first download; and the tree layer (the batch planner, the tree's SQLite
state, the filters) on the first call of ``download_prefix`` or ``download_many``,
after its listing's first request has gone out.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, cast

from .backend import Backend
from .backends import open_backend
from .backends.subrange import ByteRange, narrowed
from .control import Control
from .errors import InvalidArgumentError, PartdlError, UnknownLength
from .listing import BucketBackend, WholeObjectBackend
from .model import DownloadResult
from .options import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_TASK_NUM,
    ProgressCallback,
    TransferOptions,
    make_target,
    path_text,
)
from .plan import DEFAULT_STALL_TIMEOUT
from .retry import RetryPolicy

if TYPE_CHECKING:
    import requests

    from .batch import BatchProgressCallback, BatchResult, Entry, ObjectCallback
    from .engine import StreamOpener

Item = tuple[Any, str, "str | os.PathLike[str]"]

logger = logging.getLogger("partdl")


# -- one object -----------------------------------------------------------------------


def download(
    backend: Backend,
    path: str | os.PathLike[str],
    *,
    part_size: int | None = None,
    task_num: int = DEFAULT_TASK_NUM,
    checkpoint: bool = True,
    checkpoint_file: str | os.PathLike[str] | None = None,
    progress_callback: ProgressCallback | None = None,
    retry: RetryPolicy | None = None,
    control: Control | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    fsync: bool = True,
) -> DownloadResult:
    """Download the object ``backend`` names to ``path``; see :func:`download_file`."""
    options = TransferOptions.of(
        part_size=part_size,
        task_num=task_num,
        checkpoint=checkpoint,
        retry=retry,
        chunk_size=chunk_size,
        fsync=fsync,
    )
    return download_object(backend, path, options, checkpoint_file, progress_callback, control)


def download_object(
    backend: Backend,
    path: str | os.PathLike[str],
    options: TransferOptions,
    checkpoint_file: str | os.PathLike[str] | None = None,
    progress_callback: ProgressCallback | None = None,
    control: Control | None = None,
) -> DownloadResult:
    """What every single-object entry point comes to, with its options built."""
    from .engine import Downloader, stream_download

    target = make_target(path, checkpoint_file, checkpoint=options.checkpoint)
    downloader = Downloader(
        backend, target, options, progress_callback=progress_callback, control=control
    )
    try:
        return downloader.run()
    except PartdlError as exc:
        open_stream = _stream_of(backend, exc)
        if open_stream is None:
            raise
    logger.warning(
        "%s takes no ranges and sends no length: downloading it as one stream, "
        "which cannot be resumed",
        backend.source,
    )
    target = make_target(path, None, checkpoint=False)
    return stream_download(
        open_stream, target, options, progress_callback=progress_callback, control=control
    )


def _stream_of(backend: Backend, exc: PartdlError) -> StreamOpener | None:
    """How to read ``backend`` whole when ``exc`` says only a stream of unknown length
    can (a URL whose server takes no ranges and says no length); else None."""
    if not isinstance(exc, UnknownLength):
        return None  # before the import: any other failure must not load requests
    from .backends.http import HttpBackend

    return backend.open_stream if isinstance(backend, HttpBackend) else None


def download_file(
    bucket: Any,
    key: str,
    path: str | os.PathLike[str],
    part_size: int | None = None,
    task_num: int = DEFAULT_TASK_NUM,
    checkpoint: bool = True,
    *,
    checkpoint_file: str | os.PathLike[str] | None = None,
    progress_callback: ProgressCallback | None = None,
    version_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    control: Control | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    byte_range: ByteRange | tuple[int, int | None] | None = None,
    fsync: bool = True,
) -> DownloadResult:
    """Download ``key`` from ``bucket`` to ``path`` in parallel ranges, resumably.

    ``bucket`` is an ``oss2.Bucket``, an :class:`OssV2Bucket` (an OSS SDK V2 client and
    a bucket name), a :class:`S3Bucket` (a boto3 client and a bucket name) or a boto3
    ``s3.Bucket`` resource. ``part_size`` (100 KiB to 5 GiB; chosen from the
    object size when None) and ``task_num`` (parallel GETs) shape the transfer. With
    ``checkpoint`` a ``<path>.dcp`` file (or ``checkpoint_file``) records finished
    parts, so running the same call again after any interruption fetches only what is
    missing. ``progress_callback(consumed_bytes, total_bytes)`` is called from the
    calling thread. ``headers`` are sent with every request (request payer, traffic
    limit, ...). A connection that delivers nothing for ``stall_timeout`` seconds is
    abandoned and its part resumed on a new one, under ``retry``. The destination is
    replaced only once the whole file is in place and its checksum matches the server's.
    ``byte_range=(start, end)`` downloads only those bytes, ``end`` inclusive as in HTTP
    (``None`` for the end of the object). Once this returns, the file and the removal
    of its checkpoint survive a power cut; ``fsync=False`` skips every flush to disk
    (scratch data: the file is complete for every process at once, but after a power
    cut or an OS crash it may be missing, old or hold zeros where data was).

    Raises a :class:`PartdlError` subclass on failure; bad arguments raise
    :class:`InvalidArgumentError`, which is also a ``ValueError``.
    """
    options = TransferOptions.of(
        part_size=part_size,
        task_num=task_num,
        checkpoint=checkpoint,
        retry=retry,
        chunk_size=chunk_size,
        stall_timeout=stall_timeout,
        headers=headers,
        fsync=fsync,
    )
    whole = open_backend(
        bucket,
        key,
        version_id=version_id,
        headers=options.headers,
        pool_size=options.task_num,
        stall_timeout=options.stall_timeout,
    )
    return download_object(
        narrowed(whole, byte_range), path, options, checkpoint_file, progress_callback, control
    )


def download_url(
    url: str,
    path: str | os.PathLike[str],
    part_size: int | None = None,
    task_num: int = DEFAULT_TASK_NUM,
    checkpoint: bool = True,
    *,
    head_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
    checkpoint_file: str | os.PathLike[str] | None = None,
    progress_callback: ProgressCallback | None = None,
    retry: RetryPolicy | None = None,
    control: Control | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    byte_range: ByteRange | tuple[int, int | None] | None = None,
    fsync: bool = True,
) -> DownloadResult:
    """Download the object at an HTTP(S) ``url`` to ``path`` in parallel ranges, resumably.

    ``url`` may be presigned: it is only used for GETs. Pass ``head_url`` (a URL
    signed for HEAD) to learn the size and ETag with a HEAD; otherwise a one-byte
    ranged GET does. ``headers`` go with every request; ``session`` is used as given
    (by default one with ``task_num`` pooled connections is made and closed). The
    other arguments are those of :func:`download_file`. A signed query string
    never reaches the checkpoint, logs or errors, and a checkpoint made with one
    signature resumes with a URL signed again.
    """
    options = TransferOptions.of(
        part_size=part_size,
        task_num=task_num,
        checkpoint=checkpoint,
        retry=retry,
        chunk_size=chunk_size,
        stall_timeout=stall_timeout,
        headers=headers,
        fsync=fsync,
    )
    from .backends.http import CONNECT_TIMEOUT, HttpBackend

    with HttpBackend(
        url,
        head_url=head_url,
        session=session,
        headers=options.headers,
        pool_size=options.task_num,
        timeout=(CONNECT_TIMEOUT, options.stall_timeout),
    ) as backend:
        return download_object(
            narrowed(backend, byte_range),
            path,
            options,
            checkpoint_file,
            progress_callback,
            control,
        )


# -- many objects ---------------------------------------------------------------------


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
    fsync: bool = True,
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
    their mtime; with ``fsync=False`` nothing is flushed to disk (as in
    :func:`download_file`), small files and folders included.

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
    from .filters import PathFilter
    from .keys import relative_to_prefix
    from .readahead import ReadAhead

    options = TransferOptions.of(
        part_size=part_size,
        task_num=task_num,
        checkpoint=checkpoint,
        retry=retry,
        chunk_size=chunk_size,
        stall_timeout=stall_timeout,
        headers=headers,
        fsync=fsync,
    )
    select = PathFilter(include, exclude)
    if not isinstance(prefix, str):
        raise InvalidArgumentError(f"prefix must be a string, got {type(prefix).__name__}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    template = bucket_backend(bucket, prefix, options)
    # The next page is requested while the keys of the last one are being fetched.
    listing = ReadAhead(template.list_objects(prefix))
    with contextlib.closing(listing):
        # The first page is on its way while the tree layer loads (~50 ms of imports).
        listing.start()
        from .batch import Entry, run_batch

        def entries() -> Iterator[Entry]:
            for listed in listing:
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
    fsync: bool = True,
    executor: Executor | None = None,
) -> BatchResult:
    """Download ``(bucket, key, path)`` items through one pool of ``task_num`` GETs.

    ``bucket`` is any bucket :func:`partdl.download_file` takes (they may differ from
    item to item), or None with ``key`` an http(s):// URL (``session`` then serves
    every URL). Items are read as they are needed (on a rerun into a ``directory`` with
    a state, 256 ahead, to look them up at once), so a generator of any length works.
    Without ``directory`` each ``path`` is used as given (its folders are made) and a
    large object's checkpoint sits beside it. With ``directory``, paths are relative
    to it, checked like keys of a tree, and unchanged objects are skipped on a rerun,
    as in :func:`download_prefix`. An object of one part costs one GET (and, without
    a listing to pin it, no HEAD either: the GET's answer says the size). The other
    arguments (``executor`` included: without a listing, batches are balanced by
    count), the result and the errors are those of :func:`download_prefix`.
    """
    from .batch import Entry, run_batch

    options = TransferOptions.of(
        part_size=part_size,
        task_num=task_num,
        checkpoint=checkpoint,
        retry=retry,
        chunk_size=chunk_size,
        stall_timeout=stall_timeout,
        headers=headers,
        fsync=fsync,
    )
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


def _item(item: Any) -> tuple[Any, str, str]:
    if not isinstance(item, tuple | list) or len(item) != 3:
        raise InvalidArgumentError(f"an item must be (bucket, key, path), got {item!r}")
    bucket, key, path = item
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"an item's key must be a non-empty string, got {key!r}")
    return bucket, key, path_text(path, "an item's path")


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
