"""Plain values shared by the core, the backends and the checkpoint codec."""

from __future__ import annotations

from dataclasses import dataclass, field

from .crc import ChecksumAlgorithm


@dataclass(frozen=True, slots=True)
class Checksum:
    """A whole-object checksum as the server publishes it."""

    algorithm: ChecksumAlgorithm
    value: int


@dataclass(frozen=True, slots=True)
class ObjectStat:
    """What one HEAD pins about the object; every ranged GET must match it.

    ``etag`` is kept exactly as the server sent it (quotes included) because it is
    echoed back in ``If-Match``. ``ranged`` is False for a server that ignores byte
    ranges: the engine then plans the whole object as one part. It describes the
    server, not the object, so it is neither saved in checkpoints nor compared.
    """

    size: int
    etag: str | None
    last_modified: str | None
    checksum: Checksum | None = None
    version_id: str | None = None
    ranged: bool = field(default=True, compare=False)


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """What :func:`partdl.download_file` returns once the destination is in place."""

    path: str
    size: int
    etag: str | None
    crc64: int | None
    """CRC-64/XZ of the file (the OSS ``crc64ecma``) when that was the checksum used."""
    checksum: Checksum | None
    """The whole-object checksum partdl computed (and verified when the server sent one)."""
    verified: bool
    """True when the computed checksum was compared with the server's and matched."""
    parts_total: int
    parts_fetched: int
    parts_reused: int
    restarts: int
