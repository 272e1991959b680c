"""The machine misbehaves, and the files partdl makes are safe.

A full disk is a real full file system: a small tmpfs mounted in a private mount
namespace that only the download's process sees (``unshare``; root, or unprivileged
user namespaces), filled by that process at a chosen moment. The parent reaches the
files through ``/proc/<pid>/root``. A file-size limit is a real ``RLIMIT_FSIZE`` in a
child process. Bad destinations, locks, modes, symlinks, untrusted checkpoints and
secrets are checked against the real store, in-process or in a child.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import oss2
import pytest

import partdl
from partdl import download_url
from partdl.backends.oss import OssBackend
from partdl.checkpoint import decode, encode, encode_record
from tests.faultchild import Child
from tests.faultproxy import TAG_HEADER, Fault, FaultProxy, Rule
from tests.helpers import OSS_REGION, PART, Interrupt, leftovers, oss_bucket, stop_after
from tests.store import LocalStore

KEY = "data/object.bin"
OLD = b"the previous version of the file"
QUICK = partdl.RetryPolicy(attempts=3, backoff=0.005, backoff_max=0.02)

# Mounts a tmpfs (options "$0") on "$1" in the private namespace, then runs the child.
MOUNT = 'mount -t tmpfs -o "$0" partdl-test "$1" && shift && exec "$@"'


def _namespace_prefix() -> list[str] | None:
    """How this machine can give a child a tmpfs of its own, or None if it cannot."""
    base = ["unshare", "--mount", "--propagation", "private"]
    candidates = [base] if os.geteuid() == 0 else []
    candidates.append([*base, "--user", "--map-root-user"])
    with tempfile.TemporaryDirectory() as probe:
        for prefix in candidates:
            try:
                done = subprocess.run(
                    [*prefix, "sh", "-c", MOUNT, "size=64k", probe, "true"],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError):
                continue
            if done.returncode == 0:
                return prefix
    return None


@pytest.fixture(scope="session")
def namespace() -> list[str]:
    prefix = _namespace_prefix()
    if prefix is None:
        pytest.skip("mounting a small tmpfs needs root or unprivileged user namespaces")
    return prefix


@dataclasses.dataclass
class Box:
    """A child whose directory ``mount`` is a tmpfs only it can see."""

    child: Child
    mount: Path

    def path(self, name: str = "") -> Path:
        """The parent's way in: the child's root, as the child sees it."""
        return Path(f"/proc/{self.child.pid}/root{self.mount}") / name

    def listing(self) -> list[str]:
        return sorted(os.listdir(self.path()))


@pytest.fixture
def tmpfs(namespace: list[str], tmp_path: Path) -> Iterator[Callable[[str], Box]]:
    boxes: list[Box] = []

    def make(options: str) -> Box:
        mount = tmp_path / "mnt"
        mount.mkdir(exist_ok=True)
        box = Box(Child(prefix=[*namespace, "sh", "-c", MOUNT, options, str(mount)]), mount)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.child.close()
        # The tmpfs lived in the child's namespace only: here the directory is empty.
        assert os.listdir(box.mount) == []


def command(store: LocalStore, bucket: str, out: Path, **extra: Any) -> dict[str, Any]:
    options = {
        "endpoint": store.endpoint,
        "bucket": bucket,
        "key": KEY,
        "out": str(out),
        "part_size": PART,
        "task_num": 4,
        "retry": dataclasses.asdict(QUICK),
    }
    options.update(extra)
    return options


def fetch(store: LocalStore, bucket: str, out: Path, **options: Any) -> partdl.DownloadResult:
    backend = OssBackend(store.oss_bucket(bucket), KEY)
    settings: dict[str, Any] = {"part_size": PART, "task_num": 4, "retry": QUICK}
    settings.update(options)
    return partdl.download(backend, out, **settings)


def object_requests(store: LocalStore, bucket: str) -> list[str]:
    """Methods of the requests for the object, after the upload."""
    return [seen.method for seen in store.requests(bucket) if seen.key and seen.method != "PUT"]


def assert_error(event: dict[str, Any], kind: str, code: int, *names: str) -> None:
    assert event["event"] == "error", event
    assert (event["type"], event["errno"]) == (kind, code), event
    for name in names:
        assert name in event["message"], event


# -- disk full ---------------------------------------------------------------------------


def test_disk_full_at_the_start_is_typed_and_leaves_nothing(
    tmpfs: Callable[[str], Box], store: LocalStore, bucket_name: str
) -> None:
    store.put(bucket_name, KEY, os.urandom(3 * 1024 * 1024))
    box = tmpfs("size=1m")
    box.path("out").write_bytes(OLD)

    event = box.child.run(**command(store, bucket_name, box.mount / "out"))

    assert_error(event, "LocalFileError", errno.ENOSPC, str(box.mount / "out"))
    assert "No space left on device" in event["message"]
    assert box.listing() == ["out"]
    assert box.path("out").read_bytes() == OLD
    assert object_requests(store, bucket_name) == ["HEAD"]


def test_disk_filling_up_mid_download_keeps_a_resumable_checkpoint(
    tmpfs: Callable[[str], Box], store: LocalStore, bucket_name: str
) -> None:
    parts = 120  # enough journal lines to need a second page of the tmpfs
    data = os.urandom(parts * PART)
    store.put(bucket_name, KEY, data)
    box = tmpfs("size=16m")
    box.path("out").write_bytes(OLD)
    filler = str(box.mount / "filler")
    run = command(store, bucket_name, box.mount / "out")

    event = box.child.run(**run, fill_at={"progress": 0.05, "path": filler})

    assert any(seen["event"] == "filled" for seen in box.child.seen)
    assert_error(event, "LocalFileError", errno.ENOSPC, str(box.mount / "out.dcp"))
    saved = decode(box.path("out.dcp").read_bytes())
    assert 0 < len(saved.parts) < parts
    temp = Path(saved.temp_path).name
    assert box.listing() == sorted(["filler", "out", "out.dcp", temp])
    assert box.path("out").read_bytes() == OLD

    # Still full: resuming fails the same way and changes nothing on disk.
    before = box.path("out.dcp").read_bytes()
    event = box.child.run(**run)
    assert_error(event, "LocalFileError", errno.ENOSPC, str(box.mount / "out.dcp"))
    assert box.path("out.dcp").read_bytes() == before
    assert box.listing() == sorted(["filler", "out", "out.dcp", temp])

    box.child.send(op="remove", path=filler)
    box.child.until("removed")
    gets = len(store.ranged_gets(bucket_name))
    event = box.child.run(**run)

    assert event["event"] == "result", event
    assert (event["parts_reused"], event["parts_fetched"]) == (
        len(saved.parts),
        parts - len(saved.parts),
    )
    assert len(store.ranged_gets(bucket_name)) - gets == parts - len(saved.parts)
    assert box.path("out").read_bytes() == data
    assert box.listing() == ["out"]


def test_small_objects_on_a_full_disk_fail_typed_and_leave_the_old_files(
    tmpfs: Callable[[str], Box], store: LocalStore, bucket_name: str
) -> None:
    # A small object's temp file is not reserved up front: the disk says so on a write.
    data = {"small/a": os.urandom(100 * 1024), "small/b": os.urandom(3000)}
    for key, value in data.items():
        store.put(bucket_name, key, value)
    box = tmpfs("size=1m")
    box.path("b").write_bytes(OLD)
    filler = str(box.mount / "filler")
    box.child.send(op="fill", path=filler)
    box.child.until("filled")
    items = [["small/a", str(box.mount / "a")], ["small/b", str(box.mount / "b")]]
    many = {"endpoint": store.endpoint, "bucket": bucket_name, "items": items, "task_num": 2}

    box.child.send(op="many", **many)
    event = box.child.until("batch")

    assert event["downloaded"] == []
    for key, name in (("small/a", "a"), ("small/b", "b")):
        failure = event["failed"][key]
        assert (failure["type"], failure["errno"]) == ("LocalFileError", errno.ENOSPC), failure
        assert f"cannot write to {box.mount / name}.partdl-" in failure["message"], failure
    assert box.listing() == ["b", "filler"]  # no temp file left, the old file untouched
    assert box.path("b").read_bytes() == OLD

    box.child.send(op="remove", path=filler)
    box.child.until("removed")
    box.child.send(op="many", **many)
    event = box.child.until("batch")
    assert (sorted(event["downloaded"]), event["failed"]) == (sorted(data), {})
    assert box.path("a").read_bytes() == data["small/a"]
    assert box.path("b").read_bytes() == data["small/b"]
    assert box.listing() == ["a", "b"]


# -- a file-size limit -----------------------------------------------------------------


def test_file_size_limit_at_the_start_is_typed_and_leaves_nothing(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, os.urandom(10 * PART))
    (tmp_path / "out").write_bytes(OLD)
    child = Child(rlimit_fsize=256 * 1024)
    try:
        event = child.run(**command(store, bucket_name, tmp_path / "out"))
    finally:
        child.close()
    assert_error(event, "LocalFileError", errno.EFBIG, str(tmp_path / "out"))
    assert leftovers(tmp_path, "out") == []
    assert (tmp_path / "out").read_bytes() == OLD
    assert object_requests(store, bucket_name) == ["HEAD"]


def test_file_size_limit_mid_download_keeps_a_resumable_checkpoint(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    parts = 40
    data = os.urandom(parts * PART)
    store.put(bucket_name, KEY, data)
    out = tmp_path / "out"
    with pytest.raises(Interrupt):  # a first run leaves the temp file and a checkpoint
        fetch(store, bucket_name, out, progress_callback=stop_after(0.2))
    first = decode((tmp_path / "out.dcp").read_bytes())
    limit = 25 * PART + 5_000  # writes at or past this offset fail with EFBIG

    child = Child(rlimit_fsize=limit)
    try:
        event = child.run(**command(store, bucket_name, out, task_num=2))
    finally:
        child.close()

    assert_error(event, "LocalFileError", errno.EFBIG, first.temp_path)
    saved = decode((tmp_path / "out.dcp").read_bytes())
    assert set(first.parts) < set(saved.parts)
    assert max(saved.parts) < 25  # no part reaching past the limit is recorded
    assert not out.exists()

    gets = len(store.ranged_gets(bucket_name))
    result = fetch(store, bucket_name, out)

    assert out.read_bytes() == data
    assert (result.parts_reused, result.parts_fetched) == (
        len(saved.parts),
        parts - len(saved.parts),
    )
    assert len(store.ranged_gets(bucket_name)) - gets == result.parts_fetched
    assert leftovers(tmp_path, "out") == []


# -- bad destinations: a typed error before any request ----------------------------------


def _missing_directory(tmp_path: Path) -> dict[str, Any]:
    return {"path": tmp_path / "no-such-dir" / "out"}


def _parent_is_a_file(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "file").write_bytes(b"x")
    return {"path": tmp_path / "file" / "out"}


def _destination_is_a_directory(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inside").write_bytes(b"keep me")
    return {"path": tmp_path / "dir"}


def _name_too_long(tmp_path: Path) -> dict[str, Any]:
    # 250 bytes fit in a directory entry, but not with partdl's temp file suffix.
    return {"path": tmp_path / ("n" * 250)}


def _path_too_long(tmp_path: Path) -> dict[str, Any]:
    return {"path": tmp_path.joinpath(*["d" * 200] * 25, "out")}


def _destination_is_a_pipe(tmp_path: Path) -> dict[str, Any]:
    os.mkfifo(tmp_path / "fifo")
    return {"path": tmp_path / "fifo"}


def _destination_links_to_a_device(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "null").symlink_to("/dev/null")
    return {"path": tmp_path / "null"}


def _checkpoint_directory_missing(tmp_path: Path) -> dict[str, Any]:
    return {"path": tmp_path / "out", "checkpoint_file": tmp_path / "no-such-dir" / "c.dcp"}


BAD_DESTINATIONS: dict[str, tuple[Callable[[Path], dict[str, Any]], type[Exception], str]] = {
    "missing-directory": (_missing_directory, partdl.InvalidArgumentError, "does not exist"),
    "parent-is-a-file": (_parent_is_a_file, partdl.InvalidArgumentError, "is not a directory"),
    "destination-is-a-directory": (
        _destination_is_a_directory,
        partdl.InvalidArgumentError,
        "is a directory",
    ),
    "destination-is-a-pipe": (_destination_is_a_pipe, partdl.InvalidArgumentError, "a pipe"),
    "destination-links-to-a-device": (
        _destination_links_to_a_device,
        partdl.InvalidArgumentError,
        "a character device",
    ),
    "name-too-long": (_name_too_long, partdl.LocalFileError, "file name too long"),
    "path-too-long": (_path_too_long, partdl.LocalFileError, "path too long"),
    "checkpoint-directory-missing": (
        _checkpoint_directory_missing,
        partdl.InvalidArgumentError,
        "does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DESTINATIONS))
def test_bad_destination_is_refused_before_any_request(
    store: LocalStore, bucket_name: str, tmp_path: Path, case: str
) -> None:
    make, error, message = BAD_DESTINATIONS[case]
    store.put(bucket_name, KEY, os.urandom(PART))
    options = make(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    path = options.pop("path")

    with pytest.raises(error, match=message) as raised:
        fetch(store, bucket_name, path, **options)

    if isinstance(raised.value, partdl.LocalFileError):
        assert raised.value.errno == errno.ENAMETOOLONG
    assert object_requests(store, bucket_name) == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "fifo").exists() or (tmp_path / "fifo").is_fifo()
    assert not (tmp_path / "null").exists() or (tmp_path / "null").is_symlink()


def test_read_only_directory_is_refused_before_any_request(
    request: pytest.FixtureRequest, store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, os.urandom(PART))
    if os.geteuid() != 0:
        # Permissions bind this user: a directory without write permission will do.
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(partdl.LocalFileError, match="cannot write") as raised:
                fetch(store, bucket_name, tmp_path / "out")
        finally:
            tmp_path.chmod(0o755)
        assert raised.value.errno == errno.EACCES
    else:
        # Root writes through any permission bits; a read-only file system stops it.
        box: Box = request.getfixturevalue("tmpfs")("ro,size=64k")
        event = box.child.run(**command(store, bucket_name, box.mount / "out"))
        assert_error(event, "LocalFileError", errno.EROFS, str(box.mount), "Read-only")
        assert box.listing() == []
    assert object_requests(store, bucket_name) == []


# -- two downloads, one destination ------------------------------------------------------


def test_second_download_to_the_same_destination_is_refused(
    store: LocalStore, fault_proxy: FaultProxy, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(12 * PART)
    store.put(bucket_name, KEY, data)
    out = tmp_path / "out"
    # The first download (another process) is held in the middle of its third part.
    hold = Fault("hold", after=PART // 2)
    fault_proxy.set_rules(Rule((hold,), method="GET", ranged=True, nth=(2,)))
    first = Child()
    try:
        first.send(
            op="download",
            **command(store, bucket_name, out, endpoint=fault_proxy.endpoint),
            headers={TAG_HEADER: "first"},
        )
        assert fault_proxy.wait_held(1) == 1
        during = sorted(os.listdir(tmp_path))

        bucket = oss_bucket(fault_proxy.endpoint, bucket_name)
        second = OssBackend(bucket, KEY, headers={TAG_HEADER: "second"})
        with pytest.raises(partdl.DownloadLockedError, match=str(out)):
            partdl.download(second, out, part_size=PART)

        assert sorted(os.listdir(tmp_path)) == during  # nothing of the first one touched
        fault_proxy.release()
        event = first.until("result", "error")
    finally:
        first.close()
    assert event["event"] == "result", event
    assert out.read_bytes() == data
    assert leftovers(tmp_path, "out") == []
    assert [r for r in fault_proxy.log() if r.tag == "second"] == []


# -- modes and symlinks ------------------------------------------------------------------


def test_temp_checkpoint_staging_and_lock_files_are_0600(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, os.urandom(8 * PART))
    out = tmp_path / "out"
    with pytest.raises(Interrupt):  # leaves a checkpoint, so the next run rewrites it
        fetch(store, bucket_name, out, progress_callback=stop_after(0.3))
    # umask 0: whatever mode a file gets, partdl chose it.
    child = Child(umask=0)
    try:
        stop = {"event": "os.rename", "endswith": ".new", "nth": 1}
        event = child.run(**command(store, bucket_name, out), stop=stop)
        assert event["event"] == "stopped", event
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    finally:
        child.kill()
    kinds = {name.rsplit(".", 1)[-1] for name in modes}
    assert kinds == {"dcp", "new", "tmp", "lock"}  # checkpoint, its staging copy, temp, lock
    assert set(modes.values()) == {0o600}, modes


def test_symlinks_planted_at_partdl_names_are_never_followed(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    data = os.urandom(6 * PART)
    store.put(bucket_name, KEY, data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victims = {name: elsewhere / name for name in ("checkpoint", "destination", "temp")}
    victims["temp"].write_bytes(bytes(len(data)))  # the size a temp file would have
    for name in ("checkpoint", "destination"):
        victims[name].write_bytes(b"victim " * 1000)
    originals = {name: victim.read_bytes() for name, victim in victims.items()}
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out"

    # A checkpoint naming, as its temp file, a symlink at a name partdl could have
    # chosen; the destination is a symlink too.
    with pytest.raises(Interrupt):
        fetch(store, bucket_name, out, progress_callback=stop_after(0.3))
    saved = decode((work / "out.dcp").read_bytes())
    temp = work / "out.partdl-0badc0de.tmp"
    temp.symlink_to(victims["temp"])
    (work / "out.dcp").write_bytes(encode(dataclasses.replace(saved, temp_path=str(temp))))
    out.symlink_to(victims["destination"])

    result = fetch(store, bucket_name, out)

    assert result.parts_reused == 0  # the temp file could not be trusted
    assert not out.is_symlink()
    assert out.read_bytes() == data
    assert not temp.is_symlink()  # the link itself was removed, not its target

    # A checkpoint that is a symlink is not read, and is replaced rather than written.
    (work / "out.dcp").symlink_to(victims["checkpoint"])
    with pytest.raises(Interrupt):
        fetch(store, bucket_name, out, progress_callback=stop_after(0.3))
    assert not (work / "out.dcp").is_symlink()
    assert decode((work / "out.dcp").read_bytes()).parts
    fetch(store, bucket_name, out)

    assert {name: victim.read_bytes() for name, victim in victims.items()} == originals
    assert out.read_bytes() == data
    assert leftovers(work, "out") == []


def test_a_symlink_at_the_lock_name_is_refused(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, os.urandom(PART))
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "out.partdl.lock").symlink_to(victim)
    with pytest.raises(partdl.LocalFileError, match="lock"):
        fetch(store, bucket_name, tmp_path / "out")
    assert victim.read_bytes() == b"precious"
    assert object_requests(store, bucket_name) == []


# -- the checkpoint is untrusted input ---------------------------------------------------


def _signed(body: dict[str, Any]) -> bytes:
    """A header line with a correct digest: tampering that the digest cannot catch."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(canonical).hexdigest()
    return b'{"sha256":"' + digest.encode() + b'","checkpoint":' + canonical + b"}\n"


def _header(data: bytes) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(data.split(b"\n")[0])["checkpoint"]
    return body


def _edit(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    """Fold the journal into the header, change the header, sign it again."""

    def tamper(data: bytes) -> bytes:
        body = _header(data)
        body["parts"] = sorted([index, crc] for index, crc in decode(data).parts.items())
        change(body)
        return _signed(body)

    return tamper


def _append(index: int, crc: int) -> Callable[[bytes], bytes]:
    return lambda data: data + encode_record(index, crc)


TAMPERING: dict[str, Callable[[bytes], bytes]] = {
    "part-beyond-the-object": _edit(lambda b: b["parts"].append([10_000, 0])),
    "negative-part": _edit(lambda b: b["parts"].append([-1, 0])),
    "part-recorded-twice": _edit(lambda b: b["parts"].append(list(b["parts"][0]))),
    "absurd-part-count": _edit(lambda b: b["parts"].extend([i, 0] for i in range(10_000))),
    "index-as-string": _edit(lambda b: b["parts"].append(["3", 0])),
    "crc-as-float": _edit(lambda b: b["parts"].append([7, 1.5])),
    "crc-out-of-range": _edit(lambda b: b["parts"].append([7, 2**64])),
    "part-size-as-string": _edit(lambda b: b.update(part_size=str(b["part_size"]))),
    "part-size-out-of-bounds": _edit(lambda b: b.update(part_size=1)),
    "negative-object-size": _edit(lambda b: b["object"].update(size=-5)),
    "absurd-object-size": _edit(lambda b: b["object"].update(size=10**30)),
    "object-as-list": _edit(lambda b: b.update(object=[1, 2])),
    "journal-part-beyond-the-object": _append(10_000, 0),
    "journal-line-in-the-middle-torn": lambda data: data + b'{"part":3,"cr\n' + encode_record(4, 0),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_untrusted_checkpoint_content_means_starting_over(
    store: LocalStore, bucket_name: str, tmp_path: Path, tampering: str
) -> None:
    data = os.urandom(10 * PART)
    store.put(bucket_name, KEY, data)
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        fetch(store, bucket_name, out, progress_callback=stop_after(0.5))
    checkpoint = tmp_path / "out.dcp"
    assert decode(checkpoint.read_bytes()).parts  # a usable checkpoint, before tampering
    checkpoint.write_bytes(TAMPERING[tampering](checkpoint.read_bytes()))

    result = fetch(store, bucket_name, out)

    assert out.read_bytes() == data
    assert (result.parts_reused, result.parts_fetched) == (0, 10)
    assert leftovers(tmp_path, "out") == []  # the old temp file went too


# -- no secret in the checkpoint, the logs or the errors ---------------------------------

ACCESS_KEY_ID = "LTAI-partdl-test-key-id"
ACCESS_KEY_SECRET = "very-secret-access-key-0123456789"
SECURITY_TOKEN = "sts-security-token-ABCDEF0123456789"


def _texts(exc: BaseException) -> list[str]:
    """partdl's own messages for ``exc`` and every partdl error it was raised from."""
    texts = []
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, partdl.PartdlError):
            texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


def _assert_no_secret(texts: list[str], secrets: tuple[str, ...]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into: {text}"


@pytest.fixture
def partdl_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="partdl")
    return caplog


def test_oss_credentials_never_reach_checkpoint_logs_or_errors(
    store: LocalStore,
    fault_proxy: FaultProxy,
    bucket_name: str,
    tmp_path: Path,
    partdl_logs: pytest.LogCaptureFixture,
) -> None:
    data = os.urandom(20 * PART)
    store.put(bucket_name, KEY, data)
    sts = oss2.credentials.StaticCredentialsProvider(
        ACCESS_KEY_ID, ACCESS_KEY_SECRET, SECURITY_TOKEN
    )
    bucket = oss2.Bucket(
        oss2.ProviderAuthV4(sts), fault_proxy.endpoint, bucket_name, region=OSS_REGION
    )
    out = tmp_path / "out"
    secrets = (ACCESS_KEY_ID, ACCESS_KEY_SECRET, SECURITY_TOKEN)
    texts: list[str] = []
    checkpoints: list[bytes] = []

    def keep_checkpoint(consumed: int, total: int) -> None:
        if (tmp_path / "out.dcp").exists():
            checkpoints.append((tmp_path / "out.dcp").read_bytes())

    # Servers that repeat the request's credentials in their error messages.
    echo = Fault("status", status=403, code="AccessDenied", echo="Authorization")
    slow = Fault("status", status=503, code="SlowDown", echo="x-oss-security-token")
    for fault in (echo, slow, Fault("reset")):
        fault_proxy.set_rules(Rule((fault,), method="GET", ranged=True, from_nth=2))
        with pytest.raises(partdl.PartdlError) as raised:
            partdl.download(
                OssBackend(bucket, KEY, stall_timeout=0.5),
                out,
                part_size=PART,
                task_num=1,
                retry=QUICK,
                progress_callback=keep_checkpoint,
            )
        texts += _texts(raised.value)
    fault_proxy.set_rules()
    partdl.download(OssBackend(bucket, KEY), out, part_size=PART, progress_callback=keep_checkpoint)

    assert out.read_bytes() == data
    assert checkpoints
    # The requests did carry the secrets, so their absence below means something.
    assert fault_proxy.log()
    texts += [m.decode(errors="replace") for m in checkpoints]
    texts += [record.getMessage() for record in partdl_logs.records]
    assert any("AccessDenied" in text for text in texts)
    _assert_no_secret(texts, secrets)


def test_signed_url_query_never_reaches_checkpoint_logs_or_errors(
    store: LocalStore,
    fault_proxy: FaultProxy,
    bucket_name: str,
    tmp_path: Path,
    partdl_logs: pytest.LogCaptureFixture,
) -> None:
    data = os.urandom(6 * PART)
    store.put(bucket_name, KEY, data)
    signature = "c2lnbmF0dXJlLXRoYXQtbXVzdC1zdGF5LXNlY3JldA%3D%3D"
    key_id = "LTAI-signing-key-id"
    url = (
        f"{fault_proxy.endpoint}/{bucket_name}/{KEY}"
        f"?OSSAccessKeyId={key_id}&Expires=4102444800&Signature={signature}"
    )
    out = tmp_path / "out"
    texts: list[str] = []
    checkpoint: list[bytes] = []

    def keep_checkpoint(consumed: int, total: int) -> None:
        if (tmp_path / "out.dcp").exists():
            checkpoint.append((tmp_path / "out.dcp").read_bytes())

    for fault in (Fault("status", status=503, code="SlowDown"), Fault("reset")):
        fault_proxy.set_rules(Rule((fault,), method="GET", ranged=True, from_nth=3))
        with pytest.raises(partdl.PartdlError) as raised:
            download_url(url, out, PART, 1, retry=QUICK, progress_callback=keep_checkpoint)
        texts += _texts(raised.value)
        texts.append("".join(traceback.format_exception(raised.value)))
    fault_proxy.set_rules()
    download_url(url, out, PART, 2, progress_callback=keep_checkpoint)

    assert out.read_bytes() == data
    assert checkpoint
    assert all(r.path.endswith(signature) for r in fault_proxy.log())  # it was sent
    texts += [m.decode(errors="replace") for m in checkpoint]
    texts += [record.getMessage() for record in partdl_logs.records]
    _assert_no_secret(texts, (signature, key_id, "Signature="))


def test_a_file_that_took_the_checkpoints_name_is_not_removed(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    # Another download's destination can be named like this one's checkpoint.
    data = os.urandom(6 * PART)
    store.put(bucket_name, "k", data)
    out, checkpoint = tmp_path / "dest", tmp_path / "dest.dcp"
    taken: list[bool] = []

    def progress(done: int, total: int) -> None:
        if not taken and checkpoint.exists():
            mine = tmp_path / "mine"
            mine.write_bytes(b"someone else's file")
            os.replace(mine, checkpoint)
            taken.append(True)

    partdl.download_file(
        store.oss_bucket(bucket_name), "k", out, part_size=PART, progress_callback=progress
    )

    assert taken
    assert out.read_bytes() == data
    assert checkpoint.read_bytes() == b"someone else's file"
    # Without such a file, the checkpoint goes as always.
    partdl.download_file(store.oss_bucket(bucket_name), "k", tmp_path / "again", part_size=PART)
    assert not (tmp_path / "again.dcp").exists()


def test_a_path_given_as_bytes_works_and_no_path_is_refused(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, "k", b"data")
    bucket = store.oss_bucket(bucket_name)

    partdl.download_file(bucket, "k", os.fsencode(tmp_path / "out"))  # type: ignore[arg-type]

    assert (tmp_path / "out").read_bytes() == b"data"
    with pytest.raises(partdl.InvalidArgumentError, match="must be a path, got 5"):
        partdl.download_file(bucket, "k", 5)  # type: ignore[arg-type]
