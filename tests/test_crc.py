"""CRC streaming and combination, checked against crcmod as an independent reference."""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Callable

import crcmod
import pytest

from partdl import crc
from partdl.crc import (
    ChecksumAlgorithm,
    _shift_tables,
    checksum,
    combine,
    combine_all,
    crc64,
    updater,
)

# crcmod's polynomials carry the implicit top bit; every algorithm is reflected with
# all-ones init and xor-out, which crcmod expresses as initCrc=0 plus xorOut.
REFERENCES: dict[ChecksumAlgorithm, Callable[[bytes], int]] = {
    ChecksumAlgorithm.CRC64XZ: crcmod.mkCrcFun(
        0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True
    ),
    ChecksumAlgorithm.CRC64NVME: crcmod.mkCrcFun(
        0x1AD93D23594C93659, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True
    ),
    ChecksumAlgorithm.CRC32: crcmod.mkCrcFun(0x104C11DB7, initCrc=0, xorOut=0xFFFFFFFF, rev=True),
    ChecksumAlgorithm.CRC32C: crcmod.mkCrcFun(0x11EDC6F41, initCrc=0, xorOut=0xFFFFFFFF, rev=True),
}

CHECK_VALUES = {  # the catalogue's check value: the CRC of b"123456789"
    ChecksumAlgorithm.CRC64XZ: 0x995DC9BBDF1939FA,
    ChecksumAlgorithm.CRC64NVME: 0xAE8B14860A799888,
    ChecksumAlgorithm.CRC32: 0xCBF43926,
    ChecksumAlgorithm.CRC32C: 0xE3069283,
}

ALGORITHMS = list(ChecksumAlgorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_check_value(algorithm: ChecksumAlgorithm) -> None:
    assert checksum(algorithm, b"123456789") == CHECK_VALUES[algorithm]
    assert REFERENCES[algorithm](b"123456789") == CHECK_VALUES[algorithm]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_streaming_matches_the_reference(algorithm: ChecksumAlgorithm) -> None:
    rng = random.Random(algorithm.value)
    update = updater(algorithm)
    for _ in range(20):
        data = rng.randbytes(rng.randrange(0, 20_000))
        crc = 0
        for start in range(0, len(data), 777):
            crc = update(crc, memoryview(data)[start : start + 777])
        assert crc == REFERENCES[algorithm](data)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_combine_matches_the_reference_on_random_splits(algorithm: ChecksumAlgorithm) -> None:
    rng = random.Random(f"combine-{algorithm.value}")
    for _ in range(40):
        data = rng.randbytes(rng.randrange(0, 50_000))
        cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 6)))
        bounds = [0, *cuts, len(data)]
        pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        folded = combine_all(algorithm, [(checksum(algorithm, p), len(p)) for p in pieces])
        assert folded == REFERENCES[algorithm](data)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(("count", "size", "last"), [(100, 1, 0), (300, 37, 5), (1000, 8, 8)])
def test_combine_of_many_equal_parts(
    algorithm: ChecksumAlgorithm, count: int, size: int, last: int
) -> None:
    # Enough equal lengths for combine_all to switch to its byte tables.
    data = random.Random(f"many-{algorithm.value}-{count}").randbytes(count * size + last)
    pieces = [data[i : i + size] for i in range(0, count * size, size)]
    if last:
        pieces.append(data[count * size :])
    _shift_tables.cache_clear()
    folded = combine_all(algorithm, [(checksum(algorithm, p), len(p)) for p in pieces])
    assert _shift_tables.cache_info().misses == 1  # the table path was taken
    assert folded == REFERENCES[algorithm](data)
    pairwise = 0
    for piece in pieces:
        pairwise = combine(algorithm, pairwise, checksum(algorithm, piece), len(piece))
    assert folded == pairwise


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_combine_with_empty_pieces(algorithm: ChecksumAlgorithm) -> None:
    crc = checksum(algorithm, b"abc")
    assert combine(algorithm, crc, checksum(algorithm, b""), 0) == crc
    assert combine(algorithm, checksum(algorithm, b""), crc, 3) == crc
    assert combine_all(algorithm, []) == checksum(algorithm, b"")


def test_combine_over_a_huge_length_stays_in_range() -> None:
    value = combine(ChecksumAlgorithm.CRC64XZ, 2**64 - 1, 12345, 5 * 1024**4)
    assert 0 <= value < 2**64


def test_crc64_is_the_oss_crc64ecma() -> None:
    assert crc64(b"123456789") == 0x995DC9BBDF1939FA
    assert crc64(b"6789", crc64(b"12345")) == crc64(b"123456789")
    assert crc64(b"") == 0
    assert zlib.crc32(b"123456789") == checksum(ChecksumAlgorithm.CRC32, b"123456789")


def test_the_two_crc64nvme_engines_agree_when_continued() -> None:
    awscrt_checksums = pytest.importorskip("awscrt.checksums")  # a dev dependency
    update = updater(ChecksumAlgorithm.CRC64NVME)
    rng = random.Random(64)
    for size in (0, 1, 7, 4096, 65_537, 300_001):
        data = rng.randbytes(size)
        cut = rng.randrange(0, size + 1)
        ours = update(update(0, memoryview(data)[:cut]), memoryview(data)[cut:])
        theirs = awscrt_checksums.crc64nvme(data[cut:], awscrt_checksums.crc64nvme(data[:cut]))
        assert ours == theirs == REFERENCES[ChecksumAlgorithm.CRC64NVME](data)


def test_an_algorithm_without_an_engine_is_not_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert all(crc.available(algorithm) for algorithm in ALGORITHMS)
    monkeypatch.setattr(crc, "_crc64nvme_engine", lambda: None)
    assert not crc.available(ChecksumAlgorithm.CRC64NVME)
    assert crc.available(ChecksumAlgorithm.CRC32C)
    with pytest.raises(RuntimeError, match="anycrc or awscrt"):
        checksum(ChecksumAlgorithm.CRC64NVME, b"x")
