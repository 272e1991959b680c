"""Plain and presigned HTTP(S) URLs through a ``requests.Session``.

A presigned URL is a bearer credential: its query string must never reach the
checkpoint, a log line or an error message. The checkpoint identity is
``scheme://host[:port]/path`` (plus a hash of the query parameters that are not
part of a signature), every message names the URL that way, and the one
translation function also scrubs the exceptions it chains, since requests and
urllib3 put the full URL in theirs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
import requests.adapters

from ..errors import (
    InvalidArgumentError,
    ObjectChangedDuringRead,
    PartdlError,
    TransientError,
    UnknownLength,
)
from ..model import Checksum, ObjectStat
from ..options import DEFAULT_TASK_NUM
from ..plan import validate_task_num
from ..urls import split_url
from ._body import DEFAULT_STALL_TIMEOUT, NETWORK_ERRORS, Urllib3Body
from ._http import (
    check_partial_response,
    check_same_object,
    content_length,
    content_range_size,
    error_class,
    oss_checksum,
)

logger = logging.getLogger("partdl")

# Seconds to connect, and to wait for each read from the socket (the stall timeout).
CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT: tuple[float, float] = (CONNECT_TIMEOUT, DEFAULT_STALL_TIMEOUT)

# Query parameters that carry a signature, a credential, a token or an expiry (S3
# SigV2/SigV4, OSS V1/V4, GCS, Azure SAS, CloudFront). A re-signed URL changes them
# all, so they stay out of the checkpoint identity and a fresh URL resumes.
_SIGNING_PREFIXES = ("x-amz-", "x-oss-", "x-goog-")
_SIGNING_PARAMS = frozenset(
    {
        "awsaccesskeyid",
        "ossaccesskeyid",
        "googleaccessid",
        "signature",
        "expires",
        "security-token",
        "policy",
        "key-pair-id",
        "token",
        "access_token",
        "sig",
        "se",
        "st",
        "sv",
        "sp",
        "spr",
        "sr",
        "ss",
        "srt",
        "si",
        "sip",
        "skoid",
        "sktid",
        "skt",
        "ske",
        "sks",
        "skv",
        "ses",
    }
)
# Headers partdl sets on every request; a caller's value for them would break ranges.
_RESERVED_HEADERS = frozenset(
    {
        "range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "accept-encoding",
    }
)
# Anything from a "?" up to the end of a URL, wherever a message quotes one.
_QUERY_IN_TEXT = re.compile(r"\?[^\s'\"<>()\[\]]*")
_USERINFO_IN_TEXT = re.compile(r"(?<=//)[^/\s@'\"]+@")
_REDACTED = "<redacted>"

_SEND_ERRORS: tuple[type[BaseException], ...] = (requests.RequestException, *NETWORK_ERRORS)
# What a redirect's target answers once its signature expired or its link moved on.
_STALE_REDIRECT = frozenset({401, 403, 404, 410})
# Never sent straight to a redirect's target on another host (requests strips them too).
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie"})


class _Redirect:
    """Where the URL redirected to last, shared by the part loops behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: str | None = None

    @property
    def target(self) -> str | None:
        with self._lock:
            return self._target

    def learn(self, target: str) -> None:
        with self._lock:
            self._target = target

    def forget(self, target: str) -> None:
        with self._lock:
            if self._target == target:
                self._target = None


_RETRYABLE: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def _reason(failure: BaseException) -> BaseException:
    """What happened: urllib3 wraps a refused or reset connection in "Max retries
    exceeded" even when requests let it try once; the reason inside says it plainly."""
    inner = failure.args[0] if failure.args else None
    reason = getattr(inner, "reason", None)
    return reason if isinstance(reason, BaseException) else failure


def _is_signing_param(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(_SIGNING_PREFIXES) or lowered in _SIGNING_PARAMS


def _checked_url(url: object, name: str) -> str:
    if not isinstance(url, str):
        raise InvalidArgumentError(f"{name} must be a string, got {type(url).__name__}")
    parts = split_url(url, name)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL itself is not quoted: it may carry a signature.
        raise InvalidArgumentError(f"{name} must be an http:// or https:// URL with a host")
    return url


def _location(url: str) -> str:
    """``scheme://host[:port]/path``: the URL without credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path or '/'}"


def source_of(url: str) -> str:
    """The checkpoint identity of ``url``: never its signature, stable across re-signing.

    Query parameters that are not part of a signature (``versionId``, say, or an
    application's ``?id=``) still tell objects apart, so a digest of them is kept.
    """
    location = _location(url)
    stable = sorted(
        (name, value)
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)
        if not _is_signing_param(name)
    )
    if not stable:
        return location
    digest = hashlib.sha256(urlencode(stable).encode()).hexdigest()[:16]
    return f"{location}#query-sha256={digest}"


@dataclass(frozen=True, slots=True)
class Redactor:
    """Takes query strings and credentials out of text, and out of exceptions."""

    secrets: tuple[str, ...]

    @classmethod
    def for_urls(cls, urls: Iterable[str]) -> Redactor:
        secrets: set[str] = set()
        for url in urls:
            parts = urlsplit(url)
            secrets.update(s for s in (parts.query, parts.password) if s)
            secrets.update(
                value
                for name, value in parse_qsl(parts.query)
                if _is_signing_param(name) and len(value) >= 8
            )
        # Longest first, so a query is replaced whole before any value inside it.
        return cls(tuple(sorted(secrets, key=len, reverse=True)))

    def text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, _REDACTED)
        text = _QUERY_IN_TEXT.sub("?" + _REDACTED, text)
        return _USERINFO_IN_TEXT.sub("", text)

    def scrub(self, exc: BaseException) -> None:
        """Redact, in place, the messages of ``exc`` and of everything it chains.

        A traceback prints every exception in the chain, and requests and urllib3
        quote the full URL in theirs: unscrubbed, chaining with ``from`` would put the
        signature in any log that records a traceback.
        """
        seen: set[int] = set()
        todo = [exc]
        while todo and len(seen) < 32:
            current = todo.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
            current.args = tuple(
                self.text(arg) if isinstance(arg, str) else arg for arg in current.args
            )
            todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def new_session(pool_size: int) -> requests.Session:
    """A session whose connection pool per host holds ``pool_size`` connections."""
    session = requests.Session()
    # max_retries=0: partdl's own retry policy resumes a part at its first missing byte.
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=pool_size, max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _checked_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    headers = dict(headers or {})
    reserved = sorted(name for name in headers if name.lower() in _RESERVED_HEADERS)
    if reserved:
        raise InvalidArgumentError(f"partdl sets these headers itself: {', '.join(reserved)}")
    # Ranges count bytes of the stored representation, never of a compressed one.
    headers["Accept-Encoding"] = "identity"
    return headers


def _conditions(stat: ObjectStat) -> dict[str, str]:
    """What pins a GET to the version ``stat`` describes.

    ``If-Match`` compares strongly, so a weak ETag (``W/"..."``) would always fail
    it: Last-Modified is used then, as when there is no ETag at all.
    """
    if stat.etag and not stat.etag.startswith("W/"):
        return {"If-Match": stat.etag}
    if stat.last_modified:
        return {"If-Unmodified-Since": stat.last_modified}
    return {}


def _oss_crc(headers: Mapping[str, str]) -> Checksum | None:
    """An OSS HEAD (e.g. through a presigned HEAD URL) publishes the object's CRC-64;
    from an arbitrary server, a value wider than 64 bits is no such CRC."""
    found = oss_checksum(headers)
    return found if found is not None and found.value < 1 << 64 else None


def _skip(body: Urllib3Body, count: int) -> None:
    """Read and drop ``count`` bytes: a server that ignores ranges always starts at 0."""
    scratch = memoryview(bytearray(min(count, 1 << 16)))
    while count > 0:
        got = body.readinto(scratch[: min(count, len(scratch))])
        if got <= 0:
            raise TransientError("the body ended before the part's first byte")
        count -= got


class HttpBackend:
    """One object behind an HTTP(S) URL, fetched in ranged GETs.

    ``url`` is only ever used with GET, so a presigned GET URL works. The object's
    size, ETag and Last-Modified come from one HEAD of ``head_url`` when given (a
    presigned URL's signature covers its method, so a GET URL cannot be HEADed),
    else from a GET of ``bytes=0-0`` and its ``Content-Range``. Every GET sends
    ``If-Match`` on the ETag, or ``If-Unmodified-Since`` on Last-Modified when there
    is no strong ETag, and must come back 206 with exactly the range asked for. A
    server that ignores ranges (200 to the probe) is read as one stream, with a
    warning.

    ``session`` is used as given (mount an adapter whose ``pool_maxsize`` is at least
    the task count); otherwise the backend makes one with ``pool_size`` connections
    and closes it in :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        head_url: str | None = None,
        session: requests.Session | None = None,
        headers: Mapping[str, str] | None = None,
        pool_size: int = DEFAULT_TASK_NUM,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self._url = _checked_url(url, "url")
        self._head_url = None if head_url is None else _checked_url(head_url, "head_url")
        self._headers = _checked_headers(headers)
        self._timeout = timeout
        self._redactor = Redactor.for_urls(u for u in (url, head_url) if u)
        self._location = _location(url)
        self._source = source_of(url)
        self._owns_session = session is None
        if session is None:
            validate_task_num(pool_size)
            session = new_session(pool_size)
        self._session = session
        self._redirect = _Redirect()

    @property
    def source(self) -> str:
        return self._source

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> HttpBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the Backend protocol ----------------------------------------------------------

    def stat(self) -> ObjectStat:
        stat = self._head() if self._head_url is not None else None
        if stat is None or not stat.ranged:
            stat = self._probe()
        if not stat.etag and not stat.last_modified:
            logger.warning(
                "%s sends neither ETag nor Last-Modified: a change during the download "
                "is noticed only if the size changes",
                self._location,
            )
        return stat

    def read(self, start: int, end: int, stat: ObjectStat) -> Urllib3Body:
        what = f"GET {self._location} bytes {start}-{end - 1}"
        headers = {"Range": f"bytes={start}-{end - 1}", **_conditions(stat)}
        response = self._get(headers, what)
        try:
            return self._body(response, start, end, stat, what)
        except BaseException:
            response.close()
            raise

    # -- the pieces --------------------------------------------------------------------

    def _head(self) -> ObjectStat:
        assert self._head_url is not None
        what = f"HEAD {_location(self._head_url)}"
        with self._send("HEAD", self._head_url, {}, what) as response:
            if response.status_code != 200:
                raise self._translate(response, what)
            size = content_length(response.headers)
            if size is None:
                raise PartdlError(f"{what}: the answer has no Content-Length")
            # Servers that take ranges say so; for any other, the GET probe decides.
            ranged = "bytes" in response.headers.get("Accept-Ranges", "").lower()
            return self._stat(response, size, ranged, _oss_crc(response.headers))

    def _get(self, headers: Mapping[str, str], what: str) -> requests.Response:
        """GET the URL, or straight where its redirect led last: a round trip less a part.

        A redirect target refused (a presigned one expired, say) is forgotten and the
        URL followed again, once.
        """
        target = self._redirect.target
        if target is None:
            response = self._send("GET", self._url, headers, what)
        else:
            response = self._send("GET", target, headers, what, strip=self._strip(target))
            if response.status_code not in _STALE_REDIRECT:
                return response
            response.close()
            logger.info(
                "%s: the redirect's target answered %d: following the URL again",
                what,
                response.status_code,
            )
            self._redirect.forget(target)
            response = self._send("GET", self._url, headers, what)
        if response.history and response.status_code in (200, 206) and self._session.auth is None:
            self._redirect.learn(response.url)
        return response

    def _strip(self, target: str) -> bool:
        # As requests on a redirect elsewhere: no credentials go to another origin.
        here, there = urlsplit(self._url), urlsplit(target)
        return (here.scheme, here.hostname, here.port) != (there.scheme, there.hostname, there.port)

    def _probe(self) -> ObjectStat:
        what = f"GET {self._location} bytes 0-0"
        with self._get({"Range": "bytes=0-0"}, what) as response:
            status = response.status_code
            if status == 206:
                size = content_range_size(response.headers.get("Content-Range"))
                if size is None:
                    raise PartdlError(f"{what}: the answer does not give the object's size")
                self._drain(response, what)
                return self._stat(response, size, ranged=True)
            if status == 200:
                return self._unranged_stat(response, what)
            if status == 416:
                size = content_range_size(response.headers.get("Content-Range"))
                if size == 0:  # only an empty object cannot satisfy bytes=0-0
                    return self._stat(response, 0, ranged=True)
            else:
                raise self._translate(response, what)
        # A 416 for an object that is not empty, or that does not say: ask for it whole.
        what = f"GET {self._location}"
        logger.info("%s: the server refused bytes 0-0 (HTTP 416); asking for it whole", what)
        with self._send("GET", self._url, {}, what) as response:
            if response.status_code != 200:
                raise self._translate(response, what)
            return self._unranged_stat(response, what)

    def _unranged_stat(self, response: requests.Response, what: str) -> ObjectStat:
        size = content_length(response.headers)
        if size is None:
            raise UnknownLength(
                f"{what}: the server ignores ranges and sends no Content-Length; "
                "downloaded alone, the URL is read as one stream"
            )
        return self._stat(response, size, ranged=size == 0)

    def open_stream(self) -> tuple[Urllib3Body, str | None]:
        """GET the whole object, however long, for :func:`partdl.engine.stream_download`:
        its body and its ETag."""
        what = f"GET {self._location}"
        response = self._get({}, what)
        if response.status_code != 200:
            response.close()
            raise self._translate(response, what)
        body = Urllib3Body(response.raw, -1)  # -1: no length to count down to
        return body, response.headers.get("ETag")

    @staticmethod
    def _stat(
        response: requests.Response, size: int, ranged: bool, checksum: Checksum | None = None
    ) -> ObjectStat:
        return ObjectStat(
            size=size,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            checksum=checksum,
            ranged=ranged,
        )

    def _body(
        self, response: requests.Response, start: int, end: int, stat: ObjectStat, what: str
    ) -> Urllib3Body:
        status, headers = response.status_code, response.headers
        if status not in (200, 206):
            raise self._translate(response, what)
        if status == 200 and not stat.ranged:
            # Servers that ignore conditional headers are caught here, if they say enough.
            check_same_object(headers, stat)
            total = content_length(headers)
            if total is not None and total != stat.size:
                raise ObjectChangedDuringRead(
                    f"{what}: the object is now {total} bytes, not {stat.size}"
                )
            # The whole object from byte 0; its length is what tells close() whether
            # the connection still has unread bytes in it.
            body = Urllib3Body(response.raw, stat.size)
            _skip(body, start)
            return body
        # This also catches a total length that moved (a server ignoring If-Match).
        check_partial_response(status, headers, start, end, stat)
        return Urllib3Body(response.raw, end - start)

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], what: str, *, strip: bool = False
    ) -> requests.Response:
        sent = {**self._headers, **headers}
        if strip:
            sent = {k: v for k, v in sent.items() if k.lower() not in _CREDENTIAL_HEADERS}
        try:
            return self._session.request(
                method,
                url,
                headers=sent,
                stream=True,
                timeout=self._timeout,
                allow_redirects=True,
            )
        except _SEND_ERRORS as exc:
            raise self._translate(exc, what) from exc

    def _drain(self, response: requests.Response, what: str) -> None:
        """Read a short body out, so its connection goes back to the pool for a part."""
        try:
            response.content  # noqa: B018  (reading is the point)
        except _SEND_ERRORS as exc:
            raise self._translate(exc, what) from exc

    def _translate(self, failure: requests.Response | BaseException, what: str) -> PartdlError:
        """The one place HTTP failures become partdl errors, with every secret redacted."""
        if isinstance(failure, requests.Response):
            status = failure.status_code
            reason = self._redactor.text(failure.reason or "")
            return error_class(status)(f"{what}: HTTP {status} {reason}".rstrip())
        self._redactor.scrub(failure)
        message = self._redactor.text(f"{what}: {_reason(failure)}")
        if not isinstance(failure, requests.RequestException):
            retryable = isinstance(failure, NETWORK_ERRORS)
            return TransientError(message) if retryable else PartdlError(message)
        # Every requests exception is an OSError: only these are worth a retry. A
        # certificate that does not verify will not verify on a retry either.
        if isinstance(failure, _RETRYABLE) and not isinstance(
            failure, requests.exceptions.SSLError
        ):
            return TransientError(message)
        if isinstance(failure, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
            return InvalidArgumentError(message)
        return PartdlError(message)

    # -- trees of objects (partdl.batch) -----------------------------------------------

    def read_whole(self, etag: str | None) -> tuple[ObjectStat, Urllib3Body]:
        """GET the whole object; size, ETag and an OSS CRC-64 come from the answer."""
        what = f"GET {self._location}"
        conditions = {"If-Match": etag} if etag and not etag.startswith("W/") else {}
        response = self._send("GET", self._url, conditions, what)
        size = content_length(response.headers)
        if response.status_code != 200 or size is None:
            response.close()
            if response.status_code != 200:
                raise self._translate(response, what)
            raise UnknownLength(f"{what}: the answer has no Content-Length")
        stat = self._stat(response, size, ranged=True, checksum=_oss_crc(response.headers))
        return stat, Urllib3Body(response.raw, size)
