"""The scheduler: splitting the range that would finish last, abandoning a crawling
connection, never churning a uniformly slow link, exact checkpoints through a kill
mid-split, and several jobs through one pool with never more than task_num GETs.

Everything runs against the real store, through the real fault proxy process where
a connection must misbehave. Nothing waits on a timer: a held request is a proxy
event, a crawl is bytes trickled at a rate far from any other connection's.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import oss2
import pytest

import partdl
from partdl import files
from partdl.backends.oss import OssBackend
from partdl.checkpoint import decode
from partdl.crc import ChecksumAlgorithm, checksum, updater
from partdl.errors import PartdlError
from partdl.model import ObjectStat
from partdl.plan import MiB, plan_parts
from partdl.scheduler import MIN_SPLIT, Job, Scheduler, Task, crawling
from partdl.worker import PartDone, PartWorker, Progress
from tests.faultchild import Child
from tests.faultproxy import TAG_HEADER, Fault, FaultProxy, Record, Rule
from tests.helpers import PART, leftovers
from tests.store import LocalStore

KEY = "data/object.bin"
QUICK = partdl.RetryPolicy(attempts=5, backoff=0.005, backoff_max=0.02)
# Parts with room for a split (MIN_SPLIT on either side), and parts without.
BIG = 4 * MiB
SMALL = MIN_SPLIT
assert 2 * MIN_SPLIT < BIG - 64 * 1024


@dataclasses.dataclass
class Scene:
    store: LocalStore
    proxy: FaultProxy
    bucket: str
    out: Path

    def put(self, data: bytes) -> None:
        self.store.put(self.bucket, KEY, data)

    def download(self, tag: str = "run", **options: Any) -> partdl.DownloadResult:
        bucket = oss2.Bucket(oss2.Auth("test", "test"), self.proxy.endpoint, self.bucket)
        settings: dict[str, Any] = {"task_num": 2, "retry": QUICK} | options
        return partdl.download(
            OssBackend(bucket, KEY, headers={TAG_HEADER: tag}), self.out, **settings
        )

    def gets(self, tag: str | None = None) -> list[Record]:
        prefix = f"/{self.bucket}/"
        return [
            r
            for r in self.proxy.log()
            if r.path.startswith(prefix) and r.method == "GET" and r.range
            if tag is None or r.tag == tag
        ]

    def command(self, tag: str, part_size: int) -> dict[str, Any]:
        return {
            "headers": {TAG_HEADER: tag},
            "endpoint": self.proxy.endpoint,
            "bucket": self.bucket,
            "key": KEY,
            "out": str(self.out),
            "part_size": part_size,
            "task_num": 2,
            "retry": dataclasses.asdict(QUICK),
        }


@pytest.fixture
def scene(store: LocalStore, fault_proxy: FaultProxy, bucket_name: str, tmp_path: Path) -> Scene:
    return Scene(store, fault_proxy, bucket_name, tmp_path / "out")


def span(record: Record) -> tuple[int, int]:
    """``[first, last]`` of a GET's Range header."""
    assert record.range is not None
    first, last = record.range.split("=")[1].split("-")
    return int(first), int(last)


def held_part_zero_and(split_after: int) -> tuple[Rule, Rule]:
    """Hold part 0's GET mid-body, and the split GET for its back once ``split_after``
    bytes of it went out. With two workers and four parts, the split GET comes after
    the GETs of parts 1 to 3, whatever their order: the second rule's fourth (nth=3)."""
    zero = f"bytes=0-{BIG - 1}"
    hold_zero = Rule((Fault("hold", after=10_000),), method="GET", range=zero)
    hold_split = Rule((Fault("hold", after=split_after),), method="GET", ranged=True, nth=(3,))
    return hold_zero, hold_split


# -- splitting --------------------------------------------------------------------------


def test_an_idle_worker_takes_over_the_back_of_the_range_still_running(scene: Scene) -> None:
    data = os.urandom(4 * BIG)
    scene.put(data)
    scene.proxy.set_rules(*held_part_zero_and(split_after=BIG))
    with ThreadPoolExecutor(1) as runner:
        future = runner.submit(scene.download, part_size=BIG)
        # Part 0 is stuck and the other worker ran out of parts: it split part 0.
        assert scene.proxy.wait_held(2) == 2
        scene.proxy.release()
        result = future.result()

    assert scene.out.read_bytes() == data
    gets = scene.gets()
    ranges = [g.range for g in gets]
    # One GET per part, plus the split ones inside part 0.
    starts = sorted(span(r)[0] // BIG for r in gets)
    assert starts.count(0) >= 2, ranges
    assert starts[starts.count(0) :] == [1, 2, 3], ranges
    backs = sorted((r for r in gets if span(r)[0] % BIG), key=lambda r: span(r)[0])
    # The back of part 0, from the bytes its running GET had claimed: that GET
    # delivered nothing after its first 10,000 bytes, so it keeps only its first read.
    assert span(backs[0]) == (64 * 1024, BIG - 1), ranges
    # On a loaded machine the worker freed by the release may find that back GET still
    # being read and split it in turn: each later split is a back of the one before.
    assert all(span(r)[1] == BIG - 1 for r in backs), ranges
    assert backs[-1].complete
    assert (result.parts_total, result.parts_fetched) == (4, 4)
    assert leftovers(scene.out.parent, "out") == []


@pytest.mark.parametrize("split_after", [10_000, BIG], ids=["back-mid-body", "back-all-sent"])
def test_a_kill_during_a_split_resumes_exactly(scene: Scene, split_after: int) -> None:
    data = os.urandom(4 * BIG)
    scene.put(data)
    scene.out.write_bytes(b"old")
    scene.proxy.set_rules(*held_part_zero_and(split_after))
    child = Child()
    try:
        child.send(op="download", **scene.command("killed", BIG))
        assert scene.proxy.wait_held(2) == 2, "the download never split part 0"
    finally:
        child.kill()
        scene.proxy.set_rules()
        scene.proxy.release()
        scene.proxy.wait_idle()
    assert scene.out.read_bytes() == b"old"
    checkpoint = scene.out.with_name("out.dcp")
    recorded = set(decode(checkpoint.read_bytes()).parts)
    # Part 0 was in two pieces, neither recorded alone; the others may have been.
    assert 0 not in recorded
    assert recorded <= {1, 2, 3}

    result = scene.download("final", part_size=BIG)

    assert scene.out.read_bytes() == data
    touched = {span(r)[0] // BIG for r in scene.gets("final")}
    assert touched == {0, 1, 2, 3} - recorded
    assert (result.parts_fetched, result.parts_reused) == (4 - len(recorded), len(recorded))
    assert leftovers(scene.out.parent, "out") == []


# -- abandoning -------------------------------------------------------------------------


def test_a_crawling_connection_is_abandoned_and_its_part_resumed_on_another(
    scene: Scene,
) -> None:
    # 1 MiB parts cannot be split, so only abandoning can rescue part 0, which would
    # take 16 s at 64 KiB/s while the other worker fetches the rest at full speed.
    data = os.urandom(12 * SMALL)
    scene.put(data)
    crawl = Fault("slow", rate=64 * 1024)
    scene.proxy.set_rules(Rule((crawl,), method="GET", range=f"bytes=0-{SMALL - 1}", times=1))

    result = scene.download(part_size=SMALL)

    assert scene.out.read_bytes() == data
    gets = scene.gets()
    slow = [r for r in gets if r.fault == "slow"]
    assert len(slow) == 1
    assert slow[0].ended == "client", "partdl never gave up on the crawling connection"
    assert slow[0].sent < SMALL
    resumed = [r for r in gets if r.fault is None and span(r)[0] < SMALL]
    assert len(resumed) == 1, [r.range for r in resumed]
    first, last = span(resumed[0])
    assert 0 < first <= slow[0].sent
    assert last == SMALL - 1
    assert resumed[0].complete
    assert len(gets) == 13
    assert result.parts_fetched == 12


@pytest.mark.parametrize(
    ("rate", "reference", "running", "age", "left", "verdict"),
    [
        # A straggler at a tenth of fast peers is judged early: 4.5 MiB behind at 0.1 s.
        (5 * MiB, 50 * MiB, 50 * MiB, 0.1, 12 * MiB, True),
        (5 * MiB, 50 * MiB, 50 * MiB, 0.05, 12 * MiB, False),  # too young to judge at all
        (5 * MiB, 30 * MiB, 30 * MiB, 0.1, 12 * MiB, False),  # 2.5 MiB behind: not yet
        (5 * MiB, 30 * MiB, 30 * MiB, 0.2, 12 * MiB, True),  # 5 MiB behind
        # The early rule counts only what runs beside it now: fast finished connections
        # beside a stalled one alone are no evidence against it yet...
        (0.0, 50 * MiB, 0.0, 0.3, 12 * MiB, False),
        # ...but after SLOW_AGE they are.
        (0.0, 50 * MiB, 0.0, 0.5, 12 * MiB, True),
        # Slow peers build no such deficit early: the same ratio waits for SLOW_AGE.
        (0.2 * MiB, 2 * MiB, 2 * MiB, 0.3, 12 * MiB, False),
        (0.2 * MiB, 2 * MiB, 2 * MiB, 0.5, 12 * MiB, True),
        # Not far enough below its peers, however old.
        (12 * MiB, 50 * MiB, 50 * MiB, 5.0, 64 * MiB, False),
        (1.9 * MiB, 2 * MiB, 2 * MiB, 5.0, 64 * MiB, False),
        # About to finish at its own rate: a new connection would not be sooner.
        (5 * MiB, 50 * MiB, 50 * MiB, 0.2, 2 * MiB, False),
        (0.0, 50 * MiB, 50 * MiB, 0.2, 1, True),  # nothing at all arrives
    ],
)
def test_which_connections_count_as_crawling(
    rate: float, reference: float, running: float, age: float, left: int, verdict: bool
) -> None:
    assert crawling(rate, age, left, reference=reference, running=running) is verdict


def test_a_uniformly_slow_link_is_not_churned(scene: Scene) -> None:
    data = os.urandom(6 * SMALL)
    scene.put(data)
    slow = Fault("slow", rate=2 * MiB)
    scene.proxy.set_rules(Rule((slow,), method="GET", ranged=True))

    scene.download(part_size=SMALL, task_num=3)

    assert scene.out.read_bytes() == data
    gets = scene.gets()
    # One GET per part, each delivered whole: nobody was far below its peers.
    assert sorted(span(r)[0] for r in gets) == [n * SMALL for n in range(6)]
    assert all(r.complete and r.ended is None for r in gets)


# -- several jobs through one scheduler -------------------------------------------------


class Counting:
    """A backend that counts the GETs open at once, across every job it serves."""

    def __init__(self, inner: Any, ledger: Ledger, name: str, fail_at: int | None = None):
        self._inner = inner
        self._ledger = ledger
        self._name = name
        self._fail_at = fail_at

    @property
    def source(self) -> str:
        return str(self._inner.source)

    def stat(self) -> ObjectStat:
        stat: ObjectStat = self._inner.stat()
        return stat

    def read(self, start: int, end: int, stat: ObjectStat) -> Any:
        if self._fail_at is not None and start == self._fail_at:
            raise PartdlError("the store refused this part")
        self._ledger.opened(self._name)
        try:
            body = self._inner.read(start, end, stat)
        except BaseException:
            self._ledger.closed()
            raise
        return _CountedBody(body, self._ledger)


class _CountedBody:
    def __init__(self, body: Any, ledger: Ledger) -> None:
        self._body = body
        self._ledger = ledger

    def readinto(self, buffer: memoryview) -> int:
        count: int = self._body.readinto(buffer)
        return count

    def close(self) -> None:
        self._body.close()
        self._ledger.closed()


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0
        self.peak = 0
        self.order: list[str] = []

    def opened(self, name: str) -> None:
        with self._lock:
            self.open += 1
            self.peak = max(self.peak, self.open)
            self.order.append(name)

    def closed(self) -> None:
        with self._lock:
            self.open -= 1


@dataclasses.dataclass
class Target:
    data: bytes
    job: Job
    fd: int
    path: Path


def make_target(
    store: LocalStore, tmp: Path, ledger: Ledger, name: str, size: int, fail_at: int | None = None
) -> Target:
    bucket = store.new_bucket()
    data = os.urandom(size)
    store.put(bucket, KEY, data)
    backend = Counting(OssBackend(store.oss_bucket(bucket), KEY), ledger, name, fail_at)
    stat = backend.stat()
    path = tmp / name
    fd = files.create_temp(str(path), size)
    worker = PartWorker(
        backend=backend,
        stat=stat,
        fd=fd,
        temp_path=str(path),
        update=updater(ChecksumAlgorithm.CRC64XZ),
        retry=QUICK,
        chunk_size=64 * 1024,
        stop=threading.Event(),
        progress=Progress(),
    )
    job = Job(worker, plan_parts(size, PART), ChecksumAlgorithm.CRC64XZ)
    return Target(data, job, fd, path)


def test_two_jobs_share_one_pool_and_never_exceed_task_num_gets(
    store: LocalStore, tmp_path: Path
) -> None:
    ledger = Ledger()
    first = make_target(store, tmp_path, ledger, "first", 30 * PART + 11)
    second = make_target(store, tmp_path, ledger, "second", 20 * PART)
    fed: list[int] = []
    done: dict[str, dict[int, int]] = {"first": {}, "second": {}}

    def jobs() -> Iterator[Job]:
        yield first.job
        fed.append(ledger.order.count("first"))  # GETs of the first job when the second came
        yield second.job

    def on_part(job: Job, part: PartDone) -> None:
        done["first" if job is first.job else "second"][part.index] = part.crc

    try:
        with Scheduler(3, 64 * 1024) as scheduler:
            outcome = scheduler.fetch(jobs(), on_part=on_part, on_tick=lambda: None)
    finally:
        os.close(first.fd)
        os.close(second.fd)

    assert outcome == {first.job: None, second.job: None}
    assert ledger.peak <= 3
    assert ledger.open == 0
    # Parts of the job already started go first: the second job was read from the
    # feed only once every part of the first had been taken (all but the few just
    # taken had sent their GET), and no part of the second started before them.
    assert len(fed) == 1
    assert fed[0] >= 31 - 3
    assert ledger.order.index("second") >= 31 - 2
    for target, name in ((first, "first"), (second, "second")):
        assert target.path.read_bytes() == target.data
        parts = plan_parts(len(target.data), PART)
        expected = {
            p.index: checksum(ChecksumAlgorithm.CRC64XZ, target.data[p.start : p.end])
            for p in parts
        }
        assert done[name] == expected


def test_a_failing_job_fails_alone(store: LocalStore, tmp_path: Path) -> None:
    ledger = Ledger()
    good = make_target(store, tmp_path, ledger, "good", 12 * PART)
    bad = make_target(store, tmp_path, ledger, "bad", 12 * PART, fail_at=3 * PART)
    try:
        with Scheduler(2, 64 * 1024) as scheduler:
            outcome = scheduler.fetch(
                [bad.job, good.job], on_part=lambda job, part: None, on_tick=lambda: None
            )
    finally:
        os.close(good.fd)
        os.close(bad.fd)
    error = outcome[bad.job]
    assert isinstance(error, PartdlError)
    assert "refused" in str(error)
    assert outcome[good.job] is None
    assert good.path.read_bytes() == good.data
    assert ledger.open == 0


# -- tasks that keep several GETs in flight -------------------------------------------------


class _Tasks:
    """A feed of fixed tasks (see ``partdl.scheduler.Feed``): what each was granted."""

    def __init__(self, tasks: list[Task]) -> None:
        self._todo = list(tasks)
        self._fed = len(tasks)
        self.results: dict[Task, object] = {}

    def next(self) -> Task | None:
        return self._todo.pop(0) if self._todo else None

    def finished(self) -> bool:
        return len(self.results) == self._fed

    def on_part(self, job: Job, done: PartDone) -> None:
        raise AssertionError("no jobs here")

    def on_settled(self, work: object, error: BaseException | None, result: object) -> None:
        assert error is None
        assert isinstance(work, Task)
        self.results[work] = result


def test_a_wide_task_is_granted_only_the_gets_left_free() -> None:
    """Four GETs: a task of width 3 takes three, the next one the one left; a third
    starts only once GETs are free again, and is granted what is free then."""
    second_started = threading.Event()
    stop = threading.Event()

    def first(view: memoryview, grant: int) -> int:
        # Held until the second task runs beside it, so both grants are taken at once.
        assert second_started.wait(10)
        return grant

    def second(view: memoryview, grant: int) -> int:
        second_started.set()
        return grant

    def third(view: memoryview, grant: int) -> int:
        return grant

    tasks = [Task(first, stop, width=3), Task(second, stop, width=3), Task(third, stop, width=4)]
    feed = _Tasks(tasks)
    with Scheduler(4, 64 * 1024) as scheduler:
        scheduler.run(feed, on_tick=lambda: None)
    assert [feed.results[task] for task in tasks[:2]] == [3, 1]
    third_grant = feed.results[tasks[2]]
    assert isinstance(third_grant, int)
    assert 1 <= third_grant <= 4  # what was free when a loop took it


def test_a_task_wider_than_the_pool_is_refused() -> None:
    feed = _Tasks([Task(lambda view, grant: None, threading.Event(), width=5)])
    with Scheduler(4, 64 * 1024) as scheduler, pytest.raises(ValueError, match="width 5"):
        scheduler.run(feed, on_tick=lambda: None)


def test_threads_that_cannot_start_fail_the_run_and_stop_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_start = threading.Thread.start
    started: list[threading.Thread] = []

    def start(thread: threading.Thread) -> None:
        if len(started) == 2:
            raise RuntimeError("can't start new thread")
        started.append(thread)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    ran = threading.Event()
    feed = _Tasks([Task(lambda view, grant: ran.set(), threading.Event(), width=1)])
    with Scheduler(4, 64 * 1024) as scheduler, pytest.raises(PartdlError, match="2 started"):
        scheduler.run(feed, on_tick=lambda: None)
    assert not ran.is_set()
    assert len(started) == 2
    assert not any(thread.is_alive() for thread in started)  # the pool was shut down
