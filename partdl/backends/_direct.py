"""What partdl's own store clients share, OSS (:mod:`.oss_direct`) and S3 (:mod:`.s3_direct`).

Both stores answer the same requests the same way: HEAD, ranged and whole GETs with
``If-Match``, and ListObjectsV2 pages of XML. :class:`StoreBucket` holds a bucket's
connections and sends its requests, turning an error answer into partdl's error; its
OSS and S3 subclasses sign them and read their own headers. :class:`DirectBackend` is
the rest, the one :class:`~partdl.backend.Backend` over either. Addressing is each
store's SDK's (see :func:`connect`): OSS as oss2, path style (``/bucket/key``) for an
IP address or ``localhost`` and the bucket's virtual host (``bucket.endpoint``)
otherwise; S3 as botocore, path style at any endpoint given and the virtual host at
AWS's own. An endpoint without a scheme is ``http://``.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import TYPE_CHECKING, ClassVar, NamedTuple
from urllib.parse import quote, unquote, urlencode

from ..errors import InvalidArgumentError, PartdlError, TransientError
from ..listing import ListedObject, http_date, quoted_etag
from ..model import ObjectStat
from ..plan import DEFAULT_STALL_TIMEOUT
from ..urls import split_url
from ._http import check_partial_response, error_class
from ._wire import Headers, Origin, Pool, Response, Sent

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

# oss2's default connect and read timeouts (oss2.defaults.connect_timeout); botocore's
# are the same.
TIMEOUT = 60.0
_PAGE = 1000


def _is_ip_or_localhost(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def connect(
    endpoint: str,
    bucket: str,
    pool_size: int,
    verify: bool | str,
    kind: str,
    *,
    path_style: bool | None = None,
) -> tuple[Pool, bool]:
    """The connection pool to ``bucket`` at ``endpoint``, and whether it is path style
    (``None``: for an IP address or ``localhost`` only)."""
    url = endpoint if "://" in endpoint else f"http://{endpoint}"
    parts = split_url(url, f"the {kind} endpoint {endpoint!r}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"not an {kind} endpoint: {endpoint!r}")
    if not bucket or "/" in bucket:
        raise InvalidArgumentError(f"not a bucket name: {bucket!r}")
    if path_style is None:
        path_style = _is_ip_or_localhost(parts.hostname)
    host = parts.hostname
    if not path_style and not host.startswith(f"{bucket}."):
        host = f"{bucket}.{host}"  # unless the endpoint is the bucket's own host
    origin = Origin(parts.scheme, host, parts.port, TIMEOUT, TIMEOUT, verify)
    return Pool(origin, pool_size), path_style


def target(bucket: str, key: str, path_style: bool) -> str:
    """The request target for ``key`` ("" for the bucket itself), without a query."""
    path = quote(key.encode("utf-8"), safe="/-_.~")
    return f"/{bucket}/{path}" if path_style else f"/{path}"


@dataclass(frozen=True)
class StoreBucket:
    """A bucket at an endpoint, its region, and the connections to it: what OSS's and
    S3's buckets share. Every backend opened on it shares its pool; it pickles without
    its connections."""

    kind: ClassVar[str] = "store"
    """How an error names the store: ``OSS`` or ``S3``."""
    scheme: ClassVar[str]
    """``oss`` or ``s3``: how its objects are named (``s3://bucket/key``)."""
    payer_header: ClassVar[str]
    """The header that says the requester pays, the one kept for a listing."""
    stat_headers: ClassVar[Mapping[str, str]]
    """Sent with the requests whose answer pins the object, a HEAD or a whole GET (S3:
    ask for its checksums); a ranged GET goes without, as through the SDKs."""

    endpoint: str
    name: str
    region: str
    pool_size: int = field(default=10, kw_only=True)
    verify: bool | str = field(default=True, kw_only=True)
    """For https: True (certifi's CAs), False (no check) or a CA bundle's path."""
    user_agent: str = field(default="partdl", kw_only=True)
    pool: Pool = field(init=False, repr=False, compare=False)
    path_style: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pool, path_style = connect(
            self.endpoint,
            self.name,
            self.pool_size,
            self.verify,
            self.kind,
            path_style=self._path_style(),
        )
        object.__setattr__(self, "pool", pool)
        object.__setattr__(self, "path_style", path_style)

    def _path_style(self) -> bool | None:
        """Path style or the virtual host; None: path style for an IP or ``localhost``."""
        return None

    def target(self, key: str) -> str:
        """The request target for ``key`` ("" for the bucket itself), without a query."""
        return target(self.name, key, self.path_style)

    def close(self) -> None:
        """Close the idle connections; a later request opens new ones."""
        self.pool.close()

    def send(
        self,
        method: str,
        key: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        what: str,
    ) -> Response:
        """One signed request; an error answer raises partdl's error for it."""
        return self.answer(self.begin(method, key, params, headers, what), what)

    def begin(
        self,
        method: str,
        key: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        what: str,
    ) -> Sent:
        """Sign and write one request; :meth:`answer` reads what came back."""
        path = self.target(key)
        sent = {"User-Agent": self.user_agent, **headers}
        now = datetime.datetime.now(datetime.UTC)
        sent.update(self._signature(method, key, path, params, sent, now))
        if params:
            path += "?" + urlencode(params, quote_via=quote, safe="-_.~")
        return self.pool.begin(method, path, sent, what)

    @staticmethod
    def answer(request: Sent, what: str) -> Response:
        """The answer to a request :meth:`begin` wrote; an error answer raises partdl's
        error for it."""
        response = request.answer()
        if not 200 <= response.status < 300:
            code = response.error_code()  # a HEAD's answer has no body: ""
            message = f"{what}: HTTP {response.status} {code}".rstrip()
            # S3 names a bucket's region when asked in another (301, or 400 for V4's scope).
            region = response.headers.get("x-amz-bucket-region")
            if region and response.status in (301, 400):
                raise InvalidArgumentError(
                    f"{message}: the bucket is in {region} (--region {region})"
                )
            raise error_class(response.status, code)(message)
        return response

    def _signature(
        self,
        method: str,
        key: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        now: datetime.datetime,
    ) -> dict[str, str]:
        """The headers that sign a request for ``key`` sent to ``path`` at ``now``."""
        raise NotImplementedError

    def stat_of(self, headers: Headers, version_id: str | None) -> ObjectStat | None:
        """What a HEAD's or a whole GET's answer pins; None without a Content-Length."""
        raise NotImplementedError


class DirectBackend:
    def __init__(
        self,
        bucket: StoreBucket,
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
        return f"{self._bucket.scheme}://{self._bucket.name}/{self._key}"

    def _params(self) -> dict[str, str]:
        return {"versionId": self._version_id} if self._version_id else {}

    def stat(self) -> ObjectStat:
        what = f"HEAD {self.source}"
        headers = {**self._bucket.stat_headers, **self._headers}
        response = self._bucket.send("HEAD", self._key, self._params(), headers, what)
        response.read_all()
        stat = self._bucket.stat_of(response.headers, self._version_id)
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

    def for_key(self, key: str) -> DirectBackend:
        """The backend for another key of this bucket, sharing this one's connections."""
        return type(self)(
            self._bucket, key, headers=self._headers, stall_timeout=self._stall_timeout
        )

    def read_whole(self, etag: str | None) -> tuple[ObjectStat, Response]:
        """GET the whole object; its stat comes from the answer's headers, not a HEAD."""
        return self.begin_whole(etag).answer()

    def begin_whole(self, etag: str | None) -> WholeGet:
        """Write the GET of :meth:`read_whole` and return before its answer: one thread
        keeps several small objects' GETs in flight (``partdl.execute``)."""
        headers = {**self._bucket.stat_headers, **self._headers}
        if etag:
            headers["If-Match"] = etag
        what = f"GET {self.source}"
        request = self._bucket.begin("GET", self._key, self._params(), headers, what)
        return WholeGet(self, request, what)

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Every object under ``prefix`` (ListObjectsV2, keys URL-encoded on the wire so
        that any byte survives XML), one page of 1,000 at a time."""
        payer_header = self._bucket.payer_header
        payer = {k: v for k, v in self._headers.items() if k.lower() == payer_header}
        what = f"LIST {self._bucket.scheme}://{self._bucket.name}/{prefix}"
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


class WholeGet:
    """The whole-object GET of one :class:`DirectBackend`, written, its answer not read."""

    def __init__(self, backend: DirectBackend, request: Sent, what: str) -> None:
        self._backend = backend
        self._request = request
        self._what = what

    def fileno(self) -> int:
        return self._request.fileno()

    def answer(self) -> tuple[ObjectStat, Response]:
        backend, what = self._backend, self._what
        response = backend._bucket.answer(self._request, what)
        response.stall_after(backend._stall_timeout)
        stat = backend._bucket.stat_of(response.headers, backend._version_id)
        if response.status != 200 or stat is None:
            response.close()
            raise TransientError(f"{what}: expected HTTP 200 with a Content-Length")
        return stat, response

    def close(self) -> None:
        self._request.close()


class _Page(NamedTuple):
    objects: list[ListedObject]
    next_token: str

    @classmethod
    def parse(cls, body: bytes, what: str) -> _Page:
        """One page of a listing. S3's XML is in a default namespace, OSS's in none:
        the root's is every element's, and naming it exactly keeps each lookup in C
        (a ``{*}`` wildcard goes through ElementPath's Python, 12x slower a page)."""
        # Only a listing parses XML: a single object's run does not load it (~5 ms).
        from xml.etree import ElementTree

        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as exc:
            raise TransientError(f"{what}: the listing is not XML ({exc})") from exc
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        encoded = (root.findtext(ns + "EncodingType") or "").lower() == "url"

        def text(node: Element, tag: str) -> str:
            value = node.findtext(ns + tag) or ""
            return unquote(value) if encoded and tag in ("Key", "NextContinuationToken") else value

        objects = []
        for item in root.iterfind(ns + "Contents"):
            size = item.findtext(ns + "Size") or ""
            if not size.isdigit():
                raise TransientError(f"{what}: a listed object has no size")
            modified = item.findtext(ns + "LastModified")
            objects.append(
                ListedObject(
                    key=text(item, "Key"),
                    size=int(size),
                    etag=quoted_etag(item.findtext(ns + "ETag")),
                    last_modified=_iso_to_http(modified) if modified else None,
                )
            )
        truncated = (root.findtext(ns + "IsTruncated") or "").lower() == "true"
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
