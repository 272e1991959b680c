"""AWS Signature V4 (``AWS4-HMAC-SHA256``) for an S3 request's ``Authorization`` header.

The algorithm of AWS's "Signature Version 4" documentation, as S3 applies it: the
canonical request (method, the path as sent, URI-encoded once; the sorted encoded
query, ``name=`` for an empty value; ``host`` and every ``x-amz-*`` header, trimmed;
the payload hash), a string to sign over its SHA-256 with the scope
``<date>/<region>/s3/aws4_request``, and a key derived from the secret by
HMAC-SHA256 over the date, region, service and ``aws4_request``. Only GET and HEAD
are signed here: their empty body's hash is the payload hash. Pure: no clock (the
caller passes the time), no I/O.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping

from ._signing import Keys, canonical_query_pairs, keyed_signer, v4_stamp

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sign(
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    keys: Keys,
    region: str,
    now: datetime.datetime,
) -> dict[str, str]:
    """The headers to add so that S3 accepts a GET or HEAD: ``x-amz-date``,
    ``x-amz-content-sha256``, ``x-amz-security-token`` (temporary keys) and
    ``Authorization``.

    ``host`` is the ``Host`` header as sent; ``path`` the request's path, already
    URI-encoded as sent; ``headers`` the request's own (every ``x-amz-*`` one is
    signed, the rest are not); ``now`` a UTC time.
    """
    stamp = v4_stamp(now)
    added = {"x-amz-date": stamp, "x-amz-content-sha256": EMPTY_SHA256}
    if keys.security_token:
        added["x-amz-security-token"] = keys.security_token
    signed = [("host", host)]
    for name, value in (*headers.items(), *added.items()):
        lowered = name.lower()
        if lowered.startswith("x-amz-"):
            signed.append((lowered, " ".join(value.split())))
    signed.sort()
    names = ";".join(name for name, _ in signed)
    canonical = "\n".join(
        (
            method,
            path,
            "&".join(f"{k}={v}" for k, v in canonical_query_pairs(params)),
            "".join(f"{name}:{value}\n" for name, value in signed),
            names,
            EMPTY_SHA256,
        )
    )
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    seed = f"AWS4{keys.access_key_secret}"
    signer = keyed_signer(seed, stamp[:8], (region, "s3", "aws4_request")).copy()
    signer.update(f"{ALGORITHM}\n{stamp}\n{scope}\n{digest}".encode())
    added["authorization"] = (
        f"{ALGORITHM} Credential={keys.access_key_id}/{scope}, "
        f"SignedHeaders={names}, Signature={signer.hexdigest()}"
    )
    return added
