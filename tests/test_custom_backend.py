"""A backend written against the public protocol alone, as docs/usage.md describes it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import partdl
from tests.helpers import PART, leftovers

PARTS = 6


class Versions:
    """An object held in memory whose bytes can be replaced, with a fault plan."""

    def __init__(self, data: bytes) -> None:
        self.data, self.etag = data, '"v1"'
        self.transient_left = 0
        self.overwrite_with: bytes | None = None
        self.reads: list[tuple[int, int]] = []


class MemoryBackend:
    def __init__(self, store: Versions) -> None:
        self._store = store

    @property
    def source(self) -> str:
        return "memory://object"

    def stat(self) -> partdl.ObjectStat:
        return partdl.ObjectStat(len(self._store.data), self._store.etag, None)

    def read(self, start: int, end: int, stat: partdl.ObjectStat) -> partdl.RangeBody:
        store = self._store
        store.reads.append((start, end))
        if store.transient_left:
            store.transient_left -= 1
            raise partdl.TransientError("connection reset (injected)")
        if store.overwrite_with is not None and len(store.reads) > 2:
            store.data, store.etag = store.overwrite_with, '"v2"'
            store.overwrite_with = None
        if stat.etag != store.etag:
            raise partdl.ObjectChangedDuringRead(f"412: {stat.etag} is not {store.etag}")
        return io.BytesIO(store.data[start:end])


def test_a_transient_error_from_a_custom_backend_is_retried(tmp_path: Path) -> None:
    store = Versions(os.urandom(PARTS * PART - 3))
    store.transient_left = 2
    out = tmp_path / "out"

    result = partdl.download(MemoryBackend(store), out, part_size=PART, task_num=2)

    assert out.read_bytes() == store.data
    assert result.parts_total == PARTS
    assert len(store.reads) == PARTS + 2
    assert leftovers(tmp_path, "out") == []


def test_a_custom_backends_412_starts_the_download_over_on_the_new_version(
    tmp_path: Path,
) -> None:
    store = Versions(os.urandom(PARTS * PART - 3))
    store.overwrite_with = os.urandom(PARTS * PART + 11)
    out = tmp_path / "out"

    result = partdl.download(MemoryBackend(store), out, part_size=PART, task_num=1)

    assert out.read_bytes() == store.data
    assert (result.etag, result.size) == ('"v2"', len(store.data))
    assert leftovers(tmp_path, "out") == []


def test_a_custom_backends_other_error_is_raised_as_it_is(tmp_path: Path) -> None:
    class Refusing(MemoryBackend):
        def read(self, start: int, end: int, stat: partdl.ObjectStat) -> partdl.RangeBody:
            raise partdl.AccessDeniedError("403 (injected)")

    store = Versions(os.urandom(PARTS * PART))

    with pytest.raises(partdl.AccessDeniedError):
        partdl.download(Refusing(store), tmp_path / "out", part_size=PART, task_num=2)

    assert not (tmp_path / "out").exists()
