"""What SRC names, where it lands, and the SDK bucket that reaches it.

``oss://BUCKET/KEY`` and ``s3://BUCKET/KEY`` become buckets built from
:class:`StoreConfig` (V4 signing, region and credentials through
:mod:`partdl.oss_setup` for OSS; a boto3 session for S3); ``http(s)://`` URLs need
no bucket. Nothing here knows the command line's flags.
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
import shlex
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple, TextIO
from urllib.parse import unquote, urlsplit

from ..errors import InvalidArgumentError, UnsafeKeyError
from ..keys import key_path
from ..urls import split_url


class Scheme(enum.Enum):
    OSS = "oss"
    S3 = "s3"
    HTTP = "http"


class Source(NamedTuple):
    """What SRC names: a bucket and key (or prefix), or a URL (``bucket``, ``key`` empty)."""

    scheme: Scheme
    url: str
    bucket: str = ""
    key: str = ""

    @property
    def display(self) -> str:
        """SRC for messages: a URL loses its credentials and its (signed) query string."""
        if self.scheme is not Scheme.HTTP:
            return self.url
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}{'?...' if parts.query else ''}"

    @property
    def name(self) -> str:
        """The last segment of the key or of the URL's path (unchecked)."""
        if self.scheme is Scheme.HTTP:
            return unquote(urlsplit(self.url).path.rpartition("/")[2])
        return self.key.rpartition("/")[2]


def parse_source(text: str) -> Source:
    """One object: ``oss://BUCKET/KEY``, ``s3://BUCKET/KEY`` or an http(s):// URL."""
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if separator and scheme in ("http", "https"):
        if not split_url(text, "SRC").hostname:
            raise InvalidArgumentError("SRC: the URL has no host")
        return Source(Scheme.HTTP, text)
    if separator and scheme in ("oss", "s3"):
        # Keys may hold '?', '#' and '%': everything after the bucket is the key, verbatim.
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise InvalidArgumentError(f"SRC must look like {scheme}://BUCKET/KEY, got {text!r}")
        return Source(Scheme(scheme), text, bucket, key)
    raise InvalidArgumentError(
        "SRC must be oss://BUCKET/KEY, s3://BUCKET/KEY or an http(s):// URL"
        + (f", not {scheme}://..." if separator else "")
    )


def parse_prefix(text: str) -> Source:
    """``oss://BUCKET[/PREFIX]`` or ``s3://BUCKET[/PREFIX]``; the prefix may be empty."""
    scheme, separator, rest = text.partition("://")
    if not separator or scheme.lower() not in ("oss", "s3"):
        raise InvalidArgumentError(
            f"--recursive takes oss://BUCKET/PREFIX or s3://BUCKET/PREFIX, not {text!r}"
        )
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidArgumentError(f"SRC has no bucket: {text!r}")
    return Source(Scheme(scheme.lower()), text, bucket, prefix)


def safe_name(name: str) -> str:
    """A single path component that stays inside the directory it is joined to."""
    separators = {"/", "\0", os.sep} | ({os.altsep} if os.altsep else set())
    if name in ("", ".", "..") or any(s in name for s in separators):
        raise InvalidArgumentError(
            f"cannot name a file {name!r} from SRC; give DEST as a file path instead"
        )
    return name


def resolve_destination(dest: str, source: Source) -> str:
    """DEST itself, or DEST/<last segment of SRC> when DEST is an existing directory."""
    if dest == "-":
        raise InvalidArgumentError(
            "DEST '-' (standard output) is not supported: partdl writes a file; "
            "write ./- for a file named '-'"
        )
    if os.path.isdir(dest):
        return os.path.join(dest, safe_name(source.name))
    if dest.endswith(("/", os.sep)):
        raise InvalidArgumentError(f"directory {dest} does not exist")
    return dest


# -- buckets ------------------------------------------------------------------------------


class StoreConfig(NamedTuple):
    """Where oss:// and s3:// buckets are and how to sign for them (``None``: the
    environment decides), and how many connections each bucket should pool."""

    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None
    sign_version: str | None = None
    pool_size: int = 8


def require(module: str, extra: str, what: str | None = None) -> Any:
    """``module``, or a clear error naming the extra that installs it."""
    what = what or f"{extra}:// sources"
    try:
        return __import__(module)
    except ImportError:
        raise InvalidArgumentError(
            f"{module} is not installed (for {what}): pip install 'partdl[{extra}]'"
        ) from None


def oss_bucket(source: Source, config: StoreConfig) -> Any:
    """A bucket signing V4 for its region (see :mod:`partdl.oss_setup`): partdl's own
    client where nothing needs oss2 (:func:`direct_oss_bucket`), else an oss2 bucket."""
    from ..oss_setup import credentials_provider, locate

    v4 = config.sign_version != "1"
    location = locate(config.region, config.endpoint, os.environ, v4=v4)
    provider = credentials_provider(os.environ, config.profile)
    if v4 and location.region is not None and not _proxied(location.endpoint):
        return direct_oss_bucket(source, config, location.endpoint, location.region, provider)
    oss2 = require("oss2", "oss", "oss:// behind a proxy or with --sign-version 1")
    auth = oss2.ProviderAuthV4(provider) if v4 else oss2.ProviderAuth(provider)
    # One pooled connection per worker, so no worker waits for or discards a socket.
    session = oss2.Session(pool_size=max(10, config.pool_size))
    try:
        return oss2.Bucket(
            auth, location.endpoint, source.bucket, session=session, region=location.region
        )
    except oss2.exceptions.ClientError as exc:
        raise InvalidArgumentError(f"{source.display}: {exc.body or exc}") from exc


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``no_proxy`` surely exempts ``host``: ``*``, the host or a domain it is
    in (with or without a leading dot, optionally ``:port``), or a CIDR block of an IP."""
    import ipaddress

    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        name, _, entry_port = entry.rpartition(":") if "]" not in entry else (entry, "", "")
        if not name or not entry_port.isdigit():
            name, entry_port = entry, ""
        if entry_port and int(entry_port) != port:
            continue
        name = name.strip("[]").lstrip(".")
        if entry == "*" or host == name or (name and host.endswith("." + name)):
            return True
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                return True
    return False


def _proxied(endpoint: str) -> bool:
    """Whether requests (and so oss2) might send requests to ``endpoint`` through a
    proxy named by the environment; when unsure, yes (oss2 is then used)."""
    url = endpoint if "://" in endpoint else f"http://{endpoint}"
    parts = split_url(url, f"the endpoint {endpoint!r}")
    # As urllib reads them: a lowercase variable wins over its uppercase twin.
    found: dict[str, str] = {}
    for name, value in os.environ.items():
        lowered = name.lower()
        if lowered.endswith("_proxy") and (name == lowered or lowered not in found):
            found[lowered] = value
    if not (found.get(f"{parts.scheme}_proxy") or found.get("all_proxy")):
        return False
    host = (parts.hostname or "").lower()
    return not _bypassed(host, parts.port, found.get("no_proxy", ""))


def direct_oss_bucket(
    source: Source, config: StoreConfig, endpoint: str, region: str, provider: Any
) -> Any:
    """partdl's own OSS client (:mod:`partdl.backends.oss_direct`), which spares the
    half second ``import oss2`` takes. Used where it behaves as oss2 would: not behind
    a proxy, which only requests speaks (see :func:`_proxied`)."""
    from .. import __version__
    from ..backends._wire import environment_ca_bundle
    from ..backends.oss_direct import OssDirectBucket

    # What requests, and so oss2, trusts: a bundle named by the environment, else certifi.
    bundle = environment_ca_bundle()
    return OssDirectBucket(
        endpoint,
        source.bucket,
        region,
        provider,
        pool_size=max(10, config.pool_size),
        verify=bundle or True,
        user_agent=f"partdl/{__version__}",
    )


def s3_bucket(source: Source, config: StoreConfig) -> Any:
    """partdl's own S3 client where it behaves as boto3 would (:func:`direct_s3_bucket`),
    else a :class:`partdl.S3Bucket` on a client of boto3's session (``--profile``,
    ``--region``)."""
    direct = direct_s3_bucket(source, config)
    if direct is not None:
        return direct
    boto3 = require("boto3", "s3")
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    from ..backends.s3 import S3Bucket

    endpoint = (
        config.endpoint
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    client_config = Config(max_pool_connections=max(10, config.pool_size))
    try:
        session = boto3.session.Session(profile_name=config.profile, region_name=config.region)
        if session.get_credentials() is None:
            raise InvalidArgumentError(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or configure a profile (AWS_PROFILE)"
            )
        client = session.client("s3", endpoint_url=endpoint or None, config=client_config)
    except (BotoCoreError, ValueError) as exc:  # a missing profile, a malformed endpoint...
        raise InvalidArgumentError(f"AWS configuration: {exc}") from exc
    return S3Bucket(client, source.bucket)


# What `aws configure` writes beside the region that changes nothing for a download.
_CLI_ONLY = frozenset(
    {"region", "output", "cli_pager", "cli_history", "cli_auto_prompt", "cli_timestamp_format"}
)


def _default_profile(env: Mapping[str, str]) -> tuple[bool, str | None]:
    """Whether the AWS config file's default profile holds nothing but a region and the
    AWS CLI's own settings (anything else is boto3's to honour), and that region."""
    path = env.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        return True, None
    except (OSError, UnicodeDecodeError):
        return False, None
    import configparser

    parser = configparser.ConfigParser(interpolation=None, default_section="\0")
    try:
        parser.read_string(text)
    except configparser.Error:
        return False, None
    if not parser.has_section("default"):
        return True, None  # only other profiles, which are not used
    options = dict(parser.items("default"))
    return set(options) <= _CLI_ONLY, options.get("region") or None


def direct_s3_bucket(source: Source, config: StoreConfig) -> Any | None:
    """partdl's own S3 client (:mod:`partdl.backends.s3_direct`), which spares the 0.6 s
    a boto3 client takes to make and botocore's 2.3 ms of CPU a request; None where
    only botocore knows what to do.

    It is used when the keys are plain ones from the environment and the endpoint is
    known (``--endpoint``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, else AWS's
    own for a known region), with no profile, nothing but a region in the AWS config
    file's default profile and no proxy in the way: what boto3 would do then is
    exactly this.
    """
    env = os.environ
    access_key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not (access_key and secret) or config.profile or env.get("AWS_PROFILE"):
        return None
    plain, configured_region = _default_profile(env)
    if not plain:
        return None  # endpoints, addressing, roles...: boto3 reads them
    from ..backends import s3_direct

    region = (
        config.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or configured_region
    )
    endpoint = config.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    virtual_host = not endpoint
    if not endpoint:
        endpoint = s3_direct.aws_endpoint(source.bucket, region or "")
    if not endpoint:
        return None
    from .. import __version__
    from ..backends._signing import Keys

    keys = Keys(access_key, secret, env.get("AWS_SESSION_TOKEN") or "")
    try:
        if _proxied(endpoint):
            return None
        return s3_direct.S3DirectBucket(
            endpoint,
            source.bucket,
            region or "us-east-1",  # botocore's region for an endpoint given without one
            keys,
            pool_size=max(10, config.pool_size),
            verify=env.get("AWS_CA_BUNDLE") or True,
            user_agent=f"partdl/{__version__}",
            virtual_host=virtual_host,
        )
    except InvalidArgumentError as exc:  # as boto3's own complaints are shown
        raise InvalidArgumentError(f"AWS configuration: {exc}") from exc


class Buckets(contextlib.AbstractContextManager["Buckets"]):
    """One SDK bucket per (scheme, name), so the objects of one bucket share its pool.

    On exit the connections of partdl's own clients are closed (the SDKs' buckets keep
    theirs, as their owners do)."""

    def __init__(self, config: StoreConfig) -> None:
        self._config = config
        self._made: dict[tuple[Scheme, str], Any] = {}

    def __exit__(self, *exc_info: object) -> None:
        from ..backends._direct import StoreBucket

        for bucket in self._made.values():
            if isinstance(bucket, StoreBucket):
                bucket.close()

    def get(self, source: Source) -> Any:
        if source.scheme is Scheme.HTTP:
            raise InvalidArgumentError(f"{source.display} is a URL, not a bucket")
        name = (source.scheme, source.bucket)
        if name not in self._made:
            make = oss_bucket if source.scheme is Scheme.OSS else s3_bucket
            self._made[name] = make(source, self._config)
        return self._made[name]


# -- input files --------------------------------------------------------------------------


def read_input_file(path: str, stdin: TextIO, buckets: Buckets) -> list[tuple[Any, str, str]]:
    """The items of an input file: ``(bucket, key, DEST)``, or ``(None, URL, DEST)``.

    Every line is checked (and every bucket built) before the first request.
    """
    items = []
    with contextlib.ExitStack() as stack:
        # Bytes that are not UTF-8 decode to lone surrogates, so that the line they are
        # on is named (a decoding error would name none) and refused.
        if path == "-":
            lines: TextIO = stdin
            if isinstance(stdin, io.TextIOWrapper):  # as a file is read, whatever the locale
                stdin.reconfigure(encoding="utf-8", errors="surrogateescape")
        else:
            try:
                lines = stack.enter_context(open(path, encoding="utf-8", errors="surrogateescape"))
            except OSError as exc:
                raise InvalidArgumentError(f"cannot read the input file {path}: {exc}") from exc
        for number, line in enumerate(lines, 1):
            where = f"{'stdin' if path == '-' else path}:{number}"
            # A Windows editor's byte order mark, in a file or on stdin, is not part of SRC.
            text = line.removeprefix(_BOM) if number == 1 else line
            try:
                _check_utf8(text)
                item = _input_line(text, buckets)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"{where}: {exc}") from exc
            if item is not None:
                items.append(item)
    return items


def _check_utf8(line: str) -> None:
    # Keys and the tree's state are UTF-8: a DEST that is not could not be recorded.
    if not line.isascii():
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                "the line is not UTF-8 text (input files are read as UTF-8)"
            ) from None


_BOM = "\ufeff"
_BLANKS = " \t\r\n"  # shlex's whitespace: what separates words


def comment_start(line: str) -> int:
    """Where the comment of ``line`` starts (``len(line)`` if it has none).

    As in a POSIX shell, ``#`` starts a comment only at the start of a word and
    outside quotes: ``v#2`` and ``"#x"`` and ``\\#x`` are words, ``a #b`` is ``a``.
    (``shlex``'s own ``comments=True`` cuts at any ``#``, inside a key too.)
    """
    quote = ""  # the quote we are inside, if any
    word_start = True  # at the line's start or after unquoted whitespace
    chars = enumerate(line)
    for index, char in chars:
        if quote == "'":  # nothing is special inside '...' but its end
            if char == "'":
                quote = ""
        elif char == "\\":  # outside quotes or inside "...": the next character is taken
            next(chars, None)  # as is, so it can neither end the quote nor start a comment
        elif quote == '"':
            if char == '"':
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and word_start:
            return index
        word_start = not quote and char in _BLANKS
    return len(line)


def split_line(line: str) -> list[str]:
    """The words of one input-file line, split as a shell would, without its comment."""
    try:
        return shlex.split(line[: comment_start(line)])
    except ValueError as exc:
        raise InvalidArgumentError(str(exc)) from exc


def check_dest(dest: str) -> None:
    """Refuse a DEST that no directory can hold (``/etc/x``, ``../x``, ``.partdl/x``...),
    as the tree would refuse it, but before any request and naming it as DEST.

    Length limits depend on the file system: those are left to the tree, per object.
    """
    try:
        key_path(dest, name_max=sys.maxsize, path_max=sys.maxsize, label="DEST")
    except UnsafeKeyError as exc:
        raise InvalidArgumentError(str(exc)) from None


def _input_line(line: str, buckets: Buckets) -> tuple[Any, str, str] | None:
    fields = split_line(line)
    if not fields:
        return None
    if len(fields) > 2:
        raise InvalidArgumentError(
            f"expected SRC [DEST], got {len(fields)} fields (quote names with spaces)"
        )
    source = parse_source(fields[0])
    dest = fields[1] if len(fields) == 2 else ""
    if dest == "" or dest.endswith("/"):
        dest += safe_name(source.name)
    check_dest(dest)
    if source.scheme is Scheme.HTTP:
        return (None, source.url, dest)
    return (buckets.get(source), source.key, dest)
