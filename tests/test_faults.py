"""The fault-injection suite: a real proxy process misbehaves between partdl and the store.

Every scenario ends in a byte-identical file or the documented typed error, and never
in a mixed or truncated destination. Faults are chosen by ordinal or by a seeded draw
per request (see tests/faultproxy.py), so each run faults the same requests.
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import partdl
from partdl.checkpoint import decode
from tests.faultproxy import Fault, FaultProxy, Record, Rule
from tests.helpers import PART, leftovers, oss_bucket
from tests.store import LocalStore, Seen, oss_v2_client, s3_client

KEY = "data/object.bin"
# Fast backoff: the tests are about what is retried, not how long it waits.
QUICK = partdl.RetryPolicy(attempts=6, backoff=0.005, backoff_max=0.02)
STALL = 0.5  # the stall timeout the tests use; the proxy stalls for much longer
# oss2's own timeout (connect and each read), longer than the proxy ever stalls: a
# stalled body is abandoned by partdl's stall timeout or not at all.
SDK_TIMEOUT = 60.0
OLD = b"the previous version of the file"


@dataclasses.dataclass
class Scene:
    """One bucket in the store, reached through the fault proxy."""

    store: LocalStore
    proxy: FaultProxy
    bucket: str
    tmp: Path
    sdk: str = "oss2"  # or "ossv2": the OSS SDK V2 client through partdl.OssV2Bucket

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def put(self, data: bytes, *, checksum: bool = True) -> str:
        return self.store.put(self.bucket, KEY, data, checksum=checksum)

    def download(self, **options: Any) -> partdl.DownloadResult:
        settings: dict[str, Any] = {
            "part_size": PART,
            "task_num": 4,
            "retry": QUICK,
            "stall_timeout": STALL,
        }
        settings.update(options)
        timeout = settings.pop("connect_timeout", SDK_TIMEOUT)
        bucket: Any
        if self.sdk == "ossv2":
            # One attempt per call: the retries counted are partdl's.
            client = oss_v2_client(
                self.proxy.endpoint,
                connect_timeout=timeout,
                readwrite_timeout=timeout,
                retry_max_attempts=1,
            )
            bucket = partdl.OssV2Bucket(client, self.bucket)
        else:
            bucket = oss_bucket(self.proxy.endpoint, self.bucket, connect_timeout=timeout)
        return partdl.download_file(bucket, KEY, self.out, **settings)

    def log(self) -> list[Record]:
        prefix = f"/{self.bucket}/"
        return [r for r in self.proxy.log() if r.path.startswith(prefix)]

    def gets(self) -> list[Record]:
        return [r for r in self.log() if r.method == "GET" and r.range]

    def heads(self) -> list[Record]:
        return [r for r in self.log() if r.method == "HEAD"]


@pytest.fixture
def scene(store: LocalStore, fault_proxy: FaultProxy, bucket_name: str, tmp_path: Path) -> Scene:
    return Scene(store, fault_proxy, bucket_name, tmp_path)


def first_byte(record: Record) -> int:
    assert record.range is not None
    return int(record.range.split("=")[1].split("-")[0])


def part_of(record: Record) -> int:
    return first_byte(record) // PART


class ProgressLog:
    """Every (consumed, total) the progress callback saw."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.totals: set[int] = set()

    def __call__(self, consumed: int, total: int) -> None:
        self.values.append(consumed)
        self.totals.add(total)

    def assert_counted_once(self, size: int) -> None:
        assert self.totals == {size}
        assert self.values == sorted(self.values), "progress went backwards"
        assert max(self.values) == size, "bytes were counted twice (or not at all)"
        assert self.values[-1] == size


# The OSS clients the suite drives through the proxy.
SDKS = ["oss2", "ossv2"]

# -- one fault, once: retried, and the download is identical ---------------------------

ONE_OFF = {
    "reset": Fault("reset", after=20_000),
    "reset-before-body": Fault("reset"),
    "http-500": Fault("status", status=500, code="InternalError"),
    "http-503-slowdown": Fault("status", status=503, code="SlowDown"),
    "http-429": Fault("status", status=429, code="TooManyRequests"),
    "short-body": Fault("short", after=30_000),
    "whole-object-200": Fault("whole"),
    "wrong-content-range": Fault("content_range", mode="shift"),
    "stall-mid-body": Fault("stall", after=10_000),
    "stall-before-headers": Fault("stall_headers"),
}


@pytest.mark.parametrize("name", sorted(ONE_OFF))
@pytest.mark.parametrize("sdk", SDKS)
def test_a_fault_on_two_part_requests_is_retried(scene: Scene, sdk: str, name: str) -> None:
    scene = dataclasses.replace(scene, sdk=sdk)
    data = os.urandom(12 * PART + 321)
    scene.put(data)
    scene.out.write_bytes(OLD)
    fault = ONE_OFF[name]
    scene.proxy.set_rules(
        Rule((fault,), method="GET", range=f"bytes=0-{PART - 1}", times=1),
        Rule((fault,), method="GET", range=f"bytes={5 * PART}-{6 * PART - 1}", times=1),
    )

    # Before any header arrives only the SDK's timeout can act; after, partdl's.
    sdk_timeout = STALL if name == "stall-before-headers" else SDK_TIMEOUT
    result = scene.download(connect_timeout=sdk_timeout)

    assert scene.out.read_bytes() == data
    assert leftovers(scene.tmp, "out") == []
    assert (result.parts_fetched, result.restarts) == (13, 0)
    gets = scene.gets()
    faulted = [r for r in gets if r.fault]
    assert len(faulted) == 2
    # Exactly one more request per fault, for the same part.
    assert len(gets) == 13 + 2
    retried = Counter(part_of(r) for r in gets)
    assert sorted(retried[part_of(r)] for r in faulted) == [2, 2]
    for record in faulted:
        if record.ended is not None:
            assert record.ended == "client", "partdl did not abandon the stalled connection"


@pytest.mark.parametrize(
    "fault",
    [Fault("status", status=503, code="SlowDown"), Fault("reset"), Fault("stall_headers")],
    ids=["503", "reset", "stall"],
)
def test_a_faulted_head_is_retried(scene: Scene, fault: Fault) -> None:
    data = os.urandom(3 * PART)
    scene.put(data)
    scene.proxy.set_rules(Rule((fault,), method="HEAD", nth=(0, 1)))
    scene.download(connect_timeout=STALL)
    assert scene.out.read_bytes() == data
    assert len(scene.heads()) == 3


@pytest.mark.parametrize("sdk", SDKS)
def test_retry_continues_mid_part_with_its_crc_and_if_match(scene: Scene, sdk: str) -> None:
    scene = dataclasses.replace(scene, sdk=sdk)
    data = os.urandom(6 * PART)
    etag = scene.put(data)
    short = Fault("short", after=30_000)
    scene.proxy.set_rules(
        Rule((short,), method="GET", ranged=True, path_prefix=f"/{scene.bucket}/", times=1)
    )
    progress = ProgressLog()

    result = scene.download(task_num=1, progress_callback=progress)

    assert scene.out.read_bytes() == data
    assert result.verified  # the CRC carried across the retry matches the server's
    first, again = scene.gets()[:2]
    assert (first.range, first.fault, first.sent) == (f"bytes=0-{PART - 1}", "short", 30_000)
    assert again.range == f"bytes=30000-{PART - 1}"
    assert {r.if_match for r in scene.gets()} == {etag}
    progress.assert_counted_once(len(data))


def test_twenty_percent_of_part_requests_faulted_at_random(
    scene: Scene, rng: random.Random
) -> None:
    data = os.urandom(40 * PART + 4321)
    scene.put(data)
    scene.out.write_bytes(OLD)
    kinds = (
        Fault("reset", after=1_000),
        Fault("reset", after=60_000),
        Fault("status", status=500, code="InternalError"),
        Fault("status", status=503, code="SlowDown"),
        Fault("status", status=429, code="TooManyRequests"),
        Fault("short", after=50_000),
        Fault("whole"),
        Fault("content_range", mode="shift"),
        Fault("stall", after=5_000),
    )
    seed = rng.randrange(2**32)
    scene.proxy.set_rules(Rule(kinds, method="GET", ranged=True, probability=0.2), seed=seed)
    progress = ProgressLog()

    result = scene.download(
        retry=dataclasses.replace(QUICK, attempts=10), progress_callback=progress
    )

    assert scene.out.read_bytes() == data
    assert leftovers(scene.tmp, "out") == []
    assert result.restarts == 0
    gets = scene.gets()
    faulted = [r for r in gets if r.fault]
    # Seeded: the same requests are faulted on every run; about a fifth of them.
    assert 0.1 * len(gets) <= len(faulted) <= 0.35 * len(gets), (seed, len(faulted), len(gets))
    assert len(gets) == 41 + len(faulted)
    assert {part_of(r) for r in gets if r.complete and not r.fault} == set(range(41))
    progress.assert_counted_once(len(data))


# -- faults that outlast the retry policy ----------------------------------------------


def test_every_request_faulted_fails_typed_then_resumes_only_missing_parts(
    scene: Scene,
) -> None:
    data = os.urandom(30 * PART + 5)
    scene.put(data)
    scene.out.write_bytes(OLD)
    policy = dataclasses.replace(QUICK, attempts=3)
    # The first 10 part requests go through; from then on every one fails.
    scene.proxy.set_rules(
        Rule((Fault("status", status=503, code="SlowDown"),), method="GET", from_nth=10)
    )

    with pytest.raises(partdl.TransferError, match="gave up after 3 failed attempts"):
        scene.download(retry=policy)

    assert scene.out.read_bytes() == OLD
    checkpoint = scene.tmp / "out.dcp"
    saved = decode(checkpoint.read_bytes())
    assert 0 < len(saved.parts) <= 10
    assert Path(saved.temp_path).exists()
    attempts = Counter(first_byte(r) for r in scene.gets() if r.fault)
    assert max(attempts.values()) == 3  # the part that gave up tried exactly 3 times
    assert all(count <= 3 for count in attempts.values())

    scene.proxy.set_rules()
    before = len(scene.gets())
    result = scene.download(retry=policy)

    assert scene.out.read_bytes() == data
    assert (result.parts_reused, result.parts_fetched) == (len(saved.parts), 31 - len(saved.parts))
    assert len(scene.gets()) - before == result.parts_fetched
    assert leftovers(scene.tmp, "out") == []


def test_head_faulted_every_time_fails_typed_and_leaves_nothing(scene: Scene) -> None:
    scene.put(os.urandom(3 * PART))
    scene.proxy.set_rules(Rule((Fault("status", status=503, code="SlowDown"),), method="HEAD"))
    with pytest.raises(partdl.TransferError, match=r"looking up oss://.*gave up after 4 .*: HEAD "):
        scene.download(retry=dataclasses.replace(QUICK, attempts=4))
    assert len(scene.heads()) == 4
    assert scene.gets() == []
    assert os.listdir(scene.tmp) == []


def test_deadline_bounds_the_time_a_part_keeps_failing(scene: Scene) -> None:
    scene.put(os.urandom(2 * PART))
    scene.proxy.set_rules(Rule((Fault("status", status=500, code="InternalError"),), method="GET"))
    policy = partdl.RetryPolicy(attempts=100_000, backoff=0.001, backoff_max=0.01, deadline=0.3)
    with pytest.raises(partdl.TransferError, match="gave up"):
        scene.download(retry=policy, task_num=1)
    attempts = Counter(first_byte(r) for r in scene.gets())
    assert 1 < attempts[0] < 100_000  # the deadline stopped it, not the attempt count


def test_connection_refused_is_retried_then_typed(tmp_path: Path) -> None:
    # A port that was just free: nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bucket = oss_bucket(f"http://127.0.0.1:{port}", "bucket")
    policy = dataclasses.replace(QUICK, attempts=3)
    with pytest.raises(
        partdl.TransferError, match=r"gave up after 3 .*no answer \(ConnectionError\)"
    ):
        partdl.download_file(bucket, KEY, tmp_path / "out", retry=policy)
    assert os.listdir(tmp_path) == []


# -- errors a retry cannot fix are not retried -----------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (403, "AccessDenied", partdl.AccessDeniedError),
        (404, "NoSuchKey", partdl.NotFoundError),
        (400, "InvalidArgument", partdl.PartdlError),
    ],
)
def test_permanent_errors_are_not_retried(
    scene: Scene, status: int, code: str, error: type[Exception]
) -> None:
    scene.put(os.urandom(5 * PART))
    scene.out.write_bytes(OLD)
    scene.proxy.set_rules(Rule((Fault("status", status=status, code=code),), method="GET"))
    with pytest.raises(error) as raised:
        scene.download(task_num=1)
    assert not isinstance(raised.value, partdl.TransferError)
    # No range was asked for twice. (With one worker, the part queued behind the
    # first may still start before the failure stops the window.)
    ranges = Counter(r.range for r in scene.gets())
    assert set(ranges.values()) == {1}
    assert len(ranges) <= 2
    assert scene.out.read_bytes() == OLD
    if status == 404:
        # The object is gone: nothing can be resumed, so nothing is kept.
        assert leftovers(scene.tmp, "out") == []


@pytest.mark.parametrize("sdk", SDKS)
def test_412_restarts_on_a_fresh_head_and_then_gives_up(scene: Scene, sdk: str) -> None:
    scene = dataclasses.replace(scene, sdk=sdk)
    scene.put(os.urandom(5 * PART))
    scene.out.write_bytes(OLD)
    precondition = Fault("status", status=412, code="PreconditionFailed")
    scene.proxy.set_rules(Rule((precondition,), method="GET"))
    with pytest.raises(partdl.ObjectChangedError):
        scene.download(task_num=1)
    # A refused GET leads to a new HEAD and a new plan, never to the same GET again.
    assert len(scene.heads()) == 4  # the first, then one per restart (3 at most)
    rounds: list[list[str | None]] = []
    for record in scene.log():
        if record.method == "HEAD":
            rounds.append([])
        else:
            rounds[-1].append(record.range)
    assert all(1 <= len(ranges) == len(set(ranges)) <= 2 for ranges in rounds)
    assert scene.out.read_bytes() == OLD
    assert leftovers(scene.tmp, "out") == []


# -- the object changes under the download ---------------------------------------------


def overwrite_on(scene: Scene, nth: int, new: bytes) -> None:
    """Overwrite the object just before the store serves its ``nth`` ranged GET."""
    seen: list[Seen] = []

    def hook(request: Seen) -> None:
        if request.bucket == scene.bucket and request.range:
            seen.append(request)
            if len(seen) == nth:
                scene.put(new)

    scene.store.before_request = hook


@pytest.fixture
def restore_hook(store: LocalStore) -> Any:
    yield
    store.before_request = None


@pytest.mark.usefixtures("restore_hook")
@pytest.mark.parametrize(
    ("honours_if_match", "new_size"),
    [(True, 25 * PART + 1), (False, 25 * PART + 1), (False, 30 * PART), (False, 7 * PART)],
    ids=["if-match", "no-if-match-resized", "no-if-match-same-size", "no-if-match-shrunk"],
)
def test_object_overwritten_between_parts_gives_exactly_the_new_version(
    scene: Scene, honours_if_match: bool, new_size: int
) -> None:
    scene.put(os.urandom(30 * PART))
    scene.out.write_bytes(OLD)
    new = os.urandom(new_size)
    overwrite_on(scene, 12, new)
    if not honours_if_match:
        scene.proxy.set_rules(Rule((Fault("strip_if_match"),), method="GET"))

    result = scene.download()

    assert scene.out.read_bytes() == new
    assert result.restarts == 1
    assert leftovers(scene.tmp, "out") == []


@pytest.mark.parametrize("sdk", SDKS)
def test_content_range_of_another_size_restarts_the_download(scene: Scene, sdk: str) -> None:
    scene = dataclasses.replace(scene, sdk=sdk)
    data = os.urandom(9 * PART)
    scene.put(data)
    lie = Fault("content_range", mode="total")
    scene.proxy.set_rules(Rule((lie,), method="GET", ranged=True, nth=(3,)))
    result = scene.download()
    assert scene.out.read_bytes() == data
    assert result.restarts == 1
    assert len(scene.heads()) == 2


def _oss_download(scene: Scene, **options: Any) -> partdl.DownloadResult:
    return scene.download(**options)


def _s3_download(scene: Scene, **options: Any) -> partdl.DownloadResult:
    bucket = partdl.S3Bucket(_proxied_s3(scene), scene.bucket)
    return partdl.download_file(bucket, KEY, scene.out, **options)


def _http_download(scene: Scene, **options: Any) -> partdl.DownloadResult:
    url = _proxied_s3(scene).generate_presigned_url(
        "get_object", Params={"Bucket": scene.bucket, "Key": KEY}
    )
    return partdl.download_url(url, scene.out, **options)


def _proxied_s3(scene: Scene) -> Any:
    return s3_client(scene.proxy.endpoint)


def _oss_v2_download(scene: Scene, **options: Any) -> partdl.DownloadResult:
    return dataclasses.replace(scene, sdk="ossv2").download(**options)


DOWNLOADS = {
    "oss": _oss_download,
    "ossv2": _oss_v2_download,
    "s3": _s3_download,
    "http": _http_download,
}
ONE_AT_A_TIME: dict[str, Any] = {
    "part_size": PART,
    "task_num": 1,
    "retry": QUICK,
    "stall_timeout": STALL,
}


def stats(scene: Scene) -> list[Record]:
    """The requests that pinned the object: HEADs, or an HTTP target's bytes=0-0 probe."""
    return [
        r
        for r in scene.log()
        if r.method == "HEAD" or (r.range == "bytes=0-0" and r.if_match is None)
    ]


@pytest.mark.usefixtures("restore_hook")
@pytest.mark.parametrize("backend", sorted(DOWNLOADS))
def test_same_size_overwrite_without_if_match_or_checksum_gives_exactly_the_new_version(
    scene: Scene, backend: str
) -> None:
    """No If-Match upstream and no whole-object checksum: only the answers' ETags tell."""
    scene.put(os.urandom(12 * PART), checksum=False)
    scene.out.write_bytes(OLD)
    new = os.urandom(12 * PART)
    destination_then: list[bytes] = []
    parts: list[Seen] = []

    def overwrite_before_the_fifth_part(request: Seen) -> None:
        if request.bucket == scene.bucket and request.range and request.range != "bytes=0-0":
            parts.append(request)
            if len(parts) == 5:
                scene.put(new, checksum=False)
                destination_then.append(scene.out.read_bytes())

    scene.store.before_request = overwrite_before_the_fifth_part
    scene.proxy.set_rules(Rule((Fault("strip_if_match"),), method="GET"))

    result = DOWNLOADS[backend](scene, **ONE_AT_A_TIME)

    assert scene.out.read_bytes() == new
    assert result.restarts == 1
    assert not result.verified, "a server checksum would have hidden a missing check"
    assert destination_then == [OLD]
    assert all(r.if_match is not None for r in scene.gets() if r.range != "bytes=0-0")
    assert leftovers(scene.tmp, "out") == []


@pytest.mark.parametrize("backend", sorted(DOWNLOADS))
def test_an_etag_rewritten_once_by_a_proxy_is_a_restart(scene: Scene, backend: str) -> None:
    data = os.urandom(6 * PART)
    scene.put(data, checksum=False)
    scene.proxy.set_rules(Rule((Fault("etag"),), method="GET", ranged=True, nth=(2,)))

    result = DOWNLOADS[backend](scene, **ONE_AT_A_TIME)

    assert scene.out.read_bytes() == data
    assert result.restarts == 1
    assert len(stats(scene)) == 2


@pytest.mark.parametrize("backend", sorted(DOWNLOADS))
def test_etags_always_rewritten_by_a_proxy_end_in_object_changed(
    scene: Scene, backend: str
) -> None:
    scene.put(os.urandom(6 * PART), checksum=False)
    scene.out.write_bytes(OLD)
    scene.proxy.set_rules(Rule((Fault("etag"),), method="GET", ranged=True))

    with pytest.raises(partdl.ObjectChangedError):
        DOWNLOADS[backend](scene, **ONE_AT_A_TIME)

    assert len(stats(scene)) == 4  # the first, then one per restart (3 at most)
    assert scene.out.read_bytes() == OLD
    assert leftovers(scene.tmp, "out") == []


# -- every backend abandons a stalled body -------------------------------------------------


@pytest.mark.parametrize(
    "download", [_s3_download, _http_download, _oss_v2_download], ids=["s3", "http", "ossv2"]
)
def test_a_stalled_body_is_abandoned_by_every_backend(scene: Scene, download: Any) -> None:
    data = os.urandom(6 * PART)
    scene.put(data)
    scene.proxy.set_rules(
        Rule((Fault("stall", after=10_000),), method="GET", range=f"bytes=0-{PART - 1}", times=1)
    )

    download(scene, part_size=PART, task_num=2, retry=QUICK, stall_timeout=STALL)

    assert scene.out.read_bytes() == data
    stalled = [r for r in scene.gets() if r.fault]
    assert len(stalled) == 1
    assert stalled[0].ended == "client", "partdl did not abandon the stalled connection"
    part_zero = [r for r in scene.gets() if r.range and r.range.endswith(f"-{PART - 1}")]
    assert len(part_zero) == 2  # the stalled request and its retry
