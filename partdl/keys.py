"""Untrusted object keys to safe relative paths under a destination directory.

A key from a listing is input from whoever can write to the bucket. It becomes a
file only if every segment is a plain name: no ``..`` or ``.``, no empty segment
(``a//b``), no leading ``/``, no NUL, no backslash (a separator elsewhere), and
short enough for the file system to hold it with the suffix of partdl's temp file.
The names partdl itself keeps in a tree (the ``.partdl`` state folder, temp files,
lock files) are reserved. Nothing here touches the disk: the limits are passed in.

:class:`PathClaims` then catches keys that are valid alone but not together: a key
that is a file and also the folder of another (``a`` and ``a/b``), two keys for one
file (on a case-insensitive file system, ``A`` and ``a``). The first key in listing
order wins; the other fails alone.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from .errors import UnsafeKeyError

STATE_DIR = ".partdl"
# ".partdl-1a2b3c4d.tmp": the longest name partdl derives from a file's name.
TEMP_SUFFIX_LENGTH = len(".partdl-00000000.tmp")
DEFAULT_NAME_MAX = 255
DEFAULT_PATH_MAX = 4096

_RESERVED_NAME = re.compile(r".*(\.partdl-[0-9a-f]{8}\.tmp|\.partdl\.lock)", re.DOTALL)


class KeyPath(NamedTuple):
    """Where one key goes, relative to the destination directory."""

    parts: tuple[str, ...]
    is_folder: bool
    """A directory marker (a key ending in ``/``): a folder is made, nothing fetched."""

    @property
    def relative(self) -> str:
        return "/".join(self.parts)

    def under(self, directory: str) -> str:
        # One join of the relative path: no part is empty or absolute (key_path saw to it).
        return os.path.join(directory, "/".join(self.parts)) if self.parts else directory


def _shown(key: str) -> str:
    return repr(key if len(key) <= 80 else key[:80] + "...")


def relative_to_prefix(key: str, prefix: str) -> str:
    """``key`` without ``prefix``; a listing never returns keys outside it."""
    if not key.startswith(prefix):
        raise UnsafeKeyError(f"key {_shown(key)} is not under the prefix {prefix!r}")
    return key[len(prefix) :]


def key_path(
    relative: str,
    *,
    root_length: int = 0,
    name_max: int = DEFAULT_NAME_MAX,
    path_max: int = DEFAULT_PATH_MAX,
    label: str = "key",
) -> KeyPath:
    """The safe path for ``relative`` (a key with its prefix removed), or UnsafeKeyError.

    ``root_length`` is the length in bytes of the destination directory's absolute
    path, so that the whole path and partdl's temp name beside it fit ``path_max``.
    An empty ``relative`` (the prefix's own directory marker) is the root folder.
    ``label`` is what the errors call ``relative`` ("key", or "DEST" for a path given).
    """
    is_folder = relative.endswith("/") or relative == ""
    body = relative[:-1] if relative.endswith("/") else relative
    parts = tuple(body.split("/")) if body else ()
    # One pass of C-level tests for the common, plain key; the slow path says why not.
    if (
        "\0" in relative
        or "\\" in relative
        or "" in parts
        or "." in parts
        or ".." in parts
        or (parts and parts[0] == STATE_DIR)
        or (parts and not is_folder and _RESERVED_NAME.fullmatch(parts[-1]))
    ):
        _refuse(f"{label} {_shown(relative)}", relative, parts)
    size = len(os.fsencode(body))
    if size > name_max - TEMP_SUFFIX_LENGTH:  # else no name in it can be too long
        _check_names(f"{label} {_shown(relative)}", parts, is_folder, name_max)
    length = root_length + 1 + size + TEMP_SUFFIX_LENGTH
    if parts and length >= path_max:
        raise UnsafeKeyError(
            f"{label} {_shown(relative)}: the path would be {length - TEMP_SUFFIX_LENGTH} bytes "
            f"long; the file system allows {path_max}"
        )
    return KeyPath(parts, is_folder)


def _refuse(shown: str, relative: str, parts: tuple[str, ...]) -> None:
    """Raise the UnsafeKeyError that says what is wrong with ``relative`` first;
    ``shown`` names it (``key 'a/../b'``)."""
    if "\0" in relative:
        raise UnsafeKeyError(f"{shown} contains a NUL byte")
    if "\\" in relative:
        raise UnsafeKeyError(f"{shown} contains a backslash")
    if relative.startswith("/"):
        raise UnsafeKeyError(f"{shown} starts with '/' (an absolute path)")
    for part in parts:
        if part == "":
            raise UnsafeKeyError(f"{shown} has an empty path segment ('//')")
        if part in (".", ".."):
            raise UnsafeKeyError(f"{shown} has a {part!r} segment")
    if parts and parts[0] == STATE_DIR:
        raise UnsafeKeyError(f"{shown} is inside {STATE_DIR}/, which partdl keeps its state in")
    raise UnsafeKeyError(f"{shown} has a name partdl uses for its temp and lock files")


def _check_names(shown: str, parts: tuple[str, ...], is_folder: bool, name_max: int) -> None:
    """Each name fits ``name_max`` bytes, a file's with room for partdl's temp suffix;
    ``shown`` names the whole path (``key 'a/b'``)."""
    for index, part in enumerate(parts):
        room = name_max - (0 if is_folder or index < len(parts) - 1 else TEMP_SUFFIX_LENGTH)
        if len(os.fsencode(part)) > room:
            raise UnsafeKeyError(
                f"{shown}: the name {_shown(part)} is "
                f"{len(os.fsencode(part))} bytes; the file system allows {name_max}"
                + ("" if room == name_max else f", less the {TEMP_SUFFIX_LENGTH} of a temp name")
            )


class PathClaims:
    """The files and folders the keys seen so far need, to refuse conflicting ones.

    ``fold_case`` compares names case-insensitively, for a destination on a file
    system that does (most macOS and Windows volumes): ``A`` and ``a`` would be one
    file there. Memory is one string per key, kept for the whole listing.
    """

    def __init__(self, *, fold_case: bool = False) -> None:
        self._fold_case = fold_case
        self._files: set[str] = set()
        self._folders: set[str] = set()

    def _norm(self, path: str) -> str:
        return path.casefold() if self._fold_case else path

    def claim(self, path: KeyPath, key: str) -> None:
        """Record ``path`` for ``key``, or raise UnsafeKeyError if another key has it."""
        own = self._norm(path.relative)
        parents = self._new_parents(own, key)
        if path.is_folder:
            if own in self._files:
                raise UnsafeKeyError(
                    f"key {_shown(key)} is a folder, but another key is a file of that name"
                )
            self._folders.update(parents)
            if own:
                self._folders.add(own)
            return
        if own in self._folders:
            raise UnsafeKeyError(
                f"key {_shown(key)} is a file, but other keys need a folder of that name"
            )
        if own in self._files:
            how = "differing only in case " if self._fold_case else ""
            raise UnsafeKeyError(
                f"key {_shown(key)} maps to the same file as another key {how}".rstrip()
            )
        self._folders.update(parents)
        self._files.add(own)

    def _new_parents(self, own: str, key: str) -> list[str]:
        """The folders ``own`` needs that no key needed before; none may be a file."""
        cut = own.rfind("/")
        # A known folder's own parents are known too, and none of them is a file.
        if cut < 0 or own[:cut] in self._folders:
            return []
        parents = []
        while cut >= 0:
            parents.append(own[:cut])
            cut = own.rfind("/", 0, cut)
        for parent in reversed(parents):
            if parent in self._files:
                raise UnsafeKeyError(
                    f"key {_shown(key)} needs a folder {parent!r}, "
                    "but another key is a file of that name"
                )
        return parents
