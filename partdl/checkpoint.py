"""The checkpoint codec: pure encoding, decoding and validation, no file I/O.

A checkpoint is JSON Lines: a header line (the object, the destination, the plan
and the parts known when it was written) guarded by a SHA-256 of its canonical
form, then one appended line per finished part, each with a CRC-32 of its own.

A checkpoint is untrusted input (it sits on disk between runs, a crash may have
cut it short, a user may have edited it). ``decode`` therefore checks the digests
and the shape of every field, and raises ``CheckpointInvalid`` for anything off;
the engine answers that by downloading from scratch. Only the very last line may be
torn (the write it came from was cut short): it is dropped, not trusted.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .crc import ChecksumAlgorithm
from .model import Checksum, ObjectStat
from .plan import MAX_PART_SIZE, MIN_PART_SIZE

FORMAT = "partdl-checkpoint"
VERSION = 1


class CheckpointInvalid(ValueError):
    """The bytes are not a checkpoint this version of partdl wrote and can trust."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    source: str
    destination: str
    temp_path: str
    stat: ObjectStat
    part_size: int
    parts: Mapping[int, int] = field(default_factory=dict)
    """Completed parts: index to the part's checksum (algorithm of ``stat.checksum``)."""

    @property
    def part_count(self) -> int:
        return -(-self.stat.size // self.part_size)


def part_algorithm(stat: ObjectStat) -> ChecksumAlgorithm:
    """Parts are checksummed with the server's algorithm, else with CRC-64/XZ."""
    return stat.checksum.algorithm if stat.checksum else ChecksumAlgorithm.CRC64XZ


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _stat_to_json(stat: ObjectStat) -> dict[str, Any]:
    checksum = None
    if stat.checksum is not None:
        checksum = {"algorithm": stat.checksum.algorithm.value, "value": stat.checksum.value}
    return {
        "size": stat.size,
        "etag": stat.etag,
        "last_modified": stat.last_modified,
        "version_id": stat.version_id,
        "checksum": checksum,
    }


def encode(checkpoint: Checkpoint) -> bytes:
    body = {
        "format": FORMAT,
        "version": VERSION,
        "source": checkpoint.source,
        "destination": checkpoint.destination,
        "temp_path": checkpoint.temp_path,
        "object": _stat_to_json(checkpoint.stat),
        "part_size": checkpoint.part_size,
        "parts": sorted([index, crc] for index, crc in checkpoint.parts.items()),
    }
    canonical = _canonical(body)
    digest = hashlib.sha256(canonical).hexdigest()
    return b'{"sha256":"' + digest.encode() + b'","checkpoint":' + canonical + b"}\n"


def _record_check(index: int, crc: int) -> str:
    return f"{zlib.crc32(f'{index}:{crc}'.encode()):08x}"


def encode_record(index: int, crc: int) -> bytes:
    """One journal line: part ``index`` is complete and its checksum is ``crc``."""
    return f'{{"part":{index},"crc":{crc},"check":"{_record_check(index, crc)}"}}\n'.encode()


def _decode_record(line: bytes) -> tuple[int, int]:
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointInvalid("a part record is not JSON") from exc
    if not isinstance(record, dict):
        raise CheckpointInvalid("a part record is not an object")
    index = _need(record.get("part"), int, "part index")
    crc = _need(record.get("crc"), int, "part crc")
    if record.get("check") != _record_check(index, crc):
        raise CheckpointInvalid(f"the record of part {index} fails its check")
    return index, crc


def _need(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    # bool is an int in Python; a checkpoint field is never meant to be one.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise CheckpointInvalid(f"{name}: expected {kind}, got {type(value).__name__}")
    return value


def _optional_str(value: Any, name: str) -> str | None:
    return None if value is None else _need(value, str, name)


def _decode_checksum(raw: Any) -> Checksum | None:
    if raw is None:
        return None
    _need(raw, dict, "object.checksum")
    try:
        algorithm = ChecksumAlgorithm(raw.get("algorithm"))
    except ValueError as exc:
        raise CheckpointInvalid(f"unknown checksum algorithm {raw.get('algorithm')!r}") from exc
    value = _need(raw.get("value"), int, "object.checksum.value")
    if not 0 <= value < 1 << algorithm.width:
        raise CheckpointInvalid("object.checksum.value out of range")
    return Checksum(algorithm, value)


def _decode_stat(raw: Any) -> ObjectStat:
    _need(raw, dict, "object")
    size = _need(raw.get("size"), int, "object.size")
    if size < 0:
        raise CheckpointInvalid("object.size is negative")
    return ObjectStat(
        size=size,
        etag=_optional_str(raw.get("etag"), "object.etag"),
        last_modified=_optional_str(raw.get("last_modified"), "object.last_modified"),
        checksum=_decode_checksum(raw.get("checksum")),
        version_id=_optional_str(raw.get("version_id"), "object.version_id"),
    )


def _decode_parts(raw: Any, part_count: int, crc_width: int) -> dict[int, int]:
    _need(raw, list, "parts")
    if len(raw) > part_count:
        raise CheckpointInvalid(f"{len(raw)} parts recorded for a plan of {part_count}")
    parts: dict[int, int] = {}
    for entry in raw:
        if not isinstance(entry, list) or len(entry) != 2:
            raise CheckpointInvalid("a part entry is not an [index, crc] pair")
        index = _need(entry[0], int, "part index")
        crc = _need(entry[1], int, "part crc")
        if not 0 <= index < part_count:
            raise CheckpointInvalid(f"part {index} lies outside the object")
        if not 0 <= crc < 1 << crc_width:
            raise CheckpointInvalid(f"part {index} has a crc out of range")
        if index in parts:
            raise CheckpointInvalid(f"part {index} is recorded twice")
        parts[index] = crc
    return parts


def _parse(data: bytes) -> dict[str, Any]:
    try:
        outer = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointInvalid("not JSON") from exc
    if not isinstance(outer, dict) or not isinstance(outer.get("checkpoint"), dict):
        raise CheckpointInvalid("not a checkpoint object")
    body: dict[str, Any] = outer["checkpoint"]
    if hashlib.sha256(_canonical(body)).hexdigest() != outer.get("sha256"):
        raise CheckpointInvalid("digest mismatch: the checkpoint was altered or cut short")
    if body.get("format") != FORMAT or body.get("version") != VERSION:
        raise CheckpointInvalid(
            f"unsupported format {body.get('format')!r} {body.get('version')!r}"
        )
    return body


def _journal(lines: list[bytes]) -> list[list[int]]:
    """The appended part records; a torn last line (no newline) is dropped."""
    records = []
    for number, line in enumerate(lines):
        if not line.endswith(b"\n") and number == len(lines) - 1:
            break
        records.append(list(_decode_record(line)))
    return records


def decode(data: bytes) -> Checkpoint:
    """Parse and validate; raise :class:`CheckpointInvalid` on anything untrustworthy."""
    header, *lines = data.splitlines(keepends=True) or [b""]
    body = _parse(header)
    stat = _decode_stat(body.get("object"))
    part_size = _need(body.get("part_size"), int, "part_size")
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise CheckpointInvalid(f"part_size {part_size} out of bounds")
    part_count = -(-stat.size // part_size)
    width = part_algorithm(stat).width
    recorded = _need(body.get("parts"), list, "parts")
    return Checkpoint(
        source=_need(body.get("source"), str, "source"),
        destination=_need(body.get("destination"), str, "destination"),
        temp_path=_need(body.get("temp_path"), str, "temp_path"),
        stat=stat,
        part_size=part_size,
        parts=_decode_parts(recorded + _journal(lines), part_count, width),
    )
