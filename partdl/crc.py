"""Pure CRC arithmetic: streaming updates and combination of part checksums.

Every algorithm here is a reflected CRC with all-ones init and xor-out, so one
combination routine (zlib's ``crc32_combine`` method, generalised to any width)
serves them all: the CRC of ``A + B`` follows from ``crc(A)``, ``crc(B)`` and
``len(B)`` alone, which is what lets parts be checksummed independently and in
any order, then folded into the whole-object value the server publishes.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable
from functools import cache, lru_cache
from typing import TypeAlias

import fastcrc

Buffer: TypeAlias = bytes | bytearray | memoryview
Updater: TypeAlias = Callable[[int, Buffer], int]


class ChecksumAlgorithm(enum.Enum):
    """Whole-object checksums a store may publish."""

    CRC64XZ = "crc64xz"  # OSS ``x-oss-hash-crc64ecma`` (CRC-64/XZ, "ECMA-182" reflected)
    CRC64NVME = "crc64nvme"  # S3 ``x-amz-checksum-crc64nvme``
    CRC32 = "crc32"  # S3 ``x-amz-checksum-crc32`` (zlib's CRC-32)
    CRC32C = "crc32c"  # S3 ``x-amz-checksum-crc32c`` (Castagnoli)

    @property
    def width(self) -> int:
        return 64 if self in (ChecksumAlgorithm.CRC64XZ, ChecksumAlgorithm.CRC64NVME) else 32


# Reflected generator polynomials.
_POLY: dict[ChecksumAlgorithm, int] = {
    ChecksumAlgorithm.CRC64XZ: 0xC96C5795D7870F42,
    ChecksumAlgorithm.CRC64NVME: 0x9A6C9329AC4BC9B5,
    ChecksumAlgorithm.CRC32: 0xEDB88320,
    ChecksumAlgorithm.CRC32C: 0x82F63B78,
}


def _crc64xz(crc: int, data: Buffer) -> int:
    return fastcrc.crc64.xz(data, initial=crc)


def _crc32(crc: int, data: Buffer) -> int:
    # fastcrc's CRC-32 is 11x faster than zlib's here (0.02 against 0.25 s per GiB).
    return fastcrc.crc32.iso_hdlc(data, initial=crc)


def _crc32c(crc: int, data: Buffer) -> int:
    return fastcrc.crc32.iscsi(data, initial=crc)


@cache
def _crc64nvme_engine() -> Updater | None:
    """anycrc's CRC-64/NVME, else awscrt's, else None.

    anycrc comes first for its import: ~3 ms in a process that already has
    ``inspect`` (as partdl does), against ~95 ms for awscrt's native library, which a
    worker thread would pay at the first part of an S3 object while holding the
    import lock and the GIL. Both run at ~9.7 GB/s here; anycrc holds the GIL while
    it computes (0.1 ms a MiB), awscrt does not.
    """
    try:
        import anycrc
    except ImportError:
        pass
    else:
        nvme = anycrc.CRC(
            width=64,
            poly=0xAD93D23594C93659,
            init=0xFFFFFFFFFFFFFFFF,
            refin=True,
            refout=True,
            xorout=0xFFFFFFFFFFFFFFFF,
        )
        calc: Callable[[Buffer, int], int] = nvme.calc
        return lambda crc, data: calc(data, crc)
    try:
        from awscrt import checksums
    except ImportError:
        return None
    return lambda crc, data: int(checksums.crc64nvme(data, crc))


def available(algorithm: ChecksumAlgorithm) -> bool:
    """Whether this installation can compute ``algorithm`` (CRC-64/NVME needs anycrc,
    a dependency, or awscrt; the others come with fastcrc)."""
    return algorithm is not ChecksumAlgorithm.CRC64NVME or _crc64nvme_engine() is not None


_UPDATERS: dict[ChecksumAlgorithm, Updater] = {
    ChecksumAlgorithm.CRC64XZ: _crc64xz,
    ChecksumAlgorithm.CRC32: _crc32,
    ChecksumAlgorithm.CRC32C: _crc32c,
}


def updater(algorithm: ChecksumAlgorithm) -> Updater:
    """The function ``(crc, data) -> crc`` that extends a running checksum.

    fastcrc releases the GIL on large buffers, so workers checksum in parallel with
    each other's socket reads; anycrc (CRC-64/NVME) holds it for 0.1 ms a MiB.
    """
    found = (
        _crc64nvme_engine() if algorithm is ChecksumAlgorithm.CRC64NVME else _UPDATERS[algorithm]
    )
    if found is None:
        raise RuntimeError(f"{algorithm.value} needs anycrc or awscrt; see available()")
    return found


def checksum(algorithm: ChecksumAlgorithm, data: Buffer) -> int:
    return updater(algorithm)(0, data)


def crc64(data: Buffer, crc: int = 0) -> int:
    """CRC-64/XZ (the OSS ``crc64ecma``) of ``data``, continuing from ``crc``."""
    return _crc64xz(crc, data)


def _multmodp(a: int, b: int, poly: int, top: int) -> int:
    """``a * b mod p`` in the reflected bit order, ``top`` being x^0."""
    m = top
    product = 0
    while True:
        if a & m:
            product ^= b
            if not a & (m - 1):
                return product
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1


@cache
def _x2n_table(algorithm: ChecksumAlgorithm) -> tuple[int, ...]:
    """``x^(2^k) mod p`` for k in 0..width-1."""
    width, poly = algorithm.width, _POLY[algorithm]
    top = 1 << (width - 1)
    table = [top >> 1]  # x^1
    for _ in range(1, width):
        table.append(_multmodp(table[-1], table[-1], poly, top))
    return tuple(table)


@cache
def _shift_operator(algorithm: ChecksumAlgorithm, length: int) -> int:
    """``x^(8 * length) mod p``: appending ``length`` zero bytes, as one multiplier.

    Cached because a plan has at most two distinct part lengths.
    """
    width, poly = algorithm.width, _POLY[algorithm]
    top = 1 << (width - 1)
    table = _x2n_table(algorithm)
    operator, n, k = top, length, 3
    while n:
        if n & 1:
            operator = _multmodp(table[k % width], operator, poly, top)
        n >>= 1
        k += 1
    return operator


def combine(algorithm: ChecksumAlgorithm, crc1: int, crc2: int, len2: int) -> int:
    """The checksum of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)``."""
    if len2 <= 0:
        return crc1
    width, poly = algorithm.width, _POLY[algorithm]
    operator = _shift_operator(algorithm, len2)
    return _multmodp(operator, crc1, poly, 1 << (width - 1)) ^ crc2


# Below this many parts of one length, the bit-serial product is cheaper than a table.
_TABLE_MIN_PARTS = 64


@lru_cache(maxsize=8)  # a long-lived process meets many part sizes; keep a few
def _shift_tables(algorithm: ChecksumAlgorithm, length: int) -> tuple[tuple[int, ...], ...]:
    """The shift by ``length`` bytes, as one 256-entry table per byte of the CRC.

    Multiplication mod p is linear, so the product of a CRC with the operator is
    the XOR of each of its bytes' products: ``width / 8`` lookups instead of a
    ``width``-step loop, which is what makes 100,000 parts fold in well under a second.
    """
    width, poly = algorithm.width, _POLY[algorithm]
    top = 1 << (width - 1)
    operator = _shift_operator(algorithm, length)
    tables = []
    for byte in range(width // 8):
        table = [0] * 256
        for bit in range(8):
            table[1 << bit] = _multmodp(operator, 1 << (8 * byte + bit), poly, top)
        for value in range(3, 256):
            low = value & -value
            if low != value:
                table[value] = table[value ^ low] ^ table[low]
        tables.append(tuple(table))
    return tuple(tables)


def _shift_by_table(tables: tuple[tuple[int, ...], ...], crc: int) -> int:
    product = 0
    for table in tables:
        product ^= table[crc & 0xFF]
        crc >>= 8
    return product


def combine_all(algorithm: ChecksumAlgorithm, pieces: Iterable[tuple[int, int]]) -> int:
    """Fold ``(crc, length)`` pieces, in order, into the checksum of their concatenation."""
    # Counted as they stream past, never listed: 100,000 parts would cost ~10 MiB.
    seen: Counter[int] = Counter()
    total = 0
    for crc, length in pieces:
        seen[length] += 1
        if seen[length] > _TABLE_MIN_PARTS and length > 0:
            total = _shift_by_table(_shift_tables(algorithm, length), total) ^ crc
        else:
            total = combine(algorithm, total, crc, length)
    return total
