"""Trees of objects against the real local store, through oss2, the OSS SDK V2 and boto3."""

from __future__ import annotations

import functools
import itertools
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import partdl
from partdl import files
from partdl.backends import open_backend
from partdl.backends._signing import Keys
from partdl.backends.oss_direct import OssDirectBucket
from partdl.backends.s3_direct import S3DirectBucket
from partdl.oss_setup import OssKeys
from partdl.state import LOOKUP_CHUNK
from tests.helpers import OSS_REGION, PART
from tests.store import LocalStore, Seen, oss_v2_client
from tests.targets import Target, presign

PREFIX = "data/v3/"


@functools.cache
def _oss_v2(endpoint: str) -> Any:
    # One client per store, as an application keeps one: it pools its connections.
    return oss_v2_client(endpoint)


def make_bucket(kind: str, store: LocalStore, name: str) -> Any:
    if kind == "oss":
        return store.oss_bucket(name)
    if kind == "ossv2":
        return partdl.OssV2Bucket(_oss_v2(store.endpoint), name)
    # The command's own clients: their small GETs go several to a serving loop.
    if kind == "oss-direct":
        return OssDirectBucket(store.endpoint, name, OSS_REGION, OssKeys("test", "test"))
    if kind == "s3-direct":
        return S3DirectBucket(store.endpoint, name, "us-east-1", Keys("test", "test"))
    return partdl.S3Bucket(store.s3, name)


@pytest.fixture(params=["oss", "ossv2", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bucket(kind: str, store: LocalStore, bucket_name: str) -> Any:
    return make_bucket(kind, store, bucket_name)


def put_all(store: LocalStore, name: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        store.put(name, key, data)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but partdl's state folder, by relative path."""
    found = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not (folder == str(root) and d == ".partdl")]
        for name in names:
            path = Path(folder, name)
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def folders(root: Path) -> set[str]:
    return {
        str(Path(folder, d).relative_to(root))
        for folder, dirs, _ in os.walk(root)
        for d in dirs
        if d != ".partdl"
    }


def state_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / ".partdl").rglob("*"))


class Requests:
    """The requests one bucket received since the last ``take``."""

    def __init__(self, store: LocalStore, bucket: str) -> None:
        self._store, self._bucket = store, bucket
        self._seen = len(store.requests(bucket))

    def take(self) -> list[Seen]:
        seen = self._store.requests(self._bucket)
        new, self._seen = seen[self._seen :], len(seen)
        return [s for s in new if s.method != "PUT"]


def listings(seen: list[Seen]) -> list[Seen]:
    return [s for s in seen if s.method == "GET" and not s.key]


def object_requests(seen: list[Seen]) -> list[tuple[str, str, str | None]]:
    return sorted(((s.method, s.key, s.range) for s in seen if s.key), key=str)


def objects_for_a_tree() -> dict[str, bytes]:
    return {
        PREFIX + "a.bin": os.urandom(5000),
        PREFIX + "empty": b"",
        PREFIX + "sub/deeper/b.txt": b"hello",
        PREFIX + "sub/name with spaces & ü.bin": os.urandom(300),
        PREFIX + "only-a-folder/": b"",
        PREFIX + "big.bin": os.urandom(3 * PART + 5),
        "data/v3.txt": b"beside the prefix, not under it",
        "data/v30/x": b"a longer prefix",
        "other/a.bin": b"elsewhere",
    }


def test_tree_is_byte_identical_one_get_per_small_object_and_nothing_else(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    objects = objects_for_a_tree()
    put_all(store, bucket_name, objects)
    seen = Requests(store, bucket_name)
    root = tmp_path / "out"

    result = partdl.download_prefix(bucket, "data/v3", root, part_size=PART, task_num=4)

    wanted = {k[len(PREFIX) :]: v for k, v in objects.items() if k.startswith(PREFIX)}
    files = {k: v for k, v in wanted.items() if not k.endswith("/")}
    assert tree(root) == files
    assert folders(root) == {"sub", "sub/deeper", "only-a-folder"}
    assert sorted(result.downloaded) == sorted(PREFIX + k for k in files)
    assert result.skipped == []
    assert result.failed == {}
    assert result.bytes_downloaded == sum(len(v) for v in files.values())
    assert state_files(root) == [".partdl/state.sqlite"]
    assert os.listdir(tmp_path) == ["out"]
    requests = seen.take()
    assert len(listings(requests)) == 1
    small = [PREFIX + k for k in files if k != "big.bin"]
    expected: list[tuple[str, str, str | None]] = [("GET", key, None) for key in small]
    expected += [("HEAD", PREFIX + "big.bin", None)]
    expected += [
        ("GET", PREFIX + "big.bin", f"bytes={i * PART}-{min((i + 1) * PART, 3 * PART + 5) - 1}")
        for i in range(4)
    ]
    assert object_requests(requests) == sorted(expected, key=str)
    # The one GET of a small object is pinned to the listing's ETag.
    assert all("if-match" in s.headers for s in requests if s.key and s.method == "GET")


def test_finished_files_carry_the_objects_last_modified(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    store.put(bucket_name, "p/small", b"x" * 10)
    store.put(bucket_name, "p/big", os.urandom(2 * PART))
    partdl.download_prefix(bucket, "p/", tmp_path, part_size=PART)
    for key in ("p/small", "p/big"):
        head = store.s3.head_object(Bucket=bucket_name, Key=key)
        assert os.stat(tmp_path / key[2:]).st_mtime == head["LastModified"].timestamp()


def test_rerun_sends_only_lists_and_refetches_a_same_size_overwrite_alone(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    objects = {f"{PREFIX}f{i:02}": os.urandom(1000) for i in range(10)}
    objects[PREFIX + "big"] = os.urandom(2 * PART + 1)
    put_all(store, bucket_name, objects)
    seen = Requests(store, bucket_name)
    partdl.download_prefix(bucket, PREFIX, tmp_path, part_size=PART, task_num=3)
    seen.take()

    again = partdl.download_prefix(bucket, PREFIX, tmp_path, part_size=PART, task_num=3)

    assert sorted(again.skipped) == sorted(objects)
    assert again.downloaded == []
    assert again.bytes_skipped == sum(len(v) for v in objects.values())
    requests = seen.take()
    assert object_requests(requests) == []
    assert len(listings(requests)) == 1

    # Same size, within the same second: only the ETag tells.
    changed = os.urandom(1000)
    store.put(bucket_name, PREFIX + "f03", changed)
    edited = tmp_path / "f07"
    edited.write_bytes(b"a local edit")

    third = partdl.download_prefix(bucket, PREFIX, tmp_path, part_size=PART, task_num=3)

    assert sorted(third.downloaded) == [PREFIX + "f03", PREFIX + "f07"]
    assert object_requests(seen.take()) == [
        ("GET", PREFIX + "f03", None),
        ("GET", PREFIX + "f07", None),
    ]
    assert (tmp_path / "f03").read_bytes() == changed
    assert edited.read_bytes() == objects[PREFIX + "f07"]


def recorded_paths(root: Path) -> list[str]:
    with sqlite3.connect(f"file:{root / '.partdl' / 'state.sqlite'}?mode=ro", uri=True) as db:
        return sorted(row[0] for row in db.execute("SELECT path FROM objects"))


def test_every_finished_object_is_recorded_once_the_call_returns(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    # Rows are written in groups while objects finish; none may be left behind.
    objects = {f"p/d{i % 3}/f{i:02}": os.urandom(100 + i) for i in range(40)}
    objects["p/big"] = os.urandom(2 * PART + 3)
    put_all(store, bucket_name, objects)
    bucket = store.oss_bucket(bucket_name)
    outcomes: list[partdl.ObjectOutcome] = []

    partdl.download_prefix(
        bucket, "p/", tmp_path, part_size=PART, task_num=4, on_object=outcomes.append
    )

    assert recorded_paths(tmp_path) == sorted(k[2:] for k in objects)
    # Each outcome tells the mtime its file kept, small or large: what the state records.
    assert {o.key: o.mtime_ns for o in outcomes} == {
        k: os.stat(tmp_path / k[2:]).st_mtime_ns for k in objects
    }
    seen = Requests(store, bucket_name)
    again = partdl.download_prefix(bucket, "p/", tmp_path, part_size=PART, task_num=4)
    assert sorted(again.skipped) == sorted(objects)
    assert object_requests(seen.take()) == []


def test_a_rerun_looks_the_state_up_in_chunks_in_listing_order(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    keys = [f"p/{i:04}" for i in range(2 * LOOKUP_CHUNK + 30)]
    store.put_empty(bucket_name, keys)
    put_all(store, bucket_name, {"p/x": b"a file named x", "p/x/y": b"needs a folder x"})
    bucket = store.oss_bucket(bucket_name)
    with pytest.raises(partdl.PartialDownloadError):
        partdl.download_prefix(bucket, "p/", tmp_path, task_num=4)
    gone = keys[5::97]  # a few in every chunk
    for key in gone:
        (tmp_path / key[2:]).unlink()
    seen = Requests(store, bucket_name)
    outcomes: list[partdl.ObjectOutcome] = []

    with pytest.raises(partdl.PartialDownloadError) as caught:
        partdl.download_prefix(bucket, "p/", tmp_path, task_num=4, on_object=outcomes.append)

    result = caught.value.result
    listed = [*keys, "p/x", "p/x/y"]
    # Skips are decided while planning, so they come in the listing's order.
    assert result.skipped == [k for k in listed if k not in gone and k != "p/x/y"]
    assert sorted(result.downloaded) == gone
    assert list(result.failed) == ["p/x/y"]
    assert isinstance(result.failed["p/x/y"], partdl.UnsafeKeyError)
    assert len(outcomes) == len(listed)
    assert object_requests(seen.take()) == [("GET", k, None) for k in gone]
    assert tree(tmp_path) == {k[2:]: b"" for k in keys} | {"x": b"a file named x"}


def test_only_large_objects_reserve_their_space_up_front(
    store: LocalStore, bucket_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reserved: list[int] = []
    real = files._preallocate

    def spy(fd: int, size: int) -> None:
        reserved.append(size)
        real(fd, size)

    monkeypatch.setattr(files, "_preallocate", spy)
    objects = {
        "p/small": os.urandom(3000),
        "p/one-part": os.urandom(PART),
        "p/big": os.urandom(3 * PART + 1),
    }
    put_all(store, bucket_name, objects)

    partdl.download_prefix(store.oss_bucket(bucket_name), "p/", tmp_path, part_size=PART)

    assert tree(tmp_path) == {k[2:]: v for k, v in objects.items()}
    assert reserved == [3 * PART + 1]  # a small object's bytes follow at once


def test_small_files_take_the_umask_each_run_finds(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    put_all(store, bucket_name, {"p/a": b"a", "p/sub/b": b"b"})
    bucket = store.oss_bucket(bucket_name)
    previous = os.umask(0o027)
    try:
        partdl.download_prefix(bucket, "p/", tmp_path)
        assert {p: os.stat(tmp_path / p).st_mode & 0o777 for p in ("a", "sub/b")} == {
            "a": 0o640,
            "sub/b": 0o640,
        }
        os.umask(0o002)
        store.put(bucket_name, "p/a", b"a, changed")  # replaces a file: keeps its mode
        store.put(bucket_name, "p/c", b"c")  # a new file: this run's umask
        partdl.download_prefix(bucket, "p/", tmp_path)
    finally:
        os.umask(previous)
    assert (tmp_path / "a").read_bytes() == b"a, changed"
    assert os.stat(tmp_path / "a").st_mode & 0o777 == 0o640
    assert os.stat(tmp_path / "c").st_mode & 0o777 == 0o664


class Gate:
    """Holds object GETs at the server in rounds of ``width``: a client with ``width``
    GETs in flight fills each round, so the server sees exactly that many at once.
    The timeout only ends a round a client failed to fill; it never decides a result."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._cond = threading.Condition()
        self._arrived = 0

    def __call__(self, seen: Seen) -> None:
        if seen.method != "GET" or not seen.key:
            return
        with self._cond:
            self._arrived += 1
            end_of_round = -(-self._arrived // self.width) * self.width
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._arrived >= end_of_round, timeout=10)


def test_gets_in_flight_never_exceed_task_num_and_small_objects_go_in_parallel(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    tasks = 3
    objects = {f"p/small-{i:02}": os.urandom(2000) for i in range(5 * tasks)}
    objects["p/zz-big"] = os.urandom(2 * tasks * PART)  # listed last: 6 parts
    put_all(store, bucket_name, objects)
    store.before_request = Gate(tasks)
    try:
        partdl.download_prefix(bucket, "p/", tmp_path, part_size=PART, task_num=tasks)
    finally:
        store.before_request = None
    assert tree(tmp_path) == {k[2:]: v for k, v in objects.items()}
    assert store.peak_in_flight(bucket_name) == tasks


def test_include_and_exclude(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    keys = ["a.parquet", "b.csv", "tmp/c.parquet", "x/d.parquet", "x/tmp/e.parquet"]
    put_all(store, bucket_name, {PREFIX + k: k.encode() for k in keys})
    seen = Requests(store, bucket_name)

    result = partdl.download_prefix(
        bucket, PREFIX, tmp_path, include=["*.parquet"], exclude=["tmp/*"]
    )

    taken = ["a.parquet", "x/d.parquet", "x/tmp/e.parquet"]
    assert tree(tmp_path) == {k: k.encode() for k in taken}
    assert sorted(result.downloaded) == [PREFIX + k for k in taken]
    assert {s.key for s in seen.take() if s.key} == {PREFIX + k for k in taken}


def test_unsafe_and_conflicting_keys_fail_alone_and_nothing_escapes(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    unsafe = {
        "p/../escaped": "'..' segment",
        "p/a/../../escaped": "'..' segment",
        "p/x/./y": "'.' segment",
        "p//rooted": "starts with '/'",
        "p/a//b": "empty path segment",
        "p/back\\slash": "backslash",
        "p/.partdl/state.sqlite": "inside .partdl/",
        "p/" + "n" * 300: "the file system allows",
        "p/f/g": "needs a folder 'f'",
        "p/f.partdl-0123abcd.tmp": "temp and lock",
    }
    good = {"p/ok.bin": b"ok", "p/f": b"a file named f", "p/sub/fine": b"fine"}
    put_all(store, bucket_name, {k: b"bad" for k in unsafe} | good)
    root = tmp_path / "out"

    with pytest.raises(partdl.PartialDownloadError) as caught:
        partdl.download_prefix(bucket, "p/", root)

    result = caught.value.result
    assert sorted(result.failed) == sorted(unsafe)
    for key, message in unsafe.items():
        assert isinstance(result.failed[key], partdl.UnsafeKeyError), key
        assert message in str(result.failed[key]), key
    assert sorted(result.downloaded) == sorted(good)
    assert tree(root) == {k[2:]: v for k, v in good.items()}
    assert os.listdir(tmp_path) == ["out"]
    assert isinstance(caught.value, partdl.PartdlError)


def test_a_state_folder_that_cannot_be_made_is_named(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    # As on a read-only DIR: the state folder cannot be made (here a file has its name).
    root = tmp_path / "out"
    root.mkdir()
    (root / ".partdl").write_bytes(b"not a folder")
    put_all(store, bucket_name, {"p/y": b"y"})
    with pytest.raises(partdl.LocalFileError) as caught:
        partdl.download_prefix(make_bucket("oss", store, bucket_name), "p/", root)
    assert caught.value.strerror == f"cannot make the folder {root / '.partdl'}: File exists"
    assert sorted(os.listdir(root)) == [".partdl"]
    # The listing starts before the state is opened, so a LIST may have gone out; no object did.
    assert [seen.key for seen in store.requests(bucket_name, "GET") if seen.key] == []


def test_an_existing_link_in_the_tree_is_never_followed(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    (root / "linked").symlink_to(outside)
    put_all(store, bucket_name, {"p/linked/x": b"x", "p/y": b"y"})

    with pytest.raises(partdl.PartialDownloadError) as caught:
        partdl.download_prefix(bucket, "p/", root)

    assert list(caught.value.result.failed) == ["p/linked/x"]
    assert isinstance(caught.value.result.failed["p/linked/x"], partdl.LocalFileError)
    assert os.listdir(outside) == []
    assert (root / "y").read_bytes() == b"y"


def test_an_object_gone_or_changed_after_the_listing(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    put_all(store, bucket_name, {"p/gone": b"1", "p/changed": b"old", "p/kept": b"k"})
    newer = os.urandom(3 * PART)

    def meddle(seen: Seen) -> None:
        if seen.method == "GET" and seen.key == "p/gone":
            store.s3.delete_object(Bucket=bucket_name, Key="p/gone")
        # The first, whole-object GET: the listing's version is replaced just before it.
        first = seen.range is None and "if-match" in seen.headers
        if seen.method == "GET" and seen.key == "p/changed" and first:
            store.put(bucket_name, "p/changed", newer)

    store.before_request = meddle
    try:
        with pytest.raises(partdl.PartialDownloadError) as caught:
            partdl.download_prefix(bucket, "p/", tmp_path, part_size=PART)
    finally:
        store.before_request = None
    result = caught.value.result
    assert list(result.failed) == ["p/gone"]
    assert isinstance(result.failed["p/gone"], partdl.NotFoundError)
    assert tree(tmp_path) == {"changed": newer, "kept": b"k"}


def test_a_missing_bucket_is_the_listings_error_and_leaves_nothing_behind(
    store: LocalStore, kind: str, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    missing = make_bucket(kind, store, "no-such-bucket")

    for target in (tmp_path / "new" / "tree", tmp_path / "empty"):
        with pytest.raises(partdl.NotFoundError):
            partdl.download_prefix(missing, "p/", target)

    # The folder it had to make is gone; the one that was there stays, empty.
    assert sorted(os.listdir(tmp_path)) == ["empty", "new"]
    assert os.listdir(tmp_path / "new") == []
    assert os.listdir(tmp_path / "empty") == []


def test_a_prefix_with_nothing_under_it_leaves_nothing_behind(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    put_all(store, bucket_name, {"p/a": b"a"})
    (tmp_path / "empty").mkdir()

    for target in (tmp_path / "new", tmp_path / "empty"):
        result = partdl.download_prefix(bucket, "p/a/", target)  # a key, not a prefix
        assert (result.downloaded, result.skipped, result.failures) == ([], [], [])

    assert sorted(os.listdir(tmp_path)) == ["empty"]
    assert os.listdir(tmp_path / "empty") == []
    # A tree that was there keeps its state when a later listing is empty.
    partdl.download_prefix(bucket, "p/", tmp_path / "tree")
    before = state_files(tmp_path / "tree")
    partdl.download_prefix(bucket, "q/", tmp_path / "tree")
    assert state_files(tmp_path / "tree") == before


def test_a_failed_listing_keeps_the_state_of_an_earlier_run(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    put_all(store, bucket_name, {"p/a": b"a"})
    partdl.download_prefix(bucket, "p/", tmp_path)
    before = state_files(tmp_path)

    with pytest.raises(partdl.NotFoundError):
        partdl.download_prefix(make_bucket("oss", store, "no-such-bucket"), "p/", tmp_path)

    assert state_files(tmp_path) == before
    assert ".partdl/state.sqlite" in before
    seen = Requests(store, bucket_name)
    assert partdl.download_prefix(bucket, "p/", tmp_path).skipped == ["p/a"]
    assert [r.method for r in seen.take() if r.key] == []


def test_dry_run_sends_no_get_and_writes_nothing(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    put_all(store, bucket_name, {"p/a": b"a", "p/b": b"bb", "p/../c": b"c"})
    partdl.download_prefix(bucket, "p/", tmp_path / "first", include=["a"])
    seen = Requests(store, bucket_name)
    progress: list[partdl.BatchProgress] = []
    outcomes: list[partdl.ObjectOutcome] = []

    with pytest.raises(partdl.PartialDownloadError) as caught:
        partdl.download_prefix(
            bucket,
            "p/",
            tmp_path / "first",
            dry_run=True,
            progress_callback=progress.append,
            on_object=outcomes.append,
        )

    result = caught.value.result
    assert result.dry_run
    assert (result.downloaded, result.skipped, list(result.failed)) == (
        ["p/b"],
        ["p/a"],
        ["p/../c"],
    )
    assert object_requests(seen.take()) == []
    assert sorted(os.listdir(tmp_path / "first")) == [".partdl", "a"]
    assert progress[-1].listing_done
    assert (progress[-1].files_total, progress[-1].bytes_total) == (1, 2)
    assert sorted((o.key, o.status.value) for o in outcomes) == [
        ("p/../c", "failed"),
        ("p/a", "skipped"),
        ("p/b", "downloaded"),
    ]
    assert not (tmp_path / "never").exists()
    with pytest.raises(partdl.PartialDownloadError):
        partdl.download_prefix(bucket, "p/", tmp_path / "never", dry_run=True)
    assert not (tmp_path / "never").exists()


def test_progress_reports_bytes_and_files(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    objects = {f"p/{i}": os.urandom(500 * i) for i in range(1, 6)}
    objects["p/big"] = os.urandom(2 * PART)
    put_all(store, bucket_name, objects)
    progress: list[partdl.BatchProgress] = []

    partdl.download_prefix(
        bucket, "p/", tmp_path, part_size=PART, progress_callback=progress.append
    )

    total = sum(len(v) for v in objects.values())
    last = progress[-1]
    assert (last.bytes_done, last.bytes_total, last.files_done, last.files_total) == (
        total,
        total,
        6,
        6,
    )
    assert all(a.bytes_done <= b.bytes_done for a, b in itertools.pairwise(progress))


def test_every_backends_listing_streams_page_by_page(store: LocalStore, bucket_name: str) -> None:
    keys = [f"p/{i:04}" for i in range(1001)]  # one more than a page
    store.put_empty(bucket_name, keys)
    for kind in ("oss", "ossv2", "s3"):
        seen = Requests(store, bucket_name)
        backend: Any = open_backend(make_bucket(kind, store, bucket_name), "p/")

        listed = backend.list_objects("p/")
        first = next(listed)

        assert len(listings(seen.take())) == 1, kind  # the second page is not asked for yet
        assert [first.key, *(o.key for o in listed)] == keys, kind
        assert len(listings(seen.take())) == 1, kind


@pytest.mark.parametrize("kind", ["oss-direct", "s3"])
def test_a_tree_asks_for_its_next_page_while_fetching_the_first(
    store: LocalStore, bucket_name: str, kind: str, tmp_path: Path
) -> None:
    keys = [f"p/{i:04}" for i in range(1001)]  # one more than a page
    store.put_empty(bucket_name, keys)
    seen = Requests(store, bucket_name)

    result = partdl.download_prefix(make_bucket(kind, store, bucket_name), "p/", tmp_path)

    assert len(result.downloaded) == 1001
    order = seen.take()
    second_page = order.index(listings(order)[1])
    gets_before = [s.key for s in order[:second_page] if s.key]
    # Listed on the scheduler's own thread, the second page was asked for only once
    # the first page's 1,000 keys had been handed out.
    assert len(gets_before) < 500
    assert sorted(s.key for s in order if s.key) == keys


def test_download_many_across_buckets_and_urls(store: LocalStore, tmp_path: Path) -> None:
    one, two = store.new_bucket(), store.new_bucket()
    data = {key: os.urandom(size) for key, size in (("a", 3000), ("b", 2 * PART + 7), ("c", 10))}
    store.put(one, "k/a", data["a"])
    store.put(two, "k/b", data["b"])
    store.put(two, "k/c", data["c"])
    url = presign(Target("http", store, two, fetch=None, key="k/c"))  # type: ignore[arg-type]
    items = [
        (store.oss_bucket(one), "k/a", "x/a.bin"),
        (partdl.S3Bucket(store.s3, two), "k/b", "b.bin"),
        (None, url, "y/c.bin"),
    ]
    seen_one, seen_two = Requests(store, one), Requests(store, two)

    result = partdl.download_many(items, part_size=PART, task_num=2, directory=tmp_path)

    assert tree(tmp_path) == {"x/a.bin": data["a"], "b.bin": data["b"], "y/c.bin": data["c"]}
    assert len(result.downloaded) == 3
    assert object_requests(seen_one.take()) == [("GET", "k/a", None)]  # one GET, no HEAD
    assert ("GET", "k/c", None) in object_requests(seen_two.take())

    again = partdl.download_many(items, part_size=PART, task_num=2, directory=tmp_path)
    assert len(again.skipped) == 3
    assert [s.method for s in seen_one.take()] == ["HEAD"]


def test_download_many_counts_each_objects_bytes_once_its_size_is_known(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = {"k/small": os.urandom(3000), "k/big": os.urandom(2 * PART + 7)}
    put_all(store, bucket_name, data)
    bucket = store.oss_bucket(bucket_name)
    items = [(bucket, key, key) for key in [*data, "k/missing"]]
    progress: list[partdl.BatchProgress] = []

    with pytest.raises(partdl.PartialDownloadError):
        partdl.download_many(
            items, part_size=PART, directory=tmp_path, progress_callback=progress.append
        )

    total = sum(len(v) for v in data.values())
    last = progress[-1]
    assert (last.bytes_done, last.bytes_total, last.files_done, last.files_total) == (
        total,
        total,
        2,
        2,
    )
    assert all(p.bytes_total <= total for p in progress)


def test_download_many_without_a_directory_uses_paths_as_given(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, "k", b"data")
    bucket = store.oss_bucket(bucket_name)
    target = tmp_path / "made" / "file"
    items = [
        (bucket, "k", str(target)),
        (bucket, "k", str(target)),
        (bucket, "missing", str(tmp_path / "m")),
    ]

    with pytest.raises(partdl.PartialDownloadError) as caught:
        partdl.download_many(items)

    assert target.read_bytes() == b"data"
    failed = caught.value.result.failed
    assert isinstance(failed["missing"], partdl.NotFoundError)
    assert caught.value.result.downloaded == ["k"]
    assert sorted(os.listdir(tmp_path)) == ["made"]


def test_every_failure_is_kept_when_download_many_names_a_key_twice(
    store: LocalStore, tmp_path: Path
) -> None:
    one, two = store.new_bucket(), store.new_bucket()
    store.put(one, "k", b"here")
    items = [
        (store.oss_bucket(one), "k", "ok.bin"),
        (store.oss_bucket(two), "k", "from-two.bin"),  # the same key, missing there
        (store.oss_bucket(one), "gone", "first.bin"),
        (store.oss_bucket(one), "gone", "second.bin"),  # the same source, another path
    ]

    with pytest.raises(partdl.PartialDownloadError) as caught:
        partdl.download_many(items, directory=tmp_path)

    result = caught.value.result
    assert (tmp_path / "ok.bin").read_bytes() == b"here"
    assert result.downloaded == ["k"]
    failures = sorted((f.key, os.path.basename(f.path)) for f in result.failures)
    assert failures == [("gone", "first.bin"), ("gone", "second.bin"), ("k", "from-two.bin")]
    assert all(isinstance(f.error, partdl.NotFoundError) for f in result.failures)
    assert sorted(result.failed) == ["gone", "k"]
    assert not result.ok
    assert "3 of 4 objects failed" in str(caught.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b, d: partdl.download_prefix(b, "p/", d, task_num=0), "task_num"),
        (lambda b, d: partdl.download_prefix(b, "p/", d, include=["[x"]), "unclosed"),
        (lambda b, d: partdl.download_prefix(b, 7, d), "prefix must be a string"),  # type: ignore[arg-type]
        (lambda b, d: partdl.download_many([(b, "k")]), "must be"),  # type: ignore[list-item]
        (lambda b, d: partdl.download_prefix(object(), "p/", d), "unsupported bucket"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    call: Callable[[Any, Path], Any],
    message: str,
) -> None:
    seen = Requests(store, bucket_name)
    with pytest.raises(partdl.InvalidArgumentError, match=message):
        call(store.oss_bucket(bucket_name), tmp_path / "out")
    assert seen.take() == []
    assert not (tmp_path / "out").exists()


def test_a_folder_marker_holding_bytes_is_made_a_folder_with_a_warning(
    store: LocalStore,
    bucket_name: str,
    bucket: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    put_all(store, bucket_name, {"p/marker/": b"ten bytes!", "p/marker/in": b"x", "p/e/": b""})
    seen = Requests(store, bucket_name)

    with caplog.at_level("WARNING", logger="partdl"):
        result = partdl.download_prefix(bucket, "p/", tmp_path / "out")

    assert tree(tmp_path / "out") == {"marker/in": b"x"}
    assert folders(tmp_path / "out") == {"marker", "e"}
    assert result.downloaded == ["p/marker/in"]
    assert object_requests(seen.take()) == [("GET", "p/marker/in", None)]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        "p/marker/ ends in '/' but holds 10 bytes: made as a folder, its bytes not fetched"
    ]


def test_a_url_whose_whole_answer_has_no_length_goes_the_ranged_way_or_fails_alone(
    tmp_path: Path,
) -> None:
    from tests.servers import ObjectServer

    ranged_data, stream_data = os.urandom(3 * PART + 1), os.urandom(PART)
    # The first sends its whole answers chunked but takes ranges; the second takes none.
    with (
        ObjectServer(ranged_data, chunked=True) as ranged,
        ObjectServer(stream_data, chunked=True, ranges=False) as stream,
    ):
        items = [(None, ranged.url(), "ranged.bin"), (None, stream.url(), "stream.bin")]
        with pytest.raises(partdl.PartialDownloadError) as caught:
            partdl.download_many(items, part_size=PART, directory=tmp_path)
        stream_gets = [r for r in stream.requests if r.method == "GET"]
    assert (tmp_path / "ranged.bin").read_bytes() == ranged_data
    failed = caught.value.result.failed
    assert list(failed) == [stream.url()]
    assert "no Content-Length" in str(failed[stream.url()])
    assert len(stream_gets) == 2  # the one GET, then the engine's probe: no retries
    assert sorted(os.listdir(tmp_path)) == [".partdl", "ranged.bin"]
