"""What both V4 signatures (OSS's ``OSS4-HMAC-SHA256``, AWS's ``AWS4-HMAC-SHA256``) are
made of: the keys they sign with, the canonical encoding of a path and a query, the
request's time stamp and the day's signing key. Pure: no clock (the caller passes the
time), no I/O."""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote


class Keys(NamedTuple):
    """One set of credentials, as a provider hands them out at a moment."""

    access_key_id: str
    access_key_secret: str
    security_token: str = ""

    def __repr__(self) -> str:  # a secret: never in a log or a traceback
        return f"Keys(access_key_id={self.access_key_id!r}, ...)"


def uri_encode(text: str, *, keep_slash: bool) -> str:
    """RFC 3986 encoding of UTF-8: only unreserved characters (and ``/`` in a path) stay."""
    return quote(text.encode("utf-8"), safe="/-_.~" if keep_slash else "-_.~")


def canonical_query_pairs(params: Mapping[str, str]) -> list[tuple[str, str]]:
    """The query's names and values, encoded and sorted, as both V4 signatures want."""
    return sorted(
        (uri_encode(k, keep_slash=False), uri_encode(v, keep_slash=False))
        for k, v in params.items()
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=16)
def keyed_signer(seed: str, date: str, scope: tuple[str, ...]) -> hmac.HMAC:
    """An HMAC keyed with the day's signing key: HMAC-SHA256 of ``date`` under ``seed``
    (a prefix and the secret), then of each part of ``scope`` in turn. The same all day,
    so it is kept (four HMACs a request saved); a copy of it signs a request."""
    key = _hmac(seed.encode("utf-8"), date)
    for part in scope:
        key = _hmac(key, part)
    return hmac.new(key, digestmod=hashlib.sha256)


@functools.lru_cache(maxsize=4)
def _stamp(second: datetime.datetime) -> str:
    return second.strftime("%Y%m%dT%H%M%SZ")  # strftime costs more than the rest of a line


def v4_stamp(now: datetime.datetime) -> str:
    """``now`` (UTC) as both signatures write it, ``20261201T080910Z``."""
    return _stamp(now.replace(microsecond=0))
