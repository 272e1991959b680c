"""Crash at any point: a download process SIGKILLed at seeded moments, then run again.

The moments are reached without racing the child: it stops itself at a file event
(seen through the interpreter's audit hook: just before the checkpoint's staging
copy is created, before it is renamed over the checkpoint, before the journal is
opened, before the temp file is opened, before the temp file is renamed over the
destination, before the checkpoint is deleted), at a progress fraction, or the
proxy holds one of its part requests mid-body; then the parent kills it. After every
kill the checkpoint on disk must be a complete version and the destination must be
either the old file or the new one. The final run must produce the identical file,
fetch exactly the parts the checkpoint does not record, and leave nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import partdl
from partdl.backends.oss import OssBackend
from partdl.checkpoint import Checkpoint, CheckpointInvalid, decode
from tests.faultchild import Child
from tests.faultproxy import TAG_HEADER, Fault, FaultProxy, Record, Rule
from tests.helpers import PART, leftovers, oss_bucket
from tests.store import LocalStore

KEY = "data/object.bin"
TASKS = 4
SIZE = 24 * PART + 777  # 25 parts
PARTS = -(-SIZE // PART)
SCENARIOS = 12
OLD = b"the previous version of the file"
QUICK = partdl.RetryPolicy(attempts=5, backoff=0.005, backoff_max=0.02)

# File events the child can stop at: (audit event, path suffix, occurrence).
FILE_MOMENTS: dict[str, tuple[str, str, int]] = {
    "before-temp-open": ("open", ".tmp", 1),
    "before-header-staging": ("open", ".new", 1),
    "before-header-rename": ("os.rename", ".new", 1),
    "before-journal-open": ("open", ".dcp", 2),  # the first open reads the old one
    "before-commit-rename": ("os.rename", ".tmp", 1),
    "before-checkpoint-delete": ("os.remove", ".dcp", 1),
}
KINDS = ("held-request", "progress", *FILE_MOMENTS)


@dataclasses.dataclass(frozen=True)
class Moment:
    kind: str
    fraction: float = 0.0
    nth: int = 0
    after: int = 0

    def stop(self) -> dict[str, Any] | None:
        if self.kind == "progress":
            return {"progress": self.fraction}
        if self.kind in FILE_MOMENTS:
            event, suffix, nth = FILE_MOMENTS[self.kind]
            return {"event": event, "endswith": suffix, "nth": nth}
        return None


# Later picks favour the moments in the middle of the transfer, where the most
# state is in flight; the file events are each at a single instant.
WEIGHTS = {kind: 1 for kind in KINDS} | {"held-request": 3, "progress": 4}


def plan(rng: random.Random) -> list[list[Moment]]:
    """SCENARIOS chains of kills; every kind of moment starts at least one chain."""
    chains = []
    for number in range(SCENARIOS):
        first = KINDS[number] if number < len(KINDS) else _pick(rng, KINDS)
        chain = [moment(first, rng)]
        for _ in range(rng.choice((0, 1, 1, 2))):
            if chain[-1].kind == "before-checkpoint-delete":
                break  # the file is in place: the next run fetches and writes nothing
            # A held request needs parts still to fetch: only the first run has them all.
            chain.append(moment(_pick(rng, KINDS[1:]), rng))
        chains.append(chain)
    return chains


def _pick(rng: random.Random, kinds: tuple[str, ...]) -> str:
    return rng.choices(kinds, weights=[WEIGHTS[kind] for kind in kinds])[0]


def moment(kind: str, rng: random.Random) -> Moment:
    return Moment(
        kind,
        fraction=round(rng.uniform(0.05, 1.0), 3),
        nth=rng.randrange(PARTS - TASKS),
        after=rng.randrange(1, PART),
    )


@dataclasses.dataclass
class Scene:
    store: LocalStore
    proxy: FaultProxy
    bucket: str
    out: Path

    @property
    def checkpoint(self) -> Path:
        return self.out.with_name(self.out.name + ".dcp")

    def command(self, tag: str) -> dict[str, Any]:
        return {
            "headers": {TAG_HEADER: tag},
            "endpoint": self.proxy.endpoint,
            "bucket": self.bucket,
            "key": KEY,
            "out": str(self.out),
            "part_size": PART,
            "task_num": TASKS,
            "retry": dataclasses.asdict(QUICK),
        }

    def gets(self, tag: str) -> list[Record]:
        """The part requests of one run (a killed child's may trail in late)."""
        return [r for r in self.proxy.log() if r.tag == tag and r.range]

    def saved(self) -> Checkpoint | None:
        """The checkpoint on disk, which must always decode when it exists."""
        try:
            data = self.checkpoint.read_bytes()
        except FileNotFoundError:
            return None
        return decode(data)  # CheckpointInvalid here fails the test

    def final_run(self, tag: str) -> partdl.DownloadResult:
        bucket = oss_bucket(self.proxy.endpoint, self.bucket)
        return partdl.download(
            OssBackend(bucket, KEY, headers={TAG_HEADER: tag}),
            self.out,
            part_size=PART,
            task_num=TASKS,
            retry=QUICK,
        )


@pytest.fixture
def scene(store: LocalStore, fault_proxy: FaultProxy, tmp_path: Path) -> Scene:
    return Scene(store, fault_proxy, store.new_bucket(), tmp_path / "out")


def part_of(record: Record) -> int:
    assert record.range is not None
    return int(record.range.split("=")[1].split("-")[0]) // PART


def kill_at(scene: Scene, point: Moment, tag: str) -> None:
    """Run the download in a child and SIGKILL it at ``point``."""
    child = Child()
    try:
        if point.kind == "held-request":
            hold = Fault("hold", after=point.after)
            scene.proxy.set_rules(Rule((hold,), method="GET", ranged=True, nth=(point.nth,)))
            child.send(op="download", **scene.command(tag))
            assert scene.proxy.wait_held(1) == 1, "the child never reached the held request"
        else:
            event = child.run(**scene.command(tag), stop=point.stop())
            assert event["event"] == "stopped", f"{point} was never reached: {event}"
    finally:
        child.kill()
        scene.proxy.set_rules()
        scene.proxy.release()
        # The dead child's requests end (their sockets are gone) and reach the log.
        scene.proxy.wait_idle()


def test_sigkill_at_seeded_moments_then_resume(scene: Scene, rng: random.Random) -> None:
    kills = 0
    for number, chain in enumerate(plan(rng)):
        data = os.urandom(SIZE)
        scene.bucket = scene.store.new_bucket()
        scene.store.put(scene.bucket, KEY, data)
        scene.out.write_bytes(OLD)
        saved: Checkpoint | None = None
        for step, point in enumerate(chain):
            tag = f"{number}.{step}"
            kill_at(scene, point, tag)
            kills += 1
            # Never a mixed or truncated destination, never a torn checkpoint.
            assert scene.out.read_bytes() in (OLD, data), point
            saved = scene.saved()
            recorded = set(saved.parts) if saved else set()
            # Parts whose whole body this run received but did not record were in
            # flight: at most the window of parts the engine hands its workers.
            received = {part_of(r) for r in scene.gets(tag) if r.complete}
            assert len(received - recorded) <= 2 * TASKS, (point, received, recorded)

        result = scene.final_run(f"{number}.final")

        assert scene.out.read_bytes() == data, chain
        recorded = set(saved.parts) if saved else set()
        gets = scene.gets(f"{number}.final")
        fetched = {part_of(r) for r in gets}
        assert fetched == set(range(PARTS)) - recorded, chain
        assert len(gets) == len(fetched)  # each missing part once, no retries
        assert (result.parts_fetched, result.parts_reused) == (len(fetched), len(recorded))
        assert leftovers(scene.out.parent, "out") == [], chain
    assert kills >= 10


def test_checkpoint_read_at_any_instant_is_a_complete_version(scene: Scene) -> None:
    """A reader racing the writer only ever sees whole checkpoints, parts only growing."""
    data = os.urandom(40 * PART)
    scene.store.put(scene.bucket, KEY, data)
    child = Child()
    finished = threading.Event()
    outcome: list[dict[str, Any]] = []

    def run() -> None:
        outcome.append(child.run(**{**scene.command("reader"), "task_num": 2}))
        finished.set()

    runner = threading.Thread(target=run)
    runner.start()
    versions: list[frozenset[int]] = []
    try:
        for _ in range(200_000):  # bounded; the download takes far fewer reads
            if finished.is_set():
                break
            for parts in _read_checkpoint(scene.checkpoint):
                if not versions or parts != versions[-1]:
                    assert not versions or parts > versions[-1], "parts went missing"
                    versions.append(parts)
            os.sched_yield()  # leave the writer its share of a busy machine
    finally:
        runner.join()
        child.close()
    assert outcome[0]["event"] == "result"
    assert scene.out.read_bytes() == data
    assert len(versions) > 2  # the reader really did see it grow


def _read_checkpoint(path: Path) -> Iterator[frozenset[int]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    try:
        yield frozenset(decode(data).parts)
    except CheckpointInvalid as exc:
        raise AssertionError(f"a reader saw a checkpoint that does not decode: {exc}") from exc
