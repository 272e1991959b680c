"""Trees of many objects for the benchmarks: which keys, and which bytes each one is.

Pure: no sockets, no files. The server and the runner both derive a tree's keys,
sizes and byte offsets from the same :class:`TreeSpec`, so the runner can check what a
contender wrote without asking the server. Every object is a slice of one random
backing file: the objects of a group start ``stride`` bytes apart, so a tree of
1.5 GiB needs a backing file of about 136 MiB, and each object still has its own
content (and its own ETag and checksums).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TreeGroup:
    """``count`` objects of ``size`` bytes under ``folder``, ``stride`` bytes apart in the
    backing file; ``fanout`` objects per sub-folder (0: all in ``folder``)."""

    folder: str
    count: int
    size: int
    stride: int
    fanout: int = 0

    @property
    def footprint(self) -> int:
        """Bytes of the backing file this group's slices cover."""
        return (self.count - 1) * self.stride + self.size if self.count else 0


@dataclass(frozen=True, slots=True)
class TreeObject:
    key: str
    offset: int
    """Where its bytes start in the backing file."""
    size: int


@dataclass(frozen=True, slots=True)
class TreeSpec:
    """A tree served under ``prefix`` (which ends with ``/``)."""

    name: str
    prefix: str
    groups: tuple[TreeGroup, ...]

    @property
    def backing_size(self) -> int:
        """The backing file's size: every group's slices, one group after another."""
        return sum(group.footprint for group in self.groups) or 1

    @property
    def count(self) -> int:
        return sum(group.count for group in self.groups)

    @property
    def size(self) -> int:
        """Bytes of the whole tree."""
        return sum(group.count * group.size for group in self.groups)

    def objects(self) -> Iterator[TreeObject]:
        """Every object, in the order of its group and index (not sorted by key)."""
        base = 0
        for group in self.groups:
            width = len(str(max(group.count - 1, 0)))
            for index in range(group.count):
                folder = group.folder
                if group.fanout:
                    folder += f"/d{index // group.fanout:03d}"
                yield TreeObject(
                    f"{self.prefix}{folder}/f{index:0{width}d}.bin",
                    base + index * group.stride,
                    group.size,
                )
            base += group.footprint

    def describe(self) -> str:
        """``2,000 x 64 KiB``, ``8 x 128 MiB + 500 x 1 MiB``."""
        return " + ".join(f"{g.count:,} x {_human(g.size)}" for g in self.groups)

    def argument(self) -> str:
        """This spec as ``benchmarks.server --tree`` takes it (see :func:`parse_tree`)."""
        groups = ";".join(
            f"{g.folder},{g.count},{g.size},{g.stride},{g.fanout}" for g in self.groups
        )
        return f"{self.name}={self.prefix}={groups}"


def parse_tree(text: str) -> TreeSpec:
    """The inverse of :meth:`TreeSpec.argument`:
    ``NAME=PREFIX=FOLDER,COUNT,SIZE,STRIDE,FANOUT[;...]``."""
    name, prefix, groups = text.split("=", 2)
    parsed = []
    for group in groups.split(";"):
        folder, count, size, stride, fanout = group.split(",")
        parsed.append(TreeGroup(folder, int(count), int(size), int(stride), int(fanout)))
    return TreeSpec(name, prefix, tuple(parsed))


def _human(size: int) -> str:
    if size >= _MiB and size % _MiB == 0:
        return f"{size // _MiB} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"
