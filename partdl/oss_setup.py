"""Where the ``partdl`` command's oss:// settings come from: region, endpoint, credentials.

OSS refuses V1 signatures from accounts created since 2025-03 and for buckets created
since 2025-09, so the command signs V4, which needs the bucket's region. The rules:

* region: ``--region``, else ``OSS_REGION``, else read from a standard endpoint
  (``oss-cn-hangzhou.aliyuncs.com``, ``oss-cn-hangzhou-internal.aliyuncs.com``,
  ``cn-hangzhou.oss.aliyuncs.com``, with or without a scheme or a bucket in front);
* endpoint: ``--endpoint``, else ``OSS_ENDPOINT``, else the region's public endpoint
  ``https://oss-<region>.aliyuncs.com``;
* credentials: ``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET`` (+ ``OSS_SESSION_TOKEN``),
  else ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``
  (+ ``ALIBABA_CLOUD_SECURITY_TOKEN``), else the rest of the Alibaba Cloud default
  chain through ``alibabacloud-credentials``: OIDC role (``ALIBABA_CLOUD_ROLE_ARN``,
  ``ALIBABA_CLOUD_OIDC_PROVIDER_ARN``, ``ALIBABA_CLOUD_OIDC_TOKEN_FILE``), the CLI's
  ``~/.aliyun/config.json``, the credentials file (``ALIBABA_CLOUD_CREDENTIALS_FILE``,
  default ``~/.alibabacloud/credentials.ini``; profile ``ALIBABA_CLOUD_PROFILE``), the
  ECS RAM role (unless ``ALIBABA_CLOUD_ECS_METADATA_DISABLED=true``) and
  ``ALIBABA_CLOUD_CREDENTIALS_URI``. That package is imported only when no credential
  variable is set: importing it costs about 0.3 s of start-up.

Nothing here sends a request to OSS; everything that can be wrong is found first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from .errors import InvalidArgumentError
from .urls import split_url

# oss-<region>[-internal].aliyuncs.com, as the endpoint or under a bucket's name.
# Finance regions' endpoints add "-pub" (oss-cn-shanghai-finance-1-pub.aliyuncs.com).
_CLASSIC = re.compile(r"(?:^|\.)oss-([a-z0-9-]+?)(?:-pub)?(?:-internal)?\.aliyuncs\.com$")
# <region>.oss.aliyuncs.com: the SDK V2's dual-stack form.
_DUALSTACK = re.compile(r"(?:^|\.)([a-z]{2}-[a-z0-9-]+)\.oss\.aliyuncs\.com$")
# Global endpoints that name no region (transfer acceleration and the like).
_REGIONLESS = re.compile(r"accelerate(?:-overseas)?|rg-[a-z0-9-]+")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")

REGION_HINT = "pass --region or set OSS_REGION (the bucket's region, e.g. cn-hangzhou)"


def region_of(endpoint: str) -> str | None:
    """The region a standard OSS endpoint names, or None (an IP, a CNAME, acceleration)."""
    url = endpoint if "://" in endpoint else f"//{endpoint}"
    host = split_url(url, f"the endpoint {endpoint!r}").hostname or ""
    host = host.lower()
    match = _CLASSIC.search(host) or _DUALSTACK.search(host)
    if match is None or _REGIONLESS.fullmatch(match.group(1)):
        return None
    return match.group(1)


def public_endpoint(region: str) -> str:
    return f"https://oss-{region}.aliyuncs.com"


def check_region(region: str) -> str:
    if not _REGION.fullmatch(region):
        raise InvalidArgumentError(f"{region!r} is not an OSS region such as cn-hangzhou")
    if region.startswith("oss-"):
        # Copied from an endpoint (oss-cn-hangzhou.aliyuncs.com): the region has no "oss-".
        raise InvalidArgumentError(
            f"{region!r} is not an OSS region: the region is {region[4:]!r}, without "
            "the endpoint's 'oss-'"
        )
    return region


class OssLocation(NamedTuple):
    """Where requests go and what V4 signs them for (``region`` None only for V1)."""

    endpoint: str
    region: str | None


def locate(
    region: str | None, endpoint: str | None, env: Mapping[str, str], *, v4: bool = True
) -> OssLocation:
    """Apply the region and endpoint rules to the flags and the environment."""
    endpoint = endpoint or env.get("OSS_ENDPOINT") or None
    region = region or env.get("OSS_REGION") or (region_of(endpoint) if endpoint else None)
    if region is not None:
        region = check_region(region)
    if endpoint is None and region is None:
        raise InvalidArgumentError(
            "oss:// needs the bucket's region or an endpoint: --region or OSS_REGION, "
            "--endpoint or OSS_ENDPOINT"
        )
    if region is None and v4:
        raise InvalidArgumentError(
            f"oss:// signs V4, which needs the region: {REGION_HINT}; it is read only "
            f"from standard endpoints such as oss-cn-hangzhou.aliyuncs.com, not {endpoint}"
        )
    return OssLocation(endpoint or public_endpoint(str(region)), region)


class OssKeys(NamedTuple):
    """Keys from environment variables, in the shape oss2's providers hand out."""

    access_key_id: str
    access_key_secret: str = ""
    security_token: str = ""

    def __repr__(self) -> str:  # a secret: never in a log or a traceback
        return f"OssKeys(access_key_id={self.access_key_id!r}, ...)"

    # oss2's auth classes ask their provider for an object with these getters.
    def get_credentials(self) -> OssKeys:
        return self

    def get_access_key_id(self) -> str:
        return self.access_key_id

    def get_access_key_secret(self) -> str:
        return self.access_key_secret

    def get_security_token(self) -> str:
        return self.security_token


# (key id, secret, token) variables, in the order they are looked at.
KEY_VARIABLES = (
    ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"),
    (
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
    ),
)
_LOOKED_FOR = (
    "OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET (+ OSS_SESSION_TOKEN), "
    "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET "
    "(+ ALIBABA_CLOUD_SECURITY_TOKEN)"
)


def keys_from(env: Mapping[str, str]) -> OssKeys | None:
    """The first complete pair of key variables; half a pair is an error, not skipped."""
    for id_name, secret_name, token_name in KEY_VARIABLES:
        key_id, secret = env.get(id_name), env.get(secret_name)
        if key_id and secret:
            return OssKeys(key_id.strip(), secret.strip(), env.get(token_name) or "")
        if key_id or secret:
            missing = secret_name if key_id else id_name
            present = id_name if key_id else secret_name
            raise InvalidArgumentError(f"{present} is set but {missing} is not")
    return None


def credentials_provider(env: Mapping[str, str], profile: str | None = None) -> Any:
    """What signs oss:// requests: the keys in ``env``, else the default chain.

    With ``profile`` only that profile of the Alibaba Cloud CLI's config or of the
    credentials file is used. The chain is asked once here, so a missing credential
    is reported before any request, naming what was looked for.
    """
    if profile is None:
        keys = keys_from(env)
        if keys is not None:
            return keys
    try:
        from alibabacloud_credentials.exceptions import CredentialException
    except ImportError:
        if profile is not None:
            raise InvalidArgumentError(
                "--profile for oss:// needs alibabacloud-credentials: pip install 'partdl[oss]'"
            ) from None
        raise InvalidArgumentError(
            f"no OSS credentials: set {_LOOKED_FOR} (profiles, RAM roles and OIDC need "
            "alibabacloud-credentials: pip install 'partdl[oss]')"
        ) from None
    provider = _chain(profile)
    try:
        provider.get_credentials()
    except (CredentialException, OSError, ValueError) as exc:
        if profile is not None:
            raise InvalidArgumentError(
                f"no OSS credentials in profile {profile!r} (~/.aliyun/config.json, "
                "ALIBABA_CLOUD_CREDENTIALS_FILE or ~/.alibabacloud/credentials.ini)"
            ) from exc
        raise InvalidArgumentError(
            f"no OSS credentials: set {_LOOKED_FOR}, or configure the Alibaba Cloud "
            "default chain (ALIBABA_CLOUD_CREDENTIALS_FILE, ALIBABA_CLOUD_PROFILE, "
            "an OIDC role, an ECS RAM role)"
        ) from exc
    return provider


def _chain(profile: str | None) -> Any:
    if profile is None:
        from alibabacloud_credentials.provider.default import DefaultCredentialsProvider

        return DefaultCredentialsProvider()
    from alibabacloud_credentials.provider import (
        CLIProfileCredentialsProvider,
        ProfileCredentialsProvider,
    )

    return _FirstOf(
        CLIProfileCredentialsProvider(profile_name=profile),
        ProfileCredentialsProvider(profile_name=profile),
    )


class _FirstOf:
    """The first of ``providers`` that has credentials, kept once found."""

    def __init__(self, *providers: Any) -> None:
        self._providers = providers
        self._found: Any = None

    def get_credentials(self) -> Any:
        if self._found is not None:
            return self._found.get_credentials()
        errors: list[Exception] = []
        for provider in self._providers:
            try:
                credentials = provider.get_credentials()
            except Exception as exc:  # each provider has its own failures
                errors.append(exc)
                continue
            self._found = provider
            return credentials
        from alibabacloud_credentials.exceptions import CredentialException

        raise CredentialException(f"no provider had credentials: {errors}")
