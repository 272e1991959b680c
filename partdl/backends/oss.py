"""Alibaba Cloud OSS through an ``oss2.Bucket``."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import oss2
import oss2.exceptions
import oss2.http
import requests
import requests.adapters
import requests.structures
import requests.utils

from ..errors import InvalidArgumentError, PartdlError, TransientError
from ..listing import ListedObject, http_date, quoted_etag
from ..model import ObjectStat
from ._body import DEFAULT_STALL_TIMEOUT, NETWORK_ERRORS, Urllib3Body
from ._http import check_partial_response, content_length, error_class, oss_stat
from ._wire import Origin, Pool, Response, environment_ca_bundle


def _translate(exc: oss2.exceptions.OssError, what: str) -> PartdlError:
    """The one place oss2's errors become partdl's."""
    status, code = exc.status, getattr(exc, "code", "") or ""
    if status < 0:
        # oss2 reports a failure to get any answer (refused, reset, timed out) as a
        # RequestError with a negative status; the wrapped exception's type says which.
        # Its text is left out: it carries the request URL.
        cause = getattr(exc, "exception", None)
        reason = type(cause).__name__ if cause is not None else type(exc).__name__
        return TransientError(f"{what}: no answer ({reason})")
    return error_class(status, code)(f"{what}: HTTP {status} {code}".rstrip())


def _sized_adapter(adapter: Any, pool_size: int) -> Any:
    """``adapter``, or a stock one like it whose pool keeps ``pool_size`` connections.

    oss2 pools 10 connections per host (``oss2.defaults.connection_pool_size``); with
    more workers than that, requests opens a connection for every GET beyond the tenth
    and throws it away afterwards (a TCP and TLS handshake per part, and a urllib3
    warning each time). A custom adapter is a choice the caller made: it is kept.
    """
    if type(adapter) is not requests.adapters.HTTPAdapter:
        return adapter
    if getattr(adapter, "_pool_maxsize", 0) >= pool_size:
        return adapter
    return requests.adapters.HTTPAdapter(
        pool_connections=getattr(adapter, "_pool_connections", 10),
        pool_maxsize=pool_size,
        max_retries=adapter.max_retries,
        pool_block=getattr(adapter, "_pool_block", False),
    )


def _settle_environment(session: requests.Session, url: str, no_proxy: str | None) -> None:
    """Look up once what requests would read from the environment on every request.

    With ``trust_env`` requests scans ``os.environ`` for proxies and ``no_proxy``
    (twice) and for a CA bundle on each request: about a fifth of the CPU a small
    part costs. The result for this bucket's URL cannot change during a download, so
    it is resolved here with requests' own functions and precedence (environment
    proxies over the session's, ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` over the
    session's ``verify``, a ``.netrc`` entry when no auth is set) and then frozen.
    """
    if not session.trust_env:
        return
    proxies = dict(session.proxies)
    proxies.update(requests.utils.get_environ_proxies(url, no_proxy=no_proxy))
    session.proxies = proxies
    bundle = environment_ca_bundle()
    if bundle:
        session.verify = bundle
    if session.auth is None:
        session.auth = requests.utils.get_netrc_auth(url)
    session.trust_env = False


def _private_session(bucket: oss2.Bucket, key: str, pool_size: int | None) -> Any:
    """A copy of the bucket's ``oss2.Session`` for partdl alone; None to use the bucket's.

    The copy shares the caller's settings, cookies and any custom adapter, and has
    its own pool (:func:`_sized_adapter`) and settled environment
    (:func:`_settle_environment`).
    """
    session = bucket.session
    inner = getattr(session, "session", None)
    make_url = getattr(bucket, "_make_url", None)
    if type(session) is not oss2.Session or not isinstance(inner, requests.Session):
        return None
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or not callable(make_url):
        return None  # a bad task_num is refused with the other options, later
    private = copy.copy(inner)  # requests' own pickled state: a new object, same settings
    private.adapters = type(inner.adapters)()
    for prefix, adapter in inner.adapters.items():
        private.mount(prefix, _sized_adapter(adapter, pool_size))
    # oss2 passes the bucket's proxies with each request; requests reads no_proxy there.
    no_proxy = (getattr(bucket, "proxies", None) or {}).get("no_proxy")
    _settle_environment(private, make_url(bucket.bucket_name, key), no_proxy)
    outer = copy.copy(session)
    outer.session = private
    return outer


def _timeouts(value: object) -> tuple[float | None, float | None] | None:
    """requests' ``timeout`` (one number, or connect and read) as two numbers; None if
    it is anything else."""
    pair = value if isinstance(value, tuple) and len(value) == 2 else (value, value)
    seconds: list[float | None] = []
    for v in pair:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            return None
        seconds.append(None if v is None else float(v))
    return seconds[0], seconds[1]


def _wire_pool(bucket: oss2.Bucket, key: str, pool_size: int | None) -> Pool | None:
    """partdl's own connection pool for the bucket's GETs, or None to send them with oss2.

    Only where the private session would add nothing to a request: no proxy for the
    endpoint, a stock adapter without retries, no session auth, client certificate,
    parameters, cookies or hooks, an auth object oss2 signs with. Anything else the
    caller configured is honoured by sending through oss2 as before.
    """
    outer = bucket.session
    session = getattr(outer, "session", None)
    if type(outer) is not oss2.Session or not isinstance(session, requests.Session):
        return None
    if session.trust_env or not callable(getattr(bucket.auth, "_sign_request", None)):
        return None  # not settled by _private_session, or an auth of another kind
    url = bucket._make_url(bucket.bucket_name, key)
    parts = urlsplit(url)
    proxies = {**session.proxies, **(getattr(bucket, "proxies", None) or {})}
    if parts.scheme not in ("http", "https") or requests.utils.select_proxy(url, proxies):
        return None
    adapter = session.get_adapter(url)
    retries = getattr(getattr(adapter, "max_retries", None), "total", None)
    if type(adapter) is not requests.adapters.HTTPAdapter or retries not in (0, None, False):
        return None
    hooks = any(session.hooks.values())
    if session.auth is not None or session.cert or session.params or session.cookies or hooks:
        return None
    verify = session.verify
    timeouts = _timeouts(bucket.timeout)
    if not isinstance(verify, bool | str) or timeouts is None or parts.hostname is None:
        return None
    connect, read = timeouts
    origin = Origin(parts.scheme, parts.hostname, parts.port, connect, read, verify)
    return Pool(origin, pool_size or oss2.defaults.connection_pool_size)


def _private_bucket(bucket: oss2.Bucket, key: str, pool_size: int | None) -> oss2.Bucket:
    """A shallow copy of the caller's bucket for partdl's requests; theirs is untouched.

    With ``enable_crc`` (oss2's default) every GET builds a CRC adapter, and with it a
    crcmod table in pure Python (about 0.3 ms of CPU per request, holding the GIL),
    for a checksum oss2 never checks on a ranged GET. partdl reads the raw stream and
    checksums it itself, so the copy turns that off. See :func:`_private_session`.
    """
    private = copy.copy(bucket)
    private.enable_crc = False
    session = _private_session(bucket, key, pool_size)
    if session is not None:
        private.session = session
    return private


def refuse_client_side_encryption(bucket: oss2.Bucket) -> None:
    """Ranged reads of a CryptoBucket's object are ciphertext: never write them as the file."""
    if isinstance(bucket, oss2.CryptoBucket):
        raise InvalidArgumentError(
            "oss2.CryptoBucket (client-side encryption) is not supported: partdl would "
            "save the encrypted bytes; download through oss2's own API instead"
        )


class OssBackend:
    def __init__(
        self,
        bucket: oss2.Bucket,
        key: str,
        *,
        version_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        pool_size: int | None = None,
    ) -> None:
        self._bucket = _private_bucket(bucket, key, pool_size)
        self._wire = _wire_pool(self._bucket, key, pool_size)
        self._key = key
        self._version_id = version_id
        self._stall_timeout = stall_timeout
        self._headers = dict(headers or {})
        self._params = {"versionId": version_id} if version_id else None

    @property
    def source(self) -> str:
        return f"oss://{self._bucket.bucket_name}/{self._key}"

    def stat(self) -> ObjectStat:
        try:
            result = self._bucket.head_object(
                self._key, headers=dict(self._headers), params=self._params
            )
        except oss2.exceptions.OssError as exc:
            raise _translate(exc, f"HEAD {self.source}") from exc
        return oss_stat(result.headers, int(result.content_length), self._version_id)

    def read(self, start: int, end: int, stat: ObjectStat) -> Urllib3Body | Response:
        headers = dict(self._headers)
        if stat.etag:
            headers["If-Match"] = stat.etag
        what = f"GET {self.source} bytes {start}-{end - 1}"
        status, found, body = self._get(headers, what, (start, end))
        try:
            check_partial_response(status, found, start, end, stat)
        except PartdlError:
            body.close()
            raise
        return body

    def _get(
        self, headers: dict[str, str], what: str, span: tuple[int, int] | None = None
    ) -> tuple[int, Mapping[str, str], Urllib3Body | Response]:
        """One GET of the object (of ``span``, ``[start, end)``, when given): the answer's
        status and headers and its unread body, through partdl's own client where it
        is used, else through oss2."""
        if self._wire is not None:
            if span is not None:
                headers["Range"] = f"bytes={span[0]}-{span[1] - 1}"
            response = self._send(headers, what)
            return response.status, response.headers, response
        byte_range = (span[0], span[1] - 1) if span is not None else None
        try:
            result = self._bucket.get_object(
                self._key, byte_range=byte_range, headers=headers, params=self._params
            )
        except oss2.exceptions.OssError as exc:
            raise _translate(exc, what) from exc
        except NETWORK_ERRORS as exc:
            raise TransientError(f"{what}: {exc!r}") from exc
        raw: Any = result.resp.response.raw
        length = span[1] - span[0] if span is not None else content_length(result.headers) or 0
        body = Urllib3Body(raw, length, stall_timeout=self._stall_timeout)
        return result.status, result.headers, body

    def _send(self, headers: dict[str, str], what: str) -> Response:
        """One GET through partdl's own pool, signed by the bucket's oss2 auth.

        An error answer becomes partdl's error here, as :func:`_translate` does for
        oss2's; a good one comes back with its body unread, under the stall timeout.
        """
        assert self._wire is not None
        bucket = self._bucket
        request = oss2.http.Request(
            "GET",
            bucket._make_url(bucket.bucket_name, self._key),
            params=dict(self._params or {}),
            headers=headers,
            app_name=getattr(bucket, "app_name", ""),
            region=getattr(bucket, "region", None),
            product=getattr(bucket, "product", "oss"),
            cloudbox_id=getattr(bucket, "cloudbox_id", None),
        )
        bucket.auth._sign_request(request, bucket.bucket_name, self._key)
        target = urlsplit(request.url).path or "/"
        if request.params:
            target += "?" + urlencode(request.params)
        # As requests merges them: the request's headers over the session's, whatever
        # their case, and a None (oss2's way of dropping Accept-Encoding) sends nothing.
        merged = requests.structures.CaseInsensitiveDict(bucket.session.session.headers)
        merged.update(request.headers)
        sent = {name: value for name, value in merged.items() if value is not None}
        response = self._wire.send("GET", target, sent, what)
        if not 200 <= response.status < 300:
            code = response.error_code()
            raise error_class(response.status, code)(
                f"{what}: HTTP {response.status} {code}".rstrip()
            )
        response.stall_after(self._stall_timeout)
        return response

    # -- trees of objects (partdl.batch) -----------------------------------------------

    def for_key(self, key: str) -> OssBackend:
        """The backend for another key of this bucket, sharing this one's connections."""
        sibling = copy.copy(self)
        sibling._key = key
        sibling._version_id = None
        sibling._params = None
        return sibling

    def read_whole(self, etag: str | None) -> tuple[ObjectStat, Urllib3Body | Response]:
        """GET the whole object; its stat comes from the answer's headers, not a HEAD."""
        headers = dict(self._headers)
        if etag:
            headers["If-Match"] = etag
        what = f"GET {self.source}"
        status, found, body = self._get(headers, what)
        size = content_length(found)
        if status != 200 or size is None:
            body.close()
            raise TransientError(f"{what}: expected HTTP 200 with a Content-Length")
        return oss_stat(found, size, self._version_id), body

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Every object under ``prefix`` (ListObjectsV2), one page of 1,000 at a time."""
        payer = {k: v for k, v in self._headers.items() if k.lower() == "x-oss-request-payer"}
        pages = oss2.ObjectIteratorV2(self._bucket, prefix=prefix, max_keys=1000, headers=payer)
        what = f"LIST oss://{self._bucket.bucket_name}/{prefix}"
        try:
            for info in pages:
                if info.is_prefix():
                    continue
                yield ListedObject(
                    key=info.key,
                    size=int(info.size),
                    etag=quoted_etag(info.etag),
                    last_modified=http_date(info.last_modified) if info.last_modified else None,
                )
        except oss2.exceptions.OssError as exc:
            raise _translate(exc, what) from exc
        except NETWORK_ERRORS as exc:
            raise TransientError(f"{what}: {exc!r}") from exc
