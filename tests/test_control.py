"""Pause and cancel a running download through :class:`partdl.Control`."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

import partdl
from tests.helpers import PART, leftovers, recorded_parts
from tests.store import LocalStore

KEY = "data/object.bin"
PARTS = 30
SIZE = PARTS * PART - 11
CHUNK = 16 * 1024  # small chunks: a stop request is seen within 16 KiB


def test_cancel_overrides_pause_never_the_reverse() -> None:
    paused_then_cancelled, cancelled_then_paused = partdl.Control(), partdl.Control()
    paused_then_cancelled.pause()
    paused_then_cancelled.cancel()
    cancelled_then_paused.cancel()
    cancelled_then_paused.pause()
    assert paused_then_cancelled.action is partdl.ControlAction.CANCEL
    assert cancelled_then_paused.action is partdl.ControlAction.CANCEL
    assert partdl.Control().action is None


class Trigger:
    """A progress callback that hands over to another thread once ``fraction`` is in.

    It blocks the orchestrator until that thread has acted, so the download cannot
    finish in between: the test is decided by events, not by timing.
    """

    def __init__(self, fraction: float, act: Any) -> None:
        self._fraction = fraction
        self._reached = threading.Event()
        self._acted = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(act,))
        self._thread.start()

    def _run(self, act: Any) -> None:
        if self._reached.wait(60):
            act()
        self._acted.set()

    def __call__(self, consumed: int, total: int) -> None:
        if consumed >= self._fraction * total and not self._reached.is_set():
            self._reached.set()
            assert self._acted.wait(60)

    def join(self) -> None:
        self._reached.set()  # never leave the thread waiting if the download failed early
        self._thread.join(60)


def download(store: LocalStore, bucket: str, out: Path, **options: Any) -> partdl.DownloadResult:
    return partdl.download_file(
        store.oss_bucket(bucket), KEY, out, PART, 2, chunk_size=CHUNK, **options
    )


def interrupted(
    store: LocalStore, bucket: str, out: Path, action: str, **options: Any
) -> partdl.DownloadInterruptedError:
    """Start a download and pause or cancel it from another thread a third of the way in."""
    control = partdl.Control()
    trigger = Trigger(1 / 3, getattr(control, action))
    try:
        with pytest.raises(partdl.DownloadInterruptedError) as raised:
            download(store, bucket, out, control=control, progress_callback=trigger, **options)
    finally:
        trigger.join()
    return raised.value


def test_pause_then_resume_fetches_only_the_missing_parts(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(SIZE)
    store.put(bucket_name, KEY, data)
    out = tmp_path / "out"

    error = interrupted(store, bucket_name, out, "pause")

    assert isinstance(error, partdl.DownloadPausedError)
    assert not out.exists()
    done = recorded_parts(tmp_path / "out.dcp")
    assert 0 < len(done) < PARTS
    first = len(store.ranged_gets(bucket_name))
    assert first <= len(done) + 2 * 2  # at most the window in flight was wasted

    result = download(store, bucket_name, out, control=partdl.Control())

    assert out.read_bytes() == data
    assert (result.parts_reused, result.parts_fetched) == (len(done), PARTS - len(done))
    assert len(store.ranged_gets(bucket_name)) - first == PARTS - len(done)
    assert leftovers(tmp_path, "out") == []


def test_cancel_removes_temp_and_checkpoint_and_keeps_the_old_file(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, os.urandom(SIZE))
    out = tmp_path / "out"
    out.write_bytes(b"the previous version")

    error = interrupted(store, bucket_name, out, "cancel")

    assert isinstance(error, partdl.DownloadCancelledError)
    assert 0 < len(store.ranged_gets(bucket_name)) < PARTS
    assert out.read_bytes() == b"the previous version"
    assert leftovers(tmp_path, "out") == []


def test_cancel_while_resuming_discards_the_paused_download(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, os.urandom(SIZE))
    out = tmp_path / "out"
    interrupted(store, bucket_name, out, "pause")
    assert (tmp_path / "out.dcp").exists()
    control = partdl.Control()
    control.cancel()

    with pytest.raises(partdl.DownloadCancelledError):
        download(store, bucket_name, out, control=control)

    assert leftovers(tmp_path) == []


def test_pause_without_a_checkpoint_leaves_nothing(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, os.urandom(SIZE))

    error = interrupted(store, bucket_name, tmp_path / "out", "pause", checkpoint=False)

    assert isinstance(error, partdl.DownloadPausedError)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("elsewhere", [False, True], ids=["no-checkpoint", "checkpoint-file"])
def test_a_rerun_that_keeps_no_checkpoint_beside_removes_the_paused_one(
    store: LocalStore, bucket_name: str, tmp_path: Path, elsewhere: bool
) -> None:
    data = os.urandom(SIZE)
    store.put(bucket_name, KEY, data)
    out = tmp_path / "out"
    interrupted(store, bucket_name, out, "pause")
    assert (tmp_path / "out.dcp").exists()
    options: dict[str, Any] = {"checkpoint": False}
    if elsewhere:
        options = {"checkpoint_file": tmp_path / "elsewhere.dcp"}

    download(store, bucket_name, out, **options)

    assert out.read_bytes() == data
    assert leftovers(tmp_path, "out") == []
    assert sorted(os.listdir(tmp_path)) == ["out"]
