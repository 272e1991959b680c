"""OSS signature V4 (``OSS4-HMAC-SHA256``) for a request's ``Authorization`` header.

The algorithm of Alibaba Cloud's "Signature V4" documentation: a canonical request
(method, URI-encoded ``/bucket/key``, sorted encoded query, the signed headers, the
payload hash), a string to sign over its SHA-256 with the scope
``<date>/<region>/oss/aliyun_v4_request``, and a key derived from the secret by
HMAC-SHA256 over the date, region, product and ``aliyun_v4_request``. Signed headers
are every ``x-oss-*`` one plus ``Content-Type`` and ``Content-MD5``; no additional
headers are signed. Pure: no clock (the caller passes the time), no I/O.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
from collections.abc import Mapping

from ._signing import Keys, canonical_query_pairs, uri_encode

ALGORITHM = "OSS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_ALWAYS_SIGNED = frozenset({"content-type", "content-md5"})


def canonical_query(params: Mapping[str, str]) -> str:
    # OSS writes a name without a value bare; AWS writes "name=".
    return "&".join(f"{k}={v}" if v else k for k, v in canonical_query_pairs(params))


def _signed_headers(headers: Mapping[str, str]) -> str:
    chosen = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith("x-oss-") or lowered in _ALWAYS_SIGNED:
            chosen.append((lowered, value.strip()))
    chosen.sort()  # by name ("x-oss-a" before "x-oss-a-b"), as the canonical form wants
    return "".join(f"{name}:{value}\n" for name, value in chosen)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=16)
def signing_key(secret: str, date: str, region: str, product: str = "oss") -> bytes:
    """The day's key for one region: the same all day, so it is kept (four HMACs a
    request saved)."""
    key = _hmac(f"aliyun_v4{secret}".encode(), date)
    for part in (region, product, "aliyun_v4_request"):
        key = _hmac(key, part)
    return key


@functools.lru_cache(maxsize=16)
def _keyed(secret: str, date: str, region: str) -> hmac.HMAC:
    """An HMAC already keyed with the day's key: a copy of it signs a request."""
    return hmac.new(signing_key(secret, date, region), digestmod=hashlib.sha256)


@functools.lru_cache(maxsize=4)
def _stamp(second: datetime.datetime) -> str:
    return second.strftime("%Y%m%dT%H%M%SZ")  # strftime costs more than the rest of a line


def sign(
    method: str,
    resource: tuple[str, str],
    params: Mapping[str, str],
    headers: Mapping[str, str],
    keys: Keys,
    region: str,
    now: datetime.datetime,
) -> dict[str, str]:
    """The headers to add to a request so that OSS accepts it: ``x-oss-date``,
    ``x-oss-content-sha256``, ``x-oss-security-token`` (temporary keys) and
    ``Authorization``.

    ``resource`` is ``(bucket, key)`` (key ``""`` for the bucket itself); ``headers``
    are the request's own, which must already hold every ``x-oss-*`` it sends; ``now``
    is a UTC time.
    """
    stamp = _stamp(now.replace(microsecond=0))
    added = {"x-oss-date": stamp, "x-oss-content-sha256": UNSIGNED_PAYLOAD}
    if keys.security_token:
        added["x-oss-security-token"] = keys.security_token
    bucket, key = resource
    uri = uri_encode(f"/{bucket}/{key}" if bucket else "/", keep_slash=True)
    canonical = "\n".join(
        (
            method,
            uri,
            canonical_query(params),
            _signed_headers({**headers, **added}),
            "",  # no additional signed headers
            UNSIGNED_PAYLOAD,
        )
    )
    scope = f"{stamp[:8]}/{region}/oss/aliyun_v4_request"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{digest}"
    signer = _keyed(keys.access_key_secret, stamp[:8], region).copy()
    signer.update(to_sign.encode("utf-8"))
    signature = signer.hexdigest()
    added["authorization"] = (
        f"{ALGORITHM} Credential={keys.access_key_id}/{scope}, Signature={signature}"
    )
    return added
