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
import hashlib
from collections.abc import Mapping

from ._signing import Keys, canonical_query_pairs, keyed_signer, uri_encode, v4_stamp

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
    stamp = v4_stamp(now)
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
    seed = f"aliyun_v4{keys.access_key_secret}"
    signer = keyed_signer(seed, stamp[:8], (region, "oss", "aliyun_v4_request")).copy()
    signer.update(to_sign.encode("utf-8"))
    signature = signer.hexdigest()
    added["authorization"] = (
        f"{ALGORITHM} Credential={keys.access_key_id}/{scope}, Signature={signature}"
    )
    return added
