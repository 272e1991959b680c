"""What both V4 signatures (OSS's ``OSS4-HMAC-SHA256``, AWS's ``AWS4-HMAC-SHA256``) are
made of: the keys they sign with and the canonical encoding of a path and a query.
Pure: no clock, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Keys:
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
