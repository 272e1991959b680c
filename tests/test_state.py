"""The tree's state on a real SQLite file: rows written in groups, looked up in chunks."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from partdl.errors import LocalFileError
from partdl.state import FLUSH_INTERVAL, FLUSH_ROWS, LOOKUP_CHUNK, Recorded, TreeState


def row(number: int) -> Recorded:
    return Recorded(f"oss://b/p/{number}", f'"{number:032x}"', number, 1_700_000_000 + number)


def on_disk(root: Path) -> dict[str, Recorded]:
    """What another process reading the state would see now."""
    path = root / ".partdl" / "state.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT path, source, etag, size, mtime_ns FROM objects").fetchall()
    return {path: Recorded(*values) for path, *values in rows}


def test_rows_wait_for_a_flush_and_closing_writes_the_rest(tmp_path: Path) -> None:
    state = TreeState(str(tmp_path))
    for number in range(3):
        state.record(f"f{number}", row(number))
    assert state.queued == 3
    assert on_disk(tmp_path) == {}

    state.flush()
    assert on_disk(tmp_path) == {f"f{n}": row(n) for n in range(3)}
    assert state.queued == 0

    state.record("f0", row(7))  # a newer version of a path replaces its row
    state.record("f3", row(3))
    state.close()
    assert on_disk(tmp_path) == {"f0": row(7), "f1": row(1), "f2": row(2), "f3": row(3)}


def test_a_full_queue_writes_itself_in_one_go(tmp_path: Path) -> None:
    state = TreeState(str(tmp_path))
    for number in range(FLUSH_ROWS - 1):
        state.record(f"f{number}", row(number))
    assert on_disk(tmp_path) == {}
    state.record("last", row(0))
    assert len(on_disk(tmp_path)) == FLUSH_ROWS  # several statements' worth, all there
    state.record("next", row(1))
    assert len(on_disk(tmp_path)) == FLUSH_ROWS
    state.close()
    assert len(on_disk(tmp_path)) == FLUSH_ROWS + 1


def test_a_queue_is_overdue_once_its_oldest_row_waited_the_interval(tmp_path: Path) -> None:
    state = TreeState(str(tmp_path))
    assert not state.overdue(time.monotonic() + 3600)  # nothing queued
    before = time.monotonic()
    state.record("a", row(1))
    after = time.monotonic()
    state.record("b", row(2))  # a later row does not restart the wait
    assert not state.overdue(before + FLUSH_INTERVAL * 0.99)
    assert state.overdue(after + FLUSH_INTERVAL)
    state.flush()
    assert not state.overdue(after + 3600)
    state.close()


def test_lookups_go_by_chunks_and_find_exactly_the_recorded_paths(tmp_path: Path) -> None:
    count = 2 * LOOKUP_CHUNK + 10
    first = TreeState(str(tmp_path))
    assert first.empty
    for number in range(count):
        first.record(f"d/{number}", row(number))
    first.close()

    state = TreeState(str(tmp_path))
    assert not state.empty
    wanted = [f"d/{number}" for number in range(count + 50)] + ["unknown", "d/0"]
    found = state.lookup_many(wanted)
    assert found == {f"d/{number}": row(number) for number in range(count)}
    assert state.lookup("d/5") == row(5)
    assert state.lookup("d/missing") is None
    assert state.lookup_many([]) == {}
    state.close()


def test_a_read_only_state_of_a_tree_never_written_finds_nothing(tmp_path: Path) -> None:
    state = TreeState(str(tmp_path), read_only=True)
    assert state.empty
    assert state.lookup_many(["a", "b"]) == {}
    state.record("a", row(1))  # a dry run records nothing
    state.close()
    assert not (tmp_path / ".partdl").exists()


def test_a_failing_write_raises_from_flush_and_is_only_logged_on_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = TreeState(str(tmp_path))
    state.record("a", row(1))
    state.flush()
    # The database refuses writes from now on (as a full disk or a read-only remount).
    assert state._db is not None
    state._db.execute("PRAGMA query_only = ON")
    state.record("b", row(2))
    with pytest.raises(
        LocalFileError, match=r"cannot record finished objects .*\(1 not recorded\)"
    ):
        state.flush()

    state.record("c", row(3))
    with caplog.at_level(logging.WARNING, logger="partdl"):
        state.close()  # another error is on its way when this happens: it must not hide it
    assert "the rerun fetches those objects again" in caplog.text
    assert on_disk(tmp_path) == {"a": row(1)}


@pytest.mark.parametrize(("durable", "level"), [(True, "NORMAL"), (False, "OFF")])
def test_the_sync_level_is_set_before_the_new_database_turns_to_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, level: str
) -> None:
    # Turning a new database to WAL writes its header: at the default level (FULL) that
    # is four fdatasyncs, which fsync=False promises never to make.
    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db: sqlite3.Connection = connect(*args, **kwargs)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", traced)
    TreeState(str(tmp_path), durable=durable).close()
    pragmas = [text for text in statements if text.startswith("PRAGMA")]
    assert pragmas[:2] == [f"PRAGMA synchronous={level}", "PRAGMA journal_mode=WAL"]
