"""Trees through ONE shared scheduler: small and large objects on the same ``task_num``
loops, never more GETs in flight, and a large object's restart, failure and resume
its own business.

Against the real local store. Where an order of events must be forced, a request is
held at the server until another arrives; the timeouts only end a wait a broken
client would never end, and never decide a result.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

import partdl
from partdl import execute
from partdl.checkpoint import decode
from partdl.state import checkpoint_path
from tests.helpers import PART
from tests.store import LocalStore, Seen
from tests.test_batch import Requests, make_bucket, put_all, tree

QUICK = partdl.RetryPolicy(attempts=3, backoff=0.005, backoff_max=0.02)
BIG_PARTS = 6


@pytest.fixture(params=["oss", "s3", "oss-direct", "s3-direct"])
def bucket(request: pytest.FixtureRequest, store: LocalStore, bucket_name: str) -> Any:
    return make_bucket(str(request.param), store, bucket_name)


def mixed_tree(bigs: int = 3, smalls: int = 24) -> dict[str, bytes]:
    """Large objects listed first (``a-big-N``), then many small ones."""
    objects = {f"t/a-big-{i}": os.urandom(BIG_PARTS * PART - i) for i in range(bigs)}
    objects |= {f"t/b-small-{i:02}": os.urandom(3000 + i) for i in range(smalls)}
    return objects


def ranges(seen: list[Seen], key: str) -> list[str]:
    return sorted(s.range for s in seen if s.key == key and s.method == "GET" and s.range)


def heads(seen: list[Seen], key: str) -> int:
    return sum(1 for s in seen if s.key == key and s.method == "HEAD")


def part_ranges(size: int) -> list[str]:
    return sorted(f"bytes={start}-{min(start + PART, size) - 1}" for start in range(0, size, PART))


class HoldUntilSmall:
    """Holds the first part GET of ``t/a-big-0`` at the server until a GET of a small
    object arrives, and notes whether one did while it was held."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.held = False
        self.small_while_held = False
        self._released = False

    def release(self) -> None:
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def __call__(self, seen: Seen) -> None:
        if seen.method != "GET" or not seen.key:
            return
        with self._cond:
            if seen.key.startswith("t/b-small-"):
                if self.held:
                    self.small_while_held = True
                    self._cond.notify_all()
                return
            if seen.key == "t/a-big-0" and seen.range and seen.range.startswith("bytes=0-"):
                self.held = True
                self._cond.wait_for(lambda: self.small_while_held or self._released, timeout=10)
                self.held = False


def test_small_and_large_objects_overlap_on_task_num_gets(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    objects = mixed_tree()
    put_all(store, bucket_name, objects)
    seen = Requests(store, bucket_name)
    hold = HoldUntilSmall()
    store.before_request = hold
    outcomes: list[partdl.ObjectOutcome] = []
    try:
        result = partdl.download_prefix(
            bucket, "t/", tmp_path, part_size=PART, task_num=3, on_object=outcomes.append
        )
    finally:
        store.before_request = None

    assert tree(tmp_path) == {k[2:]: v for k, v in objects.items()}
    assert sorted(result.downloaded) == sorted(objects)
    # A small object's GET went out while a part of a large one was in flight.
    assert hold.small_while_held
    assert store.peak_in_flight(bucket_name) <= 3
    requests = seen.take()
    for key, data in objects.items():
        if "small" in key:
            assert [(s.method, s.range) for s in requests if s.key == key] == [("GET", None)]
        else:
            assert heads(requests, key) == 1
            assert ranges(requests, key) == part_ranges(len(data))
    # Each object is reported as it ends, once.
    assert sorted(o.key for o in outcomes) == sorted(objects)


def test_an_object_changed_mid_tree_restarts_alone(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    objects = mixed_tree(bigs=2, smalls=6)
    put_all(store, bucket_name, objects)
    newer = os.urandom(BIG_PARTS * PART + 7)
    seen = Requests(store, bucket_name)
    changed = threading.Event()

    def meddle(request: Seen) -> None:
        # A part GET of a-big-1 arrives: a new version replaces it just before, so this
        # GET (If-Match on the HEAD's ETag) answers 412.
        if request.key == "t/a-big-1" and request.range and not changed.is_set():
            changed.set()
            store.put(bucket_name, "t/a-big-1", newer)

    store.before_request = meddle
    outcomes: dict[str, partdl.ObjectOutcome] = {}
    try:
        partdl.download_prefix(
            bucket,
            "t/",
            tmp_path,
            part_size=PART,
            task_num=3,
            on_object=lambda o: outcomes.__setitem__(o.key, o),
        )
    finally:
        store.before_request = None

    assert changed.is_set()
    assert tree(tmp_path) == {k[2:]: v for k, v in objects.items()} | {"a-big-1": newer}
    restarted = outcomes["t/a-big-1"].result
    assert restarted is not None
    assert restarted.restarts == 1
    requests = seen.take()
    assert heads(requests, "t/a-big-1") == 2
    for key, data in objects.items():
        if key == "t/a-big-1":
            continue
        outcome = outcomes[key].result
        assert outcome is not None
        assert outcome.restarts == 0
        if "small" in key:
            assert [(s.method, s.range) for s in requests if s.key == key] == [("GET", None)]
        else:
            assert heads(requests, key) == 1
            assert ranges(requests, key) == part_ranges(len(data))


def test_a_large_object_resumes_inside_a_tree_fetching_only_missing_parts(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    objects = mixed_tree(bigs=2, smalls=6)
    put_all(store, bucket_name, objects)
    size = len(objects["t/a-big-1"])
    failing = f"bytes={(BIG_PARTS - 1) * PART}-{size - 1}"  # its last part
    assert failing in part_ranges(size)

    def refuse(request: Seen) -> None:
        if request.key == "t/a-big-1" and request.range == failing:
            raise RuntimeError("the test's store refuses this part")  # answered with a 500

    store.before_request = refuse
    try:
        with pytest.raises(partdl.PartialDownloadError) as caught:
            partdl.download_prefix(bucket, "t/", tmp_path, part_size=PART, task_num=2, retry=QUICK)
    finally:
        store.before_request = None
    assert list(caught.value.result.failed) == ["t/a-big-1"]
    saved = decode(Path(checkpoint_path(str(tmp_path), "a-big-1")).read_bytes())
    # The last part is taken after every part but the one before it has finished.
    assert set(range(BIG_PARTS - 2)) <= set(saved.parts)
    assert BIG_PARTS - 1 not in saved.parts

    seen = Requests(store, bucket_name)
    outcomes: dict[str, partdl.ObjectOutcome] = {}
    second = partdl.download_prefix(
        bucket,
        "t/",
        tmp_path,
        part_size=PART,
        task_num=2,
        on_object=lambda o: outcomes.__setitem__(o.key, o),
    )

    assert tree(tmp_path) == {k[2:]: v for k, v in objects.items()}
    assert second.downloaded == ["t/a-big-1"]
    result = outcomes["t/a-big-1"].result
    assert result is not None
    assert result.parts_reused == len(saved.parts)
    assert result.parts_fetched == BIG_PARTS - len(saved.parts)
    requests = seen.take()
    missing = [
        r for i, r in enumerate(sorted(part_ranges(size), key=_start)) if i not in saved.parts
    ]
    assert ranges(requests, "t/a-big-1") == sorted(missing)
    assert not os.path.exists(checkpoint_path(str(tmp_path), "a-big-1"))
    assert not [p for p in tmp_path.rglob("*.tmp")]


def _start(byte_range: str) -> int:
    return int(byte_range.split("=")[1].split("-", maxsplit=1)[0])


def test_an_interrupt_mid_tree_stops_every_worker_and_leaves_resumable_state(
    store: LocalStore, bucket_name: str, bucket: Any, tmp_path: Path
) -> None:
    objects = mixed_tree()
    put_all(store, bucket_name, objects)
    hold = store.before_request = HoldUntilSmall()

    def interrupt(outcome: partdl.ObjectOutcome) -> None:
        hold.release()  # the held GET answers, so its worker can see the stop
        raise KeyboardInterrupt  # as Ctrl-C would, on the calling thread

    try:
        with pytest.raises(KeyboardInterrupt):
            partdl.download_prefix(
                bucket, "t/", tmp_path, part_size=PART, task_num=3, on_object=interrupt
            )
    finally:
        store.before_request = None
    # Every temp file left is a large object's, named by its checkpoint; no lock is held.
    folder = tmp_path / ".partdl" / "checkpoints"
    saved = [decode(p.read_bytes()) for p in folder.glob("*.dcp")] if folder.exists() else []
    assert {str(p) for p in tmp_path.rglob("*.tmp")} <= {s.temp_path for s in saved}
    assert all(s.destination.startswith(str(tmp_path / "a-big-")) for s in saved)

    seen = Requests(store, bucket_name)
    partdl.download_prefix(bucket, "t/", tmp_path, part_size=PART, task_num=3)
    assert tree(tmp_path) == {k[2:]: v for k, v in objects.items()}
    assert not list(tmp_path.rglob("*.tmp"))
    assert not list(tmp_path.rglob("*.partdl.lock"))
    requests = seen.take()
    for checkpoint in saved:
        key = "t/" + os.path.basename(checkpoint.destination)
        fetched = ranges(requests, key)
        assert len(fetched) == BIG_PARTS - len(checkpoint.parts)


# -- a serving loop's group of small GETs -------------------------------------------------


class _Sent:
    """A written GET as a group sees it: only its socket matters here."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def answer(self) -> Any:
        raise AssertionError("not read here")

    def close(self) -> None:
        pass


def test_a_group_reads_first_the_answers_that_arrived(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        sent: list[Any] = [_Sent(ours.fileno()) for ours, _ in pairs]
        monkeypatch.setattr(execute, "_ANSWER_WAIT", 0.01)
        # Nothing arrived: the first is read, under its own read timeout.
        assert execute._answered(sent) == [0]
        pairs[2][1].sendall(b"HTTP/1.1 200 OK\r\n")
        assert execute._answered(sent) == [2]
        pairs[1][1].close()  # an answer that will never come is read (and fails) too
        assert sorted(execute._answered(sent)) == [1, 2]
        # A GET that could not be written, or was not: its failure is known at once.
        assert execute._answered([sent[0], _Sent(-1), None]) == [1, 2]
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def test_many_small_objects_keep_several_gets_in_flight_within_task_num(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    objects = {f"s/{i:03}": os.urandom(1000 + i) for i in range(60)}
    put_all(store, bucket_name, objects)
    seen = Requests(store, bucket_name)
    bucket = make_bucket("oss-direct", store, bucket_name)
    result = partdl.download_prefix(bucket, "s/", tmp_path, task_num=5)
    assert tree(tmp_path) == {k[2:]: v for k, v in objects.items()}
    assert sorted(result.downloaded) == sorted(objects)
    assert store.peak_in_flight(bucket_name) <= 5
    requests = seen.take()
    for key in objects:
        assert [(s.method, s.range) for s in requests if s.key == key] == [("GET", None)]
    # More objects than one group holds, and some of their GETs were in flight together.
    assert store.peak_in_flight(bucket_name) > 1
    assert len(objects) > execute.GROUP_OBJECTS


@pytest.mark.parametrize("kind", ["oss-direct", "s3-direct"])
def test_a_small_object_changed_after_the_listing_goes_the_large_way_and_leaves_nothing(
    store: LocalStore, bucket_name: str, tmp_path: Path, kind: str
) -> None:
    objects = {f"g/{i:02}": os.urandom(2000 + i) for i in range(12)}
    put_all(store, bucket_name, objects)
    newer = os.urandom(5000)
    changed = threading.Event()

    def meddle(request: Seen) -> None:
        # g/05's GET, written with the group's, now answers 412: the object goes the
        # engine's way (HEAD, the new version), and nothing of the first try is left.
        if request.key == "g/05" and request.method == "GET" and not changed.is_set():
            changed.set()
            store.put(bucket_name, "g/05", newer)

    def open_files() -> list[str]:
        found = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found.append(os.readlink(f"/proc/self/fd/{fd}"))
        return sorted(path for path in found if path.startswith(str(tmp_path)))

    seen = Requests(store, bucket_name)
    store.before_request = meddle
    try:
        partdl.download_prefix(make_bucket(kind, store, bucket_name), "g/", tmp_path, task_num=4)
    finally:
        store.before_request = None
    assert changed.is_set()
    assert tree(tmp_path) == {k[2:]: v for k, v in objects.items()} | {"05": newer}
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []
    assert open_files() == []  # nothing of the run is still open
    assert heads(seen.take(), "g/05") == 1  # pinned again: the new version
