"""Checks every HTTP backend applies to a ranged answer."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import TransientError


def content_range(start: int, end: int, size: int) -> str:
    return f"bytes {start}-{end - 1}/{size}"


def check_partial_response(
    status: int, headers: Mapping[str, str], start: int, end: int, size: int
) -> None:
    """Insist on a 206 for exactly ``[start, end)`` of an object of ``size`` bytes.

    A wrong answer is treated as transient: a misbehaving proxy or cache in the path
    is the usual cause, and the retry policy bounds how often it is tried.
    """
    expected = content_range(start, end, size)
    if status != 206:
        raise TransientError(f"expected HTTP 206 for {expected}, got {status}")
    got = headers.get("Content-Range")
    if got != expected:
        raise TransientError(f"expected Content-Range {expected!r}, got {got!r}")
    length = headers.get("Content-Length")
    if length is not None and length != str(end - start):
        raise TransientError(f"expected Content-Length {end - start}, got {length}")
