"""URLs split with their malformed cases made a clear error, before any request."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from .errors import InvalidArgumentError


def split_url(url: str, what: str) -> SplitResult:
    """``urlsplit(url)``, its port checked too (an unclosed ``[``, a port past 65535).

    The message names ``what`` and the fault, never the URL: it may carry a signature.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (reading it is the check)
    except ValueError as exc:
        raise InvalidArgumentError(f"{what} is not a valid URL: {exc}") from None
    return parts
