"""The group committer (partdl/commit.py) on real files: order, failures, stopping."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from partdl import commit, files
from partdl.commit import Committer, Finished
from partdl.errors import LocalFileError, PartdlError


def _temp(folder: Path, name: str, data: bytes) -> tuple[int, str]:
    path = folder / f"{name}.partdl-test.tmp"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.pwrite(fd, data, 0)
    return fd, str(path)


class _Outcomes:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, PartdlError | None] = {}
        self.all_in = threading.Event()
        self.expected = 0

    def callback(self, name: str) -> Any:
        def done(error: PartdlError | None) -> None:
            with self.lock:
                assert name not in self.seen, "done called twice"
                self.seen[name] = error
                if len(self.seen) == self.expected:
                    self.all_in.set()

        return done


def _submit_numbered(committer: Committer, folder: Path, count: int, fill: bytes) -> _Outcomes:
    """Files ``0`` .. ``count - 1`` (``fill`` times their number), handed to ``committer``."""
    outcomes = _Outcomes()
    outcomes.expected = count
    for index in range(count):
        fd, temp = _temp(folder, str(index), fill * index)
        name = str(index)
        committer.submit(Finished(fd, temp, str(folder / name), outcomes.callback(name)))
    return outcomes


def test_every_file_is_put_in_place_and_told_once(tmp_path: Path) -> None:
    committer = Committer(limit=8)
    outcomes = _submit_numbered(committer, tmp_path, 40, b"x")
    committer.close()

    assert outcomes.all_in.is_set()
    assert all(error is None for error in outcomes.seen.values())
    assert sorted(os.listdir(tmp_path), key=int) == [str(i) for i in range(40)]
    assert all((tmp_path / str(i)).read_bytes() == b"x" * i for i in range(40))


def test_a_file_that_cannot_go_into_place_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "inside").write_bytes(b"keep")
    outcomes = _Outcomes()
    outcomes.expected = 2
    committer = Committer()
    for name in ("taken", "free"):
        fd, temp = _temp(tmp_path, name, b"new")
        committer.submit(Finished(fd, temp, str(tmp_path / name), outcomes.callback(name)))
    committer.close()

    assert isinstance(outcomes.seen["taken"], LocalFileError)
    assert outcomes.seen["free"] is None
    assert sorted(os.listdir(tmp_path)) == ["free", "taken"]
    assert (tmp_path / "taken" / "inside").read_bytes() == b"keep"


def test_files_queued_when_the_download_stops_are_removed_not_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    flushing = threading.Event()
    real_flush = commit.flush

    def held_flush(fds: list[int]) -> None:
        flushing.set()
        release.wait()
        real_flush(fds)

    monkeypatch.setattr(commit, "flush", held_flush)
    outcomes = _Outcomes()
    outcomes.expected = 3
    committer = Committer()
    fd, temp = _temp(tmp_path, "first", b"1")
    committer.submit(Finished(fd, temp, str(tmp_path / "first"), outcomes.callback("first")))
    flushing.wait()  # the first batch is being flushed: the next two wait behind it
    for name in ("second", "third"):
        fd, temp = _temp(tmp_path, name, b"2")
        committer.submit(Finished(fd, temp, str(tmp_path / name), outcomes.callback(name)))
    closer = threading.Thread(target=committer.close, kwargs={"discard": True})
    closer.start()
    release.set()
    closer.join()

    assert outcomes.seen["first"] is None
    assert isinstance(outcomes.seen["second"], PartdlError)
    assert isinstance(outcomes.seen["third"], PartdlError)
    assert os.listdir(tmp_path) == ["first"]


def test_a_file_submitted_after_close_is_removed(tmp_path: Path) -> None:
    outcomes = _Outcomes()
    outcomes.expected = 1
    committer = Committer()
    committer.close()
    fd, temp = _temp(tmp_path, "late", b"1")
    committer.submit(Finished(fd, temp, str(tmp_path / "late"), outcomes.callback("late")))

    assert isinstance(outcomes.seen["late"], PartdlError)
    assert os.listdir(tmp_path) == []


def test_flush_is_one_syncfs_per_file_system_on_linux(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = commit._syncfs()
    assert real is not None  # this suite runs on Linux

    def counting(fd: int) -> int:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(commit, "_syncfs", lambda: counting)
    fds = [_temp(tmp_path, str(i), b"data")[0] for i in range(5)]
    try:
        commit.flush(fds)
    finally:
        for fd in fds:
            os.close(fd)

    assert len(calls) == 1


def test_without_syncfs_every_file_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(commit, "_syncfs", lambda: None)
    monkeypatch.setattr(os, "fsync", counting)
    fds = [_temp(tmp_path, str(i), b"data")[0] for i in range(3)]
    try:
        commit.flush(fds)
    finally:
        for fd in fds:
            os.close(fd)

    assert sorted(synced) == sorted(fds)


@pytest.mark.parametrize("count", [1, commit.GATHER_COUNT + 3])
def test_without_durability_files_are_renamed_in_batches_and_nothing_is_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    def refuse(fds: list[int]) -> None:
        raise AssertionError("fsync=False flushed")

    monkeypatch.setattr(commit, "flush", refuse)
    monkeypatch.setattr(files, "fsync_directory", refuse)
    committer = Committer(durable=False)
    outcomes = _submit_numbered(committer, tmp_path, count, b"y")
    # Not closed yet: a lone file goes into place once the gathering time is up.
    assert outcomes.all_in.wait(10)
    committer.close()

    assert all(error is None for error in outcomes.seen.values())
    assert sorted(os.listdir(tmp_path), key=int) == [str(i) for i in range(count)]


def test_the_renames_into_many_folders_are_flushed_by_one_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = {str(tmp_path / f"d{i}") for i in range(5)}
    for folder in folders:
        os.mkdir(folder)
    flushed: list[str] = []

    def syncfs(fd: int) -> int:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        return 0

    def refuse(path: str) -> None:
        raise AssertionError("a folder's own fsync where one syncfs covers them all")

    monkeypatch.setattr(commit, "_syncfs", lambda: syncfs)
    monkeypatch.setattr(files, "fsync_directory", refuse)
    commit.flush_folders(folders | {str(tmp_path / "gone")})  # a vanished folder is skipped
    assert len(flushed) == 1
    assert flushed[0] in folders


def test_without_syncfs_each_folder_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = {str(tmp_path / f"d{i}") for i in range(3)}
    synced: list[str] = []
    monkeypatch.setattr(commit, "_syncfs", lambda: None)
    monkeypatch.setattr(files, "fsync_directory", synced.append)
    commit.flush_folders(folders)
    assert sorted(synced) == sorted(folders)


def test_a_durable_batch_gathers_files_and_flushes_them_with_one_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = commit._syncfs()
    assert real is not None  # this suite runs on Linux
    calls: list[int] = []

    def counting(fd: int) -> int:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(commit, "_syncfs", lambda: counting)
    # A window no test waits out: the batch goes when GATHER_COUNT files are in.
    monkeypatch.setattr(commit, "GATHER_DURABLE", 60.0)
    committer = Committer()
    outcomes = _submit_numbered(committer, tmp_path, commit.GATHER_COUNT, b"z")
    assert outcomes.all_in.wait(10)
    committer.close()

    assert all(error is None for error in outcomes.seen.values())
    assert len(calls) == 2  # the data of all of them, then all of their renames
    assert sorted(os.listdir(tmp_path), key=int) == [str(i) for i in range(commit.GATHER_COUNT)]
