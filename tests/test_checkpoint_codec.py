"""The checkpoint codec, as tables: round trips, and every way a file can be untrustworthy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from partdl.checkpoint import (
    Checkpoint,
    CheckpointInvalid,
    _canonical,
    decode,
    encode,
    encode_record,
    part_algorithm,
)
from partdl.crc import ChecksumAlgorithm
from partdl.model import Checksum, ObjectStat

P = 100 * 1024
STAT = ObjectStat(
    size=10 * P + 1,
    etag='"0123456789abcdef"',
    last_modified="Sun, 22 Nov 2026 03:07:27 GMT",
    checksum=Checksum(ChecksumAlgorithm.CRC64XZ, 2**64 - 1),
    version_id="v1",
)
BASE = Checkpoint(
    source="oss://bucket/key",
    destination="/data/out.bin",
    temp_path="/data/out.bin.partdl-0123abcd.tmp",
    stat=STAT,
    part_size=P,
    parts={0: 1, 10: 2**64 - 1, 3: 0},
)


def test_round_trip() -> None:
    assert decode(encode(BASE)) == BASE


def test_round_trip_without_server_checksum() -> None:
    plain = Checkpoint("s3://b/k", "/d", "/d.partdl-00000000.tmp", ObjectStat(0, None, None), P, {})
    assert decode(encode(plain)) == plain
    assert part_algorithm(plain.stat) is ChecksumAlgorithm.CRC64XZ


def test_journal_records_add_parts() -> None:
    data = encode(BASE) + encode_record(5, 55) + encode_record(6, 66)
    assert dict(decode(data).parts) == {**BASE.parts, 5: 55, 6: 66}


def test_a_torn_last_record_is_dropped() -> None:
    data = encode(BASE) + encode_record(5, 55) + encode_record(6, 66)[:-9]
    assert dict(decode(data).parts) == {**BASE.parts, 5: 55}


def test_a_record_without_newline_is_dropped_even_if_complete() -> None:
    data = encode(BASE) + encode_record(5, 55)[:-1]
    assert 5 not in decode(data).parts


def _body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(encode(BASE))["checkpoint"]
    return body


def _sealed(body: dict[str, Any]) -> bytes:
    """Re-sign an edited body, so the test reaches the field checks behind the digest."""
    import hashlib

    canonical = _canonical(body)
    return json.dumps(
        {"sha256": hashlib.sha256(canonical).hexdigest(), "checkpoint": body}
    ).encode()


def _edit(path: str, value: Any) -> bytes:
    body = _body()
    *parents, leaf = path.split(".")
    node = body
    for name in parents:
        node = node[name]
    node[leaf] = value
    return _sealed(body) + b"\n"


INVALID: dict[str, bytes] = {
    "empty": b"",
    "binary": b"\x00\x01\xff",
    "not an object": b"[1, 2]\n",
    "no body": b'{"sha256": "x"}\n',
    "digest mismatch": encode(BASE).replace(b'"size":1024001', b'"size":1024002'),
    "header cut short": encode(BASE)[:-30],
    "wrong format": _edit("format", "other"),
    "future version": _edit("version", 2),
    "negative size": _edit("object.size", -1),
    "size as string": _edit("object.size", "1024001"),
    "size as bool": _edit("object.size", True),
    "etag as number": _edit("object.etag", 5),
    "unknown algorithm": _edit("object.checksum", {"algorithm": "md5", "value": 1}),
    "checksum too wide": _edit("object.checksum", {"algorithm": "crc32", "value": 2**32}),
    "part size too small": _edit("part_size", 1024),
    "part size absurd": _edit("part_size", 10**12),
    "parts not a list": _edit("parts", {"0": 1}),
    "part outside the object": _edit("parts", [[11, 1]]),
    "negative part": _edit("parts", [[-1, 1]]),
    "part recorded twice": _edit("parts", [[1, 1], [1, 1]]),
    "more parts than the plan": _edit("parts", [[i, 1] for i in range(12)]),
    "part crc out of range": _edit("parts", [[1, 2**64]]),
    "part entry of three": _edit("parts", [[1, 1, 1]]),
    "part index as float": _edit("parts", [[1.0, 1]]),
    "source missing": _edit("source", None),
    "temp path as list": _edit("temp_path", ["a"]),
    "record with a bad check": encode(BASE)
    + encode_record(5, 55).replace(b'"crc":55', b'"crc":56'),
    "record not JSON": encode(BASE) + b"garbage\n" + encode_record(5, 55),
    "record outside the object": encode(BASE) + encode_record(99, 1),
    "record repeating a header part": encode(BASE) + encode_record(0, 1),
}


@pytest.mark.parametrize("data", INVALID.values(), ids=INVALID.keys())
def test_untrustworthy_checkpoints_are_refused(data: bytes) -> None:
    with pytest.raises(CheckpointInvalid):
        decode(data)


def test_encoding_is_one_header_line() -> None:
    encoded = encode(BASE)
    assert encoded.count(b"\n") == 1
    assert encoded.endswith(b"\n")
    outer = json.loads(encoded)
    assert outer["checkpoint"]["format"] == "partdl-checkpoint"
    assert outer["checkpoint"]["version"] == 1
