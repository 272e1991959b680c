"""The opener: temp files created on its thread, taken by the loop or removed."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from partdl import files
from partdl.errors import LocalFileError
from partdl.opener import Opener


def _leftovers(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def test_a_taken_temp_file_is_created_exclusively_on_another_thread(tmp_path: Path) -> None:
    destination = str(tmp_path / "x.bin")
    made_on: list[str] = []
    original = files.create_temp

    def spy(path: str, size: int, *, reserve: bool = True) -> int:
        made_on.append(threading.current_thread().name)
        return original(path, size, reserve=reserve)

    opener = Opener()
    files.create_temp = spy
    try:
        opening = opener.ask(destination)
        fd = opening.take()
    finally:
        files.create_temp = original
        opener.close()
    try:
        assert made_on == ["partdl-open"]
        assert files.is_temp_for(destination, opening.temp)
        info = os.fstat(fd)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_size == 0
        assert os.path.samestat(info, os.stat(opening.temp))
    finally:
        os.close(fd)


def test_a_discarded_temp_file_is_removed_whether_or_not_it_existed(tmp_path: Path) -> None:
    opener = Opener()
    openings = [opener.ask(str(tmp_path / f"f{index}")) for index in range(50)]
    for opening in openings:
        opening.discard()
    opener.close()
    assert _leftovers(tmp_path) == []


def test_a_discarded_opening_taken_later_is_not_removed_twice(tmp_path: Path) -> None:
    opener = Opener()
    opening = opener.ask(str(tmp_path / "kept"))
    fd = opening.take()
    opening.discard()  # the loop's finally after a take: nothing to do
    opener.close()
    os.close(fd)
    assert _leftovers(tmp_path) == [os.path.basename(opening.temp)]


def test_a_failed_create_is_raised_by_take(tmp_path: Path) -> None:
    opener = Opener()
    try:
        opening = opener.ask(str(tmp_path / "no-such-folder" / "x"))
        with pytest.raises(LocalFileError, match="cannot create"):
            opening.take()
    finally:
        opener.close()


def test_requests_left_at_close_are_cancelled_and_leave_nothing(tmp_path: Path) -> None:
    opener = Opener()
    opener.close()
    opening = opener.ask(str(tmp_path / "late"))
    with pytest.raises(LocalFileError, match="stopped"):
        opening.take()
    assert _leftovers(tmp_path) == []


def _opener_threads() -> int:
    return sum(thread.name == "partdl-open" for thread in threading.enumerate())


def test_the_thread_starts_with_the_first_request(tmp_path: Path) -> None:
    before = _opener_threads()
    opener = Opener()
    try:
        assert _opener_threads() == before
        fd = opener.ask(str(tmp_path / "x")).take()
        os.close(fd)
        assert _opener_threads() == before + 1
    finally:
        opener.close()
    assert _opener_threads() == before
