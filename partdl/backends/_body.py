"""A ranged response body read straight into the caller's buffer."""

from __future__ import annotations

import http.client
from typing import Any

import urllib3.exceptions

from ..errors import TransientError

# Everything a half-read body can raise that a fresh ranged GET may fix.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # resets, refused connections, timeouts (TimeoutError is an OSError)
    http.client.HTTPException,  # IncompleteRead and friends
    urllib3.exceptions.HTTPError,  # ProtocolError, ReadTimeoutError, ...
)


class Urllib3Body:
    """The urllib3 response that requests, oss2 and botocore all stream from.

    ``readinto`` goes to the underlying ``http.client`` response when it can, which
    fills the caller's buffer from the socket without an intermediate copy. A body
    closed before its last byte takes its connection down with it, so the pool never
    hands out a socket with half a response still in it.
    """

    def __init__(self, raw: Any, length: int) -> None:
        self._raw = raw
        self._remaining = length
        fp = getattr(raw, "_fp", None)
        encoding = raw.headers.get("Content-Encoding", "identity").lower()
        plain = encoding in ("", "identity")
        self._direct = fp if isinstance(fp, http.client.HTTPResponse) and plain else None

    def readinto(self, buffer: memoryview, /) -> int:
        try:
            if self._direct is not None:
                count = self._direct.readinto(buffer)
            else:
                count = int(self._raw.readinto(buffer))
        except NETWORK_ERRORS as exc:
            raise TransientError(f"connection failed mid-body: {exc!r}") from exc
        self._remaining -= count
        return count

    def close(self) -> None:
        try:
            if self._remaining != 0:
                self._raw.close()
            self._raw.release_conn()
        except NETWORK_ERRORS:
            pass
