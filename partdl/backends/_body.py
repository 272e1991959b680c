"""A ranged response body read straight into the caller's buffer."""

from __future__ import annotations

import http.client
import socket
from typing import Any

import urllib3.exceptions

from ..plan import DEFAULT_STALL_TIMEOUT
from ._http import body_failure

__all__ = ["DEFAULT_STALL_TIMEOUT", "NETWORK_ERRORS", "Urllib3Body"]

# Everything a half-read body can raise that a fresh ranged GET may fix.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # resets, refused connections, timeouts (TimeoutError is an OSError)
    http.client.HTTPException,  # IncompleteRead and friends
    urllib3.exceptions.HTTPError,  # ProtocolError, ReadTimeoutError, ...
)


def _socket_of(raw: Any) -> socket.socket | None:
    """The socket a urllib3 response reads its body from, or None if it cannot be found.

    The http.client response reads through a ``SocketIO`` whose ``_sock`` is that
    socket; urllib3's connection object may already have let go of it (a response
    with ``Connection: close``), so that is only the fallback.
    """
    stream = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(stream, "_sock", None)
    if not isinstance(sock, socket.socket):
        sock = getattr(getattr(raw, "connection", None), "sock", None)
    return sock if isinstance(sock, socket.socket) else None


class Urllib3Body:
    """The urllib3 response that requests, oss2 and botocore all stream from.

    ``readinto`` goes to the underlying ``http.client`` response when it can, which
    fills the caller's buffer from the socket without an intermediate copy. A body
    closed before its last byte takes its connection down with it, so the pool never
    hands out a socket with half a response still in it.

    ``stall_timeout`` (seconds) bounds how long one read may wait for the next byte,
    whatever read timeout the SDK's client was built with: a connection that stops
    delivering raises :class:`TransientError`, and the part is resumed on a new one.
    It is not a limit on the whole body, so a slow but moving transfer is never cut.
    urllib3 sets the socket's timeout afresh for each request, so a pooled connection
    does not carry this one into the SDK's next call.
    """

    def __init__(self, raw: Any, length: int, *, stall_timeout: float | None = None) -> None:
        self._raw = raw
        self._remaining = length
        self._stall_timeout = stall_timeout
        fp = getattr(raw, "_fp", None)
        encoding = raw.headers.get("Content-Encoding", "identity").lower()
        plain = encoding in ("", "identity")
        self._direct = fp if isinstance(fp, http.client.HTTPResponse) and plain else None
        if stall_timeout is not None:
            sock = _socket_of(raw)
            if sock is not None:
                sock.settimeout(stall_timeout)

    def readinto(self, buffer: memoryview, /) -> int:
        try:
            if self._direct is not None:
                count = self._direct.readinto(buffer)
            else:
                count = int(self._raw.readinto(buffer))
        except NETWORK_ERRORS as exc:  # TimeoutError (a stall) is an OSError
            raise body_failure(exc, self._stall_timeout) from exc
        self._remaining -= count
        return count

    def close(self) -> None:
        try:
            if self._remaining != 0:
                self._raw.close()
            self._raw.release_conn()
        except NETWORK_ERRORS:
            pass
