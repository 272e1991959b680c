"""The behavioural suite: every backend, against a real S3-compatible server."""

from __future__ import annotations

import os
from pathlib import Path

import oss2
import pytest

import partdl
from tests.helpers import PART, Interrupt, leftovers, read_checkpoint, recorded_parts, stop_after
from tests.store import LocalStore
from tests.targets import Target

SIZES = [0, 1, PART - 1, PART, PART + 1, 10 * 1024 * 1024 + 12_345]


@pytest.mark.parametrize("task_num", [1, 4, 16])
@pytest.mark.parametrize("size", SIZES)
def test_sizes_arrive_byte_identical(
    target: Target, tmp_path: Path, size: int, task_num: int
) -> None:
    data = os.urandom(size)
    target.put(data)
    out = tmp_path / "out"
    result = target.download(out, part_size=PART, task_num=task_num)
    assert out.read_bytes() == data
    assert leftovers(tmp_path, "out") == []
    assert result.size == size
    assert result.parts_total == -(-size // PART)
    assert result.parts_fetched == result.parts_total
    assert target.ranged_gets() == result.parts_total


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"part_size": 50 * 1024}, "102,400"),
        ({"part_size": 6 * 1024**3}, "5,368,709,120"),
        ({"part_size": PART, "task_num": 0}, "task_num"),
        ({"part_size": PART, "task_num": -3}, "task_num"),
    ],
)
def test_bad_arguments_are_typed_and_create_nothing(
    target: Target, tmp_path: Path, options: dict[str, int], message: str
) -> None:
    target.put(b"x" * 1000)
    with pytest.raises(partdl.InvalidArgumentError, match=message) as raised:
        target.download(tmp_path / "out", **options)
    assert isinstance(raised.value, ValueError)
    assert os.listdir(tmp_path) == []
    assert target.methods() == ["PUT"]  # the upload above: not even a HEAD went out


def test_stopped_download_resumes_fetching_only_missing_parts(
    target: Target, tmp_path: Path
) -> None:
    data = os.urandom(40 * PART + 7)
    target.put(data)
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        target.download(out, part_size=PART, task_num=4, progress_callback=stop_after(0.5))
    assert not out.exists()
    checkpoint = tmp_path / "out.dcp"
    done = recorded_parts(checkpoint)
    assert 0 < len(done) < 41
    before = target.ranged_gets()

    result = target.download(out, part_size=PART, task_num=4)

    assert out.read_bytes() == data
    assert target.ranged_gets() - before == 41 - len(done)
    assert (result.parts_reused, result.parts_fetched) == (len(done), 41 - len(done))
    assert leftovers(tmp_path, "out") == []


def test_resume_picks_up_the_checkpoint_part_size(target: Target, tmp_path: Path) -> None:
    data = os.urandom(30 * PART)
    target.put(data)
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        target.download(out, part_size=2 * PART, progress_callback=stop_after(0.4))
    result = target.download(out)  # no part size: the checkpoint's is used
    assert out.read_bytes() == data
    assert result.parts_reused > 0
    assert result.parts_total == 15


def test_object_overwritten_between_runs_gives_the_new_content(
    target: Target, tmp_path: Path
) -> None:
    target.put(os.urandom(30 * PART))
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        target.download(out, part_size=PART, progress_callback=stop_after(0.5))
    new = os.urandom(25 * PART + 3)
    target.put(new)

    result = target.download(out, part_size=PART)

    assert out.read_bytes() == new
    assert result.parts_reused == 0
    assert leftovers(tmp_path, "out") == []


def test_corrupted_part_on_disk_is_fetched_again_alone(target: Target, tmp_path: Path) -> None:
    data = os.urandom(30 * PART)
    target.put(data)
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        target.download(out, part_size=PART, task_num=2, progress_callback=stop_after(0.5))
    checkpoint = tmp_path / "out.dcp"
    done = recorded_parts(checkpoint)
    victim = sorted(done)[len(done) // 2]
    temp = Path(read_checkpoint(checkpoint)["temp_path"])
    with temp.open("r+b") as handle:
        handle.seek(victim * PART + 1234)
        byte = handle.read(1)
        handle.seek(victim * PART + 1234)
        handle.write(bytes([byte[0] ^ 0xFF]))
    before = target.ranged_gets()

    result = target.download(out, part_size=PART, task_num=2)

    assert out.read_bytes() == data
    assert result.parts_reused == len(done) - 1
    assert target.ranged_gets() - before == 30 - len(done) + 1
    assert (
        f"bytes={victim * PART}-{victim * PART + PART - 1}"
        in target.store.ranged_gets(target.bucket)[before:]
    )


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\xff garbage", b"{}", b'{"sha256": "0", "checkpoint": {}}', b""],
    ids=["binary", "empty-object", "bad-digest", "empty-file"],
)
def test_garbage_checkpoint_is_ignored(target: Target, tmp_path: Path, garbage: bytes) -> None:
    data = os.urandom(20 * PART)
    target.put(data)
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        target.download(out, part_size=PART, progress_callback=stop_after(0.5))
    (tmp_path / "out.dcp").write_bytes(garbage)

    result = target.download(out, part_size=PART)

    assert out.read_bytes() == data
    assert result.parts_reused == 0
    assert leftovers(tmp_path, "out") == []  # the orphaned temp file went too


def test_checkpoint_cut_short_is_ignored(target: Target, tmp_path: Path) -> None:
    data = os.urandom(20 * PART)
    target.put(data)
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        target.download(out, part_size=PART, progress_callback=stop_after(0.5))
    checkpoint = tmp_path / "out.dcp"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-40])
    target.download(out, part_size=PART)
    assert out.read_bytes() == data


def test_object_overwritten_mid_download_gives_exactly_the_new_version(
    target: Target, tmp_path: Path
) -> None:
    target.put(os.urandom(30 * PART))
    new = os.urandom(30 * PART - 99)
    gets: list[str] = []

    def overwrite_on_tenth_get(seen: object) -> None:
        gets.append("x")
        if len(gets) == 10:
            target.put(new)

    target.store.before_request = lambda seen: (
        overwrite_on_tenth_get(seen) if seen.bucket == target.bucket and seen.range else None
    )
    try:
        result = target.download(tmp_path / "out", part_size=PART, task_num=4)
    finally:
        target.store.before_request = None
    assert (tmp_path / "out").read_bytes() == new
    assert result.restarts == 1
    assert leftovers(tmp_path, "out") == []


def test_object_that_keeps_changing_raises_after_bounded_restarts(
    target: Target, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old content")
    target.put(os.urandom(10 * PART))
    versions = iter(range(1000))

    def overwrite(seen: object) -> None:
        target.put(os.urandom(10 * PART) + str(next(versions)).encode())

    target.store.before_request = lambda seen: (
        overwrite(seen) if seen.bucket == target.bucket and seen.range else None
    )
    try:
        with pytest.raises(partdl.ObjectChangedError):
            target.download(out, part_size=PART, task_num=2)
    finally:
        target.store.before_request = None
    assert out.read_bytes() == b"old content"
    assert leftovers(tmp_path, "out") == []


# Targets whose server publishes a whole-object checksum: the OSS CRC-64 header (oss2
# and the SDK V2), the S3 full-object CRC32 boto3 uploads with, the OSS header on a
# presigned HEAD. A presigned GET alone (the bytes=0-0 probe) learns none.
VERIFYING = ["oss", "ossv2", "s3", "http-head"]


@pytest.mark.parametrize("target", VERIFYING, indirect=True)
def test_wrong_server_checksum_is_an_integrity_error(target: Target, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old content")
    target.put(os.urandom(12 * PART))
    target.store.wrong_crc.add((target.bucket, target.key))
    target.store.wrong_checksum.add((target.bucket, target.key))

    with pytest.raises(partdl.IntegrityError):
        target.download(out, part_size=PART, task_num=4)

    assert out.read_bytes() == b"old content"
    assert leftovers(tmp_path, "out") == []
    assert target.ranged_gets() == 2 * 12  # downloaded once more from scratch, then gave up


def test_server_checksum_is_verified_and_reported(target: Target, tmp_path: Path) -> None:
    data = os.urandom(5 * PART + 1)
    target.put(data)
    result = target.download(tmp_path / "out", part_size=PART)
    assert result.checksum is not None
    assert result.verified is (target.name in VERIFYING)
    if target.name != "s3":
        assert result.crc64 == partdl.crc.crc64(data)


def test_missing_key_is_not_found_and_keeps_the_old_file(target: Target, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"precious")
    with pytest.raises(partdl.NotFoundError):
        target.download(out, part_size=PART)
    assert out.read_bytes() == b"precious"
    assert leftovers(tmp_path, "out") == []
    assert target.ranged_gets() == 0


def test_without_checkpoint_nothing_is_left_after_a_failure(target: Target, tmp_path: Path) -> None:
    target.put(os.urandom(20 * PART))
    with pytest.raises(Interrupt):
        target.download(
            tmp_path / "out", part_size=PART, checkpoint=False, progress_callback=stop_after(0.5)
        )
    assert os.listdir(tmp_path) == []


def test_custom_checkpoint_file(target: Target, tmp_path: Path) -> None:
    data = os.urandom(20 * PART)
    target.put(data)
    custom = tmp_path / "state" / "my.checkpoint"
    custom.parent.mkdir()
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        target.download(
            out, part_size=PART, checkpoint_file=custom, progress_callback=stop_after(0.5)
        )
    assert custom.exists()
    assert not (tmp_path / "out.dcp").exists()
    result = target.download(out, part_size=PART, checkpoint_file=custom)
    assert result.parts_reused > 0
    assert out.read_bytes() == data
    assert not custom.exists()


def test_progress_reports_reach_the_total(target: Target, tmp_path: Path) -> None:
    data = os.urandom(12 * PART + 5)
    target.put(data)
    seen: list[tuple[int, int]] = []
    target.download(
        tmp_path / "out", part_size=PART, progress_callback=lambda c, t: seen.append((c, t))
    )
    assert seen[-1] == (len(data), len(data))
    assert all(total == len(data) for _, total in seen)
    assert [c for c, _ in seen] == sorted(c for c, _ in seen)


def test_object_deleted_between_runs_leaves_nothing_behind(target: Target, tmp_path: Path) -> None:
    target.put(os.urandom(20 * PART))
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        target.download(out, part_size=PART, progress_callback=stop_after(0.5))
    assert leftovers(tmp_path) != []
    target.store.s3.delete_object(Bucket=target.bucket, Key=target.key)

    with pytest.raises(partdl.NotFoundError):
        target.download(out, part_size=PART)

    assert leftovers(tmp_path) == []


def test_a_file_that_is_not_a_checkpoint_is_never_deleted_for_a_missing_key(
    target: Target, tmp_path: Path
) -> None:
    foreign = tmp_path / "out.dcp"
    foreign.write_bytes(b"some other tool's state")
    with pytest.raises(partdl.NotFoundError):
        target.download(tmp_path / "out", part_size=PART)
    assert foreign.read_bytes() == b"some other tool's state"


@pytest.mark.parametrize("target", ["oss"], indirect=True)
def test_the_finished_file_gets_ordinary_permissions(target: Target, tmp_path: Path) -> None:
    target.put(os.urandom(3 * PART))
    fresh, replaced = tmp_path / "fresh", tmp_path / "replaced"
    replaced.write_bytes(b"old")
    replaced.chmod(0o640)
    previous = os.umask(0o027)
    try:
        target.download(fresh, part_size=PART)
        target.download(replaced, part_size=PART)
    finally:
        os.umask(previous)
    assert fresh.stat().st_mode & 0o777 == 0o640  # 0666 & ~027
    assert replaced.stat().st_mode & 0o777 == 0o640
    os.umask(0o022)
    try:
        target.download(fresh, part_size=PART)  # replacing keeps the file's own mode
        (tmp_path / "other").unlink(missing_ok=True)
        target.download(tmp_path / "other", part_size=PART)
    finally:
        os.umask(previous)
    assert fresh.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "other").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [((5, 5 * PART + 7), slice(5, 5 * PART + 8)), ((3 * PART, None), slice(3 * PART, None))],
    ids=["closed", "to-the-end"],
)
def test_a_byte_range_of_the_object(
    target: Target, tmp_path: Path, byte_range: tuple[int, int | None], expected: slice
) -> None:
    data = os.urandom(8 * PART + 11)
    target.put(data)
    out = tmp_path / "out"
    result = target.download(out, part_size=PART, byte_range=byte_range)
    assert out.read_bytes() == data[expected]
    assert result.size == len(data[expected])
    assert not result.verified  # a slice has no server checksum to compare
    assert leftovers(tmp_path, "out") == []


def test_a_client_side_encrypted_oss_bucket_is_refused(store: LocalStore, tmp_path: Path) -> None:
    # Built without __init__: a real provider needs a key pair, and only the type matters.
    crypto = oss2.CryptoBucket.__new__(oss2.CryptoBucket)
    with pytest.raises(partdl.InvalidArgumentError, match="CryptoBucket"):
        partdl.download_file(crypto, "key", tmp_path / "out")
    assert os.listdir(tmp_path) == []
