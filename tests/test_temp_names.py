"""Temp file names: cheap to draw, unique across forks, and swept whichever partdl made them.

Earlier partdl versions named a temp file ``<name>.partdl-<secrets.token_hex(4)>.tmp``;
names now come from a seeded generator in the same form, so a temp file a killed run
of either left behind is recognised and removed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

import partdl
from partdl import files
from tests.helpers import PART
from tests.store import LocalStore

# Names partdl never makes: they belong to someone else and stay.
LOOKALIKES = [
    "a.partdl-0123ABCD.tmp",
    "a.partdl-0123abc.tmp",
    "a.partdl-0123abcde.tmp",
    "a.partdl-0123abcd.tmp.bak",
    "a.partdl.tmp",
]


def old_name(destination: str) -> str:
    """The name an earlier partdl gave a temp file."""
    return f"{destination}.partdl-{secrets.token_hex(4)}.tmp"


def test_new_names_have_the_form_every_partdl_made_and_do_not_repeat() -> None:
    names = [files.new_temp_path("/d/f.bin") for _ in range(2000)]
    assert len(set(names)) == len(names)
    for name in [*names[:50], old_name("/d/f.bin")]:
        assert files.is_temp_for("/d/f.bin", name), name
        assert files.temp_owner(os.path.basename(name)) == "f.bin", name
    for name in LOOKALIKES:
        assert not files.is_temp_for("a", name), name
        assert files.temp_owner(name) is None, name


def test_a_forked_child_draws_other_names_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its names, then out without running any cleanup
        try:
            os.write(write, "\n".join(files.new_temp_path("x") for _ in range(64)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    parent = {files.new_temp_path("x") for _ in range(64)}
    assert len(child) == 64
    assert child.isdisjoint(parent)


def test_a_trees_sweep_removes_old_and_new_temp_names_and_nothing_else(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, "p/d/a", b"a")
    store.put(bucket_name, "p/b", b"b")
    (tmp_path / "d").mkdir()
    left = [
        old_name(str(tmp_path / "d" / "a")),
        files.new_temp_path(str(tmp_path / "d" / "a")),
        old_name(str(tmp_path / "gone")),  # of an object no longer listed: still partdl's
        files.new_temp_path(str(tmp_path / "b")),
    ]
    for path in left:
        Path(path).write_bytes(b"half a download")
    for name in LOOKALIKES:
        (tmp_path / "d" / name).write_bytes(b"not partdl's")

    partdl.download_prefix(store.oss_bucket(bucket_name), "p/", tmp_path)

    assert sorted(os.listdir(tmp_path / "d")) == sorted(["a", *LOOKALIKES])
    assert sorted(os.listdir(tmp_path)) == [".partdl", "b", "d"]


@pytest.mark.parametrize("name", [old_name, files.new_temp_path], ids=["old", "new"])
def test_a_fresh_download_removes_stale_temps_of_its_destination(
    store: LocalStore, bucket_name: str, tmp_path: Path, name: Callable[[str], str]
) -> None:
    store.put(bucket_name, "k", os.urandom(2 * PART))
    destination = tmp_path / "out"
    stale = Path(name(str(destination)))
    stale.write_bytes(b"left by a killed run without a checkpoint")
    (tmp_path / LOOKALIKES[0].replace("a.", "out.")).write_bytes(b"not partdl's")

    partdl.download_file(store.oss_bucket(bucket_name), "k", destination, part_size=PART)

    assert not stale.exists()
    assert sorted(os.listdir(tmp_path)) == ["out", "out.partdl-0123ABCD.tmp"]
