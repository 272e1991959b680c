"""Alibaba Cloud OSS with no SDK: partdl's own HTTP client, signing V4 itself.

This is how the ``partdl`` command reaches oss:// when nothing it was given needs
oss2 (see :func:`partdl.cli.sources.oss_bucket`): importing oss2 costs about half a
second of start-up, a third of a whole 1 GiB download here. HEAD, the ranged and the
whole GETs and the listing (ListObjectsV2) go through :mod:`._wire`'s pooled
connections, signed by :mod:`._oss_sign`. Addressing follows oss2: path style
(``/bucket/key``) for an IP address or ``localhost``, the bucket's virtual host
(``bucket.endpoint``) otherwise; an endpoint without a scheme is ``http://``.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit
from xml.etree import ElementTree

from ..errors import InvalidArgumentError, PartdlError, TransientError
from ..listing import ListedObject, http_date, quoted_etag
from ..model import ObjectStat
from ..plan import DEFAULT_STALL_TIMEOUT
from ._http import check_partial_response, content_length, error_class, oss_stat
from ._oss_sign import Keys, sign
from ._wire import Headers, Origin, Pool, Response

# oss2's default connect and read timeouts (oss2.defaults.connect_timeout).
_TIMEOUT = 60.0
_PAGE = 1000


class CredentialsProvider(Protocol):
    """What oss2's and alibabacloud-credentials' providers offer: credentials now."""

    def get_credentials(self) -> Any: ...


def _is_ip_or_localhost(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class OssDirectBucket:
    """One OSS bucket, its region and credentials, and the connections to it.

    Every backend opened on it shares its pool; it pickles without its connections.
    """

    endpoint: str
    name: str
    region: str
    credentials: CredentialsProvider = field(repr=False)
    pool_size: int = 10
    verify: bool | str = True
    """For https: True (certifi's CAs), False (no check) or a CA bundle's path."""
    user_agent: str = "partdl"
    pool: Pool = field(init=False, repr=False, compare=False)
    path_style: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        endpoint = self.endpoint if "://" in self.endpoint else f"http://{self.endpoint}"
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(f"not an OSS endpoint: {self.endpoint!r}")
        if not self.name or "/" in self.name:
            raise InvalidArgumentError(f"not a bucket name: {self.name!r}")
        path_style = _is_ip_or_localhost(parts.hostname)
        host = parts.hostname
        if not path_style and not host.startswith(f"{self.name}."):
            host = f"{self.name}.{host}"  # unless the endpoint is the bucket's own host
        origin = Origin(parts.scheme, host, parts.port, _TIMEOUT, _TIMEOUT, self.verify)
        object.__setattr__(self, "pool", Pool(origin, self.pool_size))
        object.__setattr__(self, "path_style", path_style)

    def target(self, key: str) -> str:
        """The request target for ``key`` ("" for the bucket itself), without a query."""
        path = quote(key.encode("utf-8"), safe="/-_.~")
        return f"/{self.name}/{path}" if self.path_style else f"/{path}"

    def keys(self) -> Keys:
        found = self.credentials.get_credentials()
        return Keys(
            found.get_access_key_id(),
            found.get_access_key_secret(),
            found.get_security_token() or "",
        )

    def send(
        self,
        method: str,
        key: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        what: str,
    ) -> Response:
        """One signed request; an error answer raises partdl's error for it."""
        now = datetime.datetime.now(datetime.UTC)
        sent = {"User-Agent": self.user_agent, **headers}
        sent.update(sign(method, (self.name, key), params, sent, self.keys(), self.region, now))
        target = self.target(key)
        if params:
            target += "?" + urlencode(params, quote_via=quote, safe="-_.~")
        response = self.pool.send(method, target, sent, what)
        if not 200 <= response.status < 300:
            code = response.error_code()  # a HEAD's answer has no body: ""
            raise error_class(response.status, code)(
                f"{what}: HTTP {response.status} {code}".rstrip()
            )
        return response


def _stat(headers: Headers, version_id: str | None) -> ObjectStat | None:
    size = content_length(headers)
    return None if size is None else oss_stat(headers, size, version_id)


class OssDirectBackend:
    def __init__(
        self,
        bucket: OssDirectBucket,
        key: str,
        *,
        version_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
    ) -> None:
        self._bucket = bucket
        self._key = key
        self._version_id = version_id
        self._headers = dict(headers or {})
        self._stall_timeout = stall_timeout

    @property
    def source(self) -> str:
        return f"oss://{self._bucket.name}/{self._key}"

    def _params(self) -> dict[str, str]:
        return {"versionId": self._version_id} if self._version_id else {}

    def stat(self) -> ObjectStat:
        what = f"HEAD {self.source}"
        response = self._bucket.send("HEAD", self._key, self._params(), self._headers, what)
        response.read_all()
        stat = _stat(response.headers, self._version_id)
        if stat is None:
            raise TransientError(f"{what}: the answer has no Content-Length")
        return stat

    def _get(self, headers: dict[str, str], what: str) -> Response:
        response = self._bucket.send("GET", self._key, self._params(), headers, what)
        response.stall_after(self._stall_timeout)
        return response

    def read(self, start: int, end: int, stat: ObjectStat) -> Response:
        headers = {**self._headers, "Range": f"bytes={start}-{end - 1}"}
        if stat.etag:
            headers["If-Match"] = stat.etag
        response = self._get(headers, f"GET {self.source} bytes {start}-{end - 1}")
        try:
            check_partial_response(response.status, response.headers, start, end, stat)
        except PartdlError:
            response.close()
            raise
        return response

    # -- trees of objects (partdl.batch) -----------------------------------------------

    def for_key(self, key: str) -> OssDirectBackend:
        """The backend for another key of this bucket, sharing this one's connections."""
        return OssDirectBackend(
            self._bucket, key, headers=self._headers, stall_timeout=self._stall_timeout
        )

    def read_whole(self, etag: str | None) -> tuple[ObjectStat, Response]:
        """GET the whole object; its stat comes from the answer's headers, not a HEAD."""
        headers = dict(self._headers)
        if etag:
            headers["If-Match"] = etag
        what = f"GET {self.source}"
        response = self._get(headers, what)
        stat = _stat(response.headers, self._version_id)
        if response.status != 200 or stat is None:
            response.close()
            raise TransientError(f"{what}: expected HTTP 200 with a Content-Length")
        return stat, response

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Every object under ``prefix`` (ListObjectsV2, keys URL-encoded on the wire so
        that any byte survives XML), one page of 1,000 at a time."""
        payer = {k: v for k, v in self._headers.items() if k.lower() == "x-oss-request-payer"}
        what = f"LIST oss://{self._bucket.name}/{prefix}"
        token = ""
        while True:
            params = {
                "list-type": "2",
                "prefix": prefix,
                "max-keys": str(_PAGE),
                "encoding-type": "url",
            }
            if token:
                params["continuation-token"] = token
            response = self._bucket.send("GET", "", params, payer, what)
            page = _Page.parse(response.read_all(), what)
            yield from page.objects
            if not page.next_token:
                return
            token = page.next_token


@dataclass(frozen=True, slots=True)
class _Page:
    objects: list[ListedObject]
    next_token: str

    @classmethod
    def parse(cls, body: bytes, what: str) -> _Page:
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as exc:
            raise TransientError(f"{what}: the listing is not XML ({exc})") from exc
        encoded = (root.findtext("EncodingType") or "").lower() == "url"

        def text(node: ElementTree.Element, tag: str) -> str:
            value = node.findtext(tag) or ""
            return unquote(value) if encoded and tag in ("Key", "NextContinuationToken") else value

        objects = []
        for item in root.iterfind("Contents"):
            size = item.findtext("Size") or ""
            if not size.isdigit():
                raise TransientError(f"{what}: a listed object has no size")
            modified = item.findtext("LastModified")
            objects.append(
                ListedObject(
                    key=text(item, "Key"),
                    size=int(size),
                    etag=quoted_etag(item.findtext("ETag")),
                    last_modified=_iso_to_http(modified) if modified else None,
                )
            )
        truncated = (root.findtext("IsTruncated") or "").lower() == "true"
        token = text(root, "NextContinuationToken") if truncated else ""
        if truncated and not token:
            raise TransientError(f"{what}: a truncated listing with no continuation token")
        return cls(objects, token)


@functools.lru_cache(maxsize=1024)  # a listing's dates repeat (see listing.mtime_ns)
def _iso_to_http(iso: str) -> str | None:
    """``2012-02-24T08:42:32.000Z`` as an HTTP date, the form ObjectStat keeps."""
    try:
        return http_date(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")))
    except ValueError:
        return None
