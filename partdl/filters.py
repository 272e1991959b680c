"""``include`` / ``exclude`` globs on an object's path relative to the prefix. Pure.

- ``*`` matches within one path segment, ``**`` across segments, ``?`` one character
  other than ``/``, ``[abc]`` / ``[!abc]`` one character of (or not of) a set;
- a pattern without a ``/`` matches a name at any depth (``*.parquet``);
  a pattern with one is anchored at the prefix (``tmp/*``, ``/top.txt``);
- a pattern matches a path when it matches the path or one of its folders, so
  ``tmp`` or ``tmp/*`` excludes everything under ``tmp/`` (as in ``.gitignore``).

An object is taken when it matches some ``include`` pattern (or none are given) and
no ``exclude`` pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .errors import InvalidArgumentError


def _translate(pattern: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*":
            if pattern.startswith("*", index):
                index += 1
                if pattern.startswith("/", index):  # "**/" is zero or more folders
                    index += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1 if pattern.startswith(("!", "]"), index) else index)
            if end < 0:
                raise InvalidArgumentError(f"pattern {pattern!r} has an unclosed '['")
            body = pattern[index:end]
            index = end + 1
            negate = body.startswith("!")
            body = body[1:] if negate else body
            escaped = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[^/{escaped}]" if negate else f"[{escaped}]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern.strip("/"):
        raise InvalidArgumentError(f"a filter pattern must be a non-empty glob, got {pattern!r}")
    anchored = "/" in pattern.rstrip("/")
    body = _translate(pattern.strip("/"))
    # Matches the path itself or any of its folders ("(/.*)?"), anywhere unless anchored.
    return re.compile(("" if anchored else "(?:.*/)?") + body + "(?:/.*)?", re.DOTALL)


class PathFilter:
    """Decides, for a path relative to the prefix, whether the object is taken."""

    def __init__(self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None):
        self.include: Sequence[re.Pattern[str]] = [compile_pattern(p) for p in _list(include)]
        self.exclude: Sequence[re.Pattern[str]] = [compile_pattern(p) for p in _list(exclude)]

    def __call__(self, path: str) -> bool:
        if self.include and not any(p.fullmatch(path) for p in self.include):
            return False
        return not any(p.fullmatch(path) for p in self.exclude)

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)


def _list(patterns: Iterable[str] | None) -> list[str]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        return [patterns]  # a lone pattern, not the characters of one
    return list(patterns)
