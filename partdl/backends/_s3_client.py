"""How an S3 client is rebuilt in another process: its recipe, never its secrets' text.

A boto3 client holds sockets and locks and does not pickle. To send an
:class:`~partdl.S3Bucket` to a worker process (or a Dask worker on another machine),
partdl pickles the recipe instead: endpoint, region, the botocore ``Config``, and
credentials only when the caller passed them explicitly. Credentials that came from a
chain (environment, shared files, an instance or container role, SSO) are left out, so
the worker resolves its own from its own chain, as the caller's client did; a
short-lived role session is then never carried past its expiry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """Explicitly passed credentials. ``repr`` never shows them."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ClientRecipe:
    endpoint_url: str | None
    region_name: str | None
    config: Any = field(repr=False)
    keys: StaticKeys | None = None

    @classmethod
    def of(cls, client: Any) -> ClientRecipe:
        meta = client.meta
        # botocore keeps the credentials on the request signer; "explicit" means the
        # caller handed keys to the client or its session rather than to a chain.
        credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        keys = None
        if credentials is not None and getattr(credentials, "method", None) == "explicit":
            frozen = credentials.get_frozen_credentials()
            keys = StaticKeys(frozen.access_key, frozen.secret_key, frozen.token)
        return cls(meta.endpoint_url, meta.region_name, meta.config, keys)

    def build(self) -> Any:
        import boto3.session

        secrets: dict[str, Any] = {}
        if self.keys is not None:
            secrets = {
                "aws_access_key_id": self.keys.access_key,
                "aws_secret_access_key": self.keys.secret_key,
                "aws_session_token": self.keys.token,
            }
        session = boto3.session.Session()
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            config=self.config,
            **secrets,
        )
