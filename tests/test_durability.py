"""What reaches the disk, and in which order: the durable finish and ``fsync=False``.

A wrapper around ``os.fsync``, ``os.fdatasync``, ``os.replace`` and ``os.unlink``
records every call on a file of the test (resolving descriptors through
``/proc/self/fd``) and then makes the real call: nothing is faked.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import partdl
from partdl import cli, commit, files, worker
from tests.helpers import OSS_REGION, PART, leftovers
from tests.store import LocalStore, Seen

KEY = "data/object.bin"
Event = tuple[str, str]


class SyncLog:
    """Every sync, rename, unlink and page release under ``root``, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self._root = str(root)
        self._lock = threading.Lock()
        self.events: list[Event] = []
        for name in ("fsync", "fdatasync"):
            monkeypatch.setattr(os, name, self._on_fd(name, getattr(os, name)))
        real_replace, real_unlink = os.replace, os.unlink

        def replace(source: Any, target: Any, **kwargs: Any) -> None:
            self._note("replace", f"{source} -> {target}")
            real_replace(source, target, **kwargs)

        def unlink(path: Any, **kwargs: Any) -> None:
            self._note("unlink", os.fspath(path))
            real_unlink(path, **kwargs)

        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "unlink", unlink)
        real_syncfs = commit._syncfs()
        assert real_syncfs is not None  # the suite runs on Linux

        def syncfs(fd: int) -> int:
            self._note("syncfs", os.readlink(f"/proc/self/fd/{fd}"))
            return real_syncfs(fd)

        monkeypatch.setattr(commit, "_syncfs", lambda: syncfs)
        real_fadvise = files._FADVISE
        assert real_fadvise is not None

        def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
            if advice == os.POSIX_FADV_DONTNEED:
                self._note("release", os.readlink(f"/proc/self/fd/{fd}"))
            real_fadvise(fd, offset, length, advice)

        monkeypatch.setattr(files, "_FADVISE", fadvise)

    def index(self, call: str, part: str) -> int:
        """Where the first ``call`` whose path contains ``part`` is in the log."""
        return next(i for i, (c, what) in enumerate(self.events) if c == call and part in what)

    def _on_fd(self, name: str, real: Callable[[int], None]) -> Callable[[int], None]:
        def wrapper(fd: int) -> None:
            self._note(name, os.readlink(f"/proc/self/fd/{fd}"))
            real(fd)

        return wrapper

    def _note(self, call: str, what: str) -> None:
        if self._root in what:
            with self._lock:
                self.events.append((call, what))


def test_the_default_finish_is_exactly_the_durable_sequence(
    store: LocalStore, bucket_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(20 * PART + 5)
    store.put(bucket_name, KEY, data)
    out = tmp_path / "out"
    log = SyncLog(monkeypatch, tmp_path)

    partdl.download_file(store.oss_bucket(bucket_name), KEY, out, part_size=PART, task_num=4)

    assert out.read_bytes() == data
    (temp,) = {what for call, what in log.events if what.endswith(".tmp")}
    checkpoint = f"{out}.dcp"
    # Early writeback: only ever fdatasync of the temp file, all before the final fsync.
    writeback = [e for e in log.events if e[0] == "fdatasync"]
    assert all(what == temp for _, what in writeback)
    # Each writeback releases the pages it made clean, only then, and only those.
    helper = [e for e in log.events if e[0] in ("fdatasync", "release")]
    assert helper == [("fdatasync", temp), ("release", temp)] * len(writeback)
    # The checkpoint header is not synced: it would hold the first GET back.
    assert [e for e in log.events if ".new" in e[1] and e[0] == "fsync"] == []
    # Leaving out the checkpoint header's staging copy (renamed before the first byte)
    # and the lock file, removed once the download has returned.
    finish = [
        e
        for e in log.events
        if e[0] not in ("fdatasync", "release")
        and ".new" not in e[1]
        and not e[1].endswith(".lock")
    ]
    assert finish == [
        ("fsync", temp),
        ("replace", f"{temp} -> {out}"),
        ("unlink", checkpoint),
        ("fsync", str(tmp_path)),  # after the unlink: the removal is durable too
    ]
    last_writeback = max((log.events.index(e) for e in writeback), default=-1)
    assert last_writeback < log.events.index(("fsync", temp))
    assert leftovers(tmp_path, "out") == []


def test_a_checkpoint_in_another_directory_has_its_removal_synced_too(
    store: LocalStore, bucket_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(bucket_name, KEY, os.urandom(3 * PART))
    (tmp_path / "state").mkdir()
    checkpoint = tmp_path / "state" / "job.dcp"
    log = SyncLog(monkeypatch, tmp_path)

    partdl.download_file(
        store.oss_bucket(bucket_name), KEY, tmp_path / "out", PART, checkpoint_file=checkpoint
    )

    tail = [e for e in log.events if not e[1].endswith(".lock")][-3:]
    assert tail == [
        ("unlink", str(checkpoint)),
        ("fsync", str(tmp_path)),
        ("fsync", str(tmp_path / "state")),
    ]


def test_without_fsync_nothing_of_the_data_file_is_synced(
    store: LocalStore, bucket_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(20 * PART + 5)
    store.put(bucket_name, KEY, data)
    out = tmp_path / "out"
    log = SyncLog(monkeypatch, tmp_path)

    partdl.download_file(
        store.oss_bucket(bucket_name), KEY, out, part_size=PART, task_num=4, fsync=False
    )

    assert out.read_bytes() == data
    synced = [(call, what) for call, what in log.events if call in ("fsync", "fdatasync")]
    assert synced == []  # not even the checkpoint header
    # Dirty pages are never released: the file stays in the page cache.
    assert [e for e in log.events if e[0] == "release"] == []
    replaced = [what for call, what in log.events if call == "replace" and ".tmp ->" in what]
    assert replaced == [f"{replaced[0].split(' -> ')[0]} -> {out}"]
    assert leftovers(tmp_path, "out") == []


@pytest.mark.parametrize("fsync", [True, False], ids=["durable", "no-fsync"])
def test_a_paused_download_syncs_its_journal_only_when_durable(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fsync: bool,
) -> None:
    store.put(bucket_name, KEY, os.urandom(20 * PART + 5))
    out = tmp_path / "out"
    log = SyncLog(monkeypatch, tmp_path)
    control, paused = partdl.Control(), threading.Event()
    ranged = itertools.count(1)

    def hold_the_third_part(seen: Seen) -> None:
        # The download cannot finish before the pause is asked for, whatever the scheduling.
        if seen.range and next(ranged) == 3:
            assert paused.wait(60)

    def pause_once_started(consumed: int, total: int) -> None:
        if consumed > 0:
            control.pause()
            paused.set()

    store.before_request = hold_the_third_part
    try:
        with pytest.raises(partdl.DownloadPausedError):
            partdl.download_file(
                store.oss_bucket(bucket_name),
                KEY,
                out,
                part_size=PART,
                task_num=1,
                fsync=fsync,
                control=control,
                progress_callback=pause_once_started,
            )
    finally:
        store.before_request = None
        paused.set()

    assert (tmp_path / "out.dcp").exists()
    synced = [what for call, what in log.events if call in ("fsync", "fdatasync")]
    journal = [what for what in synced if what.endswith("out.dcp")]
    assert journal == ([str(tmp_path / "out.dcp")] if fsync else [])
    if not fsync:
        assert synced == []


def test_no_write_is_larger_than_the_write_slice(
    store: LocalStore, bucket_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 MiB chunks are read from the socket; the page cache gets them in slices.
    data = os.urandom(4 * 1024 * 1024 + 5)
    store.put(bucket_name, KEY, data)
    sizes: list[int] = []
    real_pwrite = os.pwrite

    def pwrite(fd: int, chunk: Any, offset: int) -> int:
        sizes.append(len(chunk))
        return real_pwrite(fd, chunk, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    out = tmp_path / "out"
    partdl.download_file(
        store.oss_bucket(bucket_name), KEY, out, part_size=2 * 1024 * 1024, task_num=2
    )

    assert out.read_bytes() == data
    assert max(sizes) <= worker.WRITE_SLICE < 1024 * 1024  # the chunk read is 1 MiB
    assert sum(sizes) == len(data)


@pytest.mark.parametrize("fsync", [True, False])
def test_a_tree_honours_fsync_for_small_files_and_folders_too(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fsync: bool,
) -> None:
    objects = {"t/a/big.bin": os.urandom(4 * PART + 1), "t/b/small.bin": b"small", "t/c": b"c"}
    for key, data in objects.items():
        store.put(bucket_name, key, data)
    root = tmp_path / "tree"
    log = SyncLog(monkeypatch, tmp_path)

    partdl.download_prefix(
        store.oss_bucket(bucket_name), "t/", root, part_size=PART, task_num=3, fsync=fsync
    )

    for key, data in objects.items():
        assert (root / key[2:]).read_bytes() == data
    synced = [what for call, what in log.events if call in ("fsync", "fdatasync")]
    released = [what for call, what in log.events if call == "release"]
    if not fsync:
        assert synced == []  # not even the large object's checkpoint header
        assert released == []
        return
    assert str(root / "a") in synced
    # The large object's temp file is fsynced before its rename, then its folder; the
    # small ones are flushed by the group committer's syncfs, then renamed, then their
    # file system is flushed again (one syncfs for every folder of the batch).
    temps = {Path(what).name.split(".partdl-")[0] for what in synced if what.endswith(".tmp")}
    assert temps == {"big.bin"}
    for name, folder in (("small.bin", root / "b"), ("c", root)):
        renamed = log.index("replace", f"-> {folder / name}")
        # One syncfs flushes a whole batch: it names only one of its files.
        assert any(call == "syncfs" for call, _ in log.events[:renamed])
        after = [what for call, what in log.events[renamed:] if call == "syncfs"]
        assert any(what in (str(root), str(root / "b")) for what in after)
        # Its pages are released once the batch's syncfs made them clean.
        release = next(
            i
            for i, (call, what) in enumerate(log.events)
            if call == "release" and Path(what).name.startswith(f"{name}.partdl-")
        )
        assert release < renamed
        assert any(call == "syncfs" for call, _ in log.events[:release])


@pytest.fixture
def oss_cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "test")
    monkeypatch.delenv("OSS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("OSS_REGION", OSS_REGION)


@pytest.mark.usefixtures("oss_cli_env")
@pytest.mark.parametrize(("flags", "synced"), [([], True), (["--no-fsync"], False)])
def test_the_cli_passes_no_fsync_on(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    synced: bool,
) -> None:
    data = os.urandom(2 * PART)
    store.put(bucket_name, KEY, data)
    out = tmp_path / "out"
    log = SyncLog(monkeypatch, tmp_path)

    argv = [f"oss://{bucket_name}/{KEY}", str(out), "-q", "--endpoint", store.endpoint]
    assert cli.main([*argv, *flags]) == 0

    assert out.read_bytes() == data
    assert (("fsync", str(tmp_path)) in log.events) is synced
    assert any(call == "fsync" and what.endswith(".tmp") for call, what in log.events) is synced


@pytest.mark.usefixtures("oss_cli_env")
@pytest.mark.parametrize(("flags", "synced"), [([], True), (["--no-fsync"], False)])
def test_the_cli_passes_no_fsync_on_for_a_tree(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    synced: bool,
) -> None:
    store.put(bucket_name, "t/a", b"small")
    store.put(bucket_name, "t/b/c", os.urandom(2 * PART))
    root = tmp_path / "tree"
    log = SyncLog(monkeypatch, tmp_path)

    argv = [f"oss://{bucket_name}/t/", str(root), "-r", "-q", "--part-size", "100KiB"]
    assert cli.main([*argv, "--endpoint", store.endpoint, *flags]) == 0

    assert (root / "a").read_bytes() == b"small"
    data_synced = [what for call, what in log.events if call == "fsync" and what.endswith(".tmp")]
    assert bool(data_synced) is synced


def test_fsync_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(partdl.InvalidArgumentError, match="fsync"):
        partdl.download(None, tmp_path / "out", fsync="no")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_writeback_syncs_what_was_noted_and_reports_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data"
    fd = files.create_temp(str(path), 1 << 20)
    synced = threading.Event()
    real = os.fdatasync

    def fdatasync(descriptor: int) -> None:
        real(descriptor)
        synced.set()

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    try:
        writeback = files.Writeback(fd, str(path))
        os.pwrite(fd, b"x" * 4096, 0)
        writeback.note(0, 4096)
        assert synced.wait(30), "a noted range was never written back"
        writeback.close()

        failed = threading.Event()

        def failing(descriptor: int) -> None:
            failed.set()
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fdatasync", failing)
        writeback = files.Writeback(fd, str(path))
        writeback.note(0, 4096)
        assert failed.wait(30)
        with pytest.raises(partdl.LocalFileError, match="Input/output error"):
            writeback.close()
    finally:
        os.close(fd)
