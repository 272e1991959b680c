"""Trees on executors: a ProcessPoolExecutor and a Dask LocalCluster, against the local store."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import boto3
import distributed
import pytest

import partdl
from partdl import cli
from partdl.distribute import TaskSpec, balance
from partdl.execute import PlannedObject
from partdl.listing import ListedObject
from partdl.options import TransferOptions
from partdl.state import checkpoint_path
from tests.helpers import PART, recorded_parts
from tests.store import LocalStore, Seen
from tests.test_batch import make_bucket, tree
from tests.test_cli_batch import env

__all__ = ["env"]  # a fixture, used by name

PREFIX = "set/"
TASK_NUM = 3


@pytest.fixture(params=["oss", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def a_tree() -> dict[str, bytes]:
    objects = {f"{PREFIX}small/{n:03}.bin": os.urandom(1000 + n) for n in range(40)}
    objects.update({f"{PREFIX}big/{n}.bin": os.urandom(6 * PART + n) for n in range(3)})
    objects[PREFIX + "empty"] = b""
    return objects


def put_all(store: LocalStore, bucket: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        store.put(bucket, key, data)


def expected(objects: dict[str, bytes]) -> dict[str, bytes]:
    return {key[len(PREFIX) :]: data for key, data in objects.items()}


@pytest.fixture
def processes() -> Iterator[ProcessPoolExecutor]:
    # spawn: the test process runs the store's threads, which a fork would copy mid-lock.
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


# -- balancing: a plain table ------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "count", "loads"),
    [
        ([], 3, []),
        ([5], 3, [5]),
        ([5, 5, 5, 5], 2, [10, 10]),
        ([9, 1, 1, 1, 1, 1, 1, 1, 1, 1], 2, [9, 9]),
        ([100, 1, 1, 1], 3, [100, 2, 1]),
        ([7, 6, 5, 4, 3, 2, 1], 3, [10, 9, 9]),
    ],
)
def test_balance_by_weight(weights: list[int], count: int, loads: list[int]) -> None:
    groups = balance(weights, lambda w: w, count)
    assert sorted((sum(g) for g in groups), reverse=True) == loads
    assert sorted(w for g in groups for w in g) == sorted(weights)


def test_balance_needs_a_group() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        balance([1], lambda w: w, 0)


# -- what travels to a worker ------------------------------------------------------------


def test_an_s3_bucket_pickles_with_explicit_keys_and_without_chain_credentials(
    store: LocalStore, bucket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(bucket_name, "k", b"payload")
    explicit = partdl.S3Bucket(store.s3, bucket_name)
    again = pickle.loads(pickle.dumps(explicit))
    assert again.client.get_object(Bucket=bucket_name, Key="k")["Body"].read() == b"payload"

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FROMTHECHAINKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "FROMTHECHAINSECRET")
    chained = boto3.client("s3", endpoint_url=store.endpoint, region_name="us-east-1")
    data = pickle.dumps(partdl.S3Bucket(chained, bucket_name))
    assert b"FROMTHECHAIN" not in data
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    rebuilt = pickle.loads(data)  # resolves its own credentials, from this environment
    assert rebuilt.client.get_object(Bucket=bucket_name, Key="k")["Body"].read() == b"payload"


def test_a_task_repr_shows_no_bucket_or_secret(store: LocalStore, bucket_name: str) -> None:
    secret = "a-secret-that-must-not-show"
    client = boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=secret,
    )
    backend = partdl.api.bucket_backend(
        partdl.S3Bucket(client, bucket_name), "k", TransferOptions()
    )
    plan = PlannedObject("k", backend, "/tmp/x", ListedObject("k", 10, '"e"', None), None)
    spec = TaskSpec((plan,), TransferOptions(), None)
    assert repr(spec) == "TaskSpec(1 objects, about 10 bytes)"
    assert secret not in repr(spec)
    # The keys were given explicitly: they must travel (inside the pickle, never the repr).
    travelled = pickle.loads(pickle.dumps(spec)).plans[0].backend
    assert travelled.for_key("k").source == f"s3://{bucket_name}/k"


# -- a tree on processes -----------------------------------------------------------------


def test_a_tree_on_two_processes_is_identical_and_bounded(
    store: LocalStore,
    bucket_name: str,
    kind: str,
    tmp_path: Path,
    processes: ProcessPoolExecutor,
) -> None:
    objects = a_tree()
    put_all(store, bucket_name, objects)
    root = tmp_path / "out"
    bucket = make_bucket(kind, store, bucket_name)

    result = partdl.download_prefix(
        bucket, PREFIX, root, part_size=PART, task_num=TASK_NUM, executor=processes
    )

    assert tree(root) == expected(objects)
    assert sorted(result.downloaded) == sorted(objects)
    assert result.bytes_downloaded == sum(map(len, objects.values()))
    assert 1 <= store.peak_in_flight(bucket_name) <= 2 * TASK_NUM
    # The driver recorded the tree: a rerun, here and without an executor, only lists.
    before = len(store.requests(bucket_name, "GET"))
    again = partdl.download_prefix(bucket, PREFIX, root, part_size=PART, task_num=TASK_NUM)
    gets = store.requests(bucket_name, "GET")[before:]
    assert [g for g in gets if g.key] == []
    assert sorted(again.skipped) == sorted(objects)


def test_download_many_on_processes(
    store: LocalStore, bucket_name: str, tmp_path: Path, processes: ProcessPoolExecutor
) -> None:
    objects = a_tree()
    put_all(store, bucket_name, objects)
    bucket = store.oss_bucket(bucket_name)
    items = [(bucket, key, tmp_path / key) for key in objects]

    result = partdl.download_many(items, part_size=PART, task_num=2, executor=processes)

    assert sorted(result.downloaded) == sorted(objects)
    assert all((tmp_path / key).read_bytes() == data for key, data in objects.items())


def test_a_worker_killed_mid_tree_fails_its_objects_and_a_rerun_fetches_only_the_rest(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    processes: ProcessPoolExecutor,
) -> None:
    objects = a_tree()
    put_all(store, bucket_name, objects)
    root = tmp_path / "out"
    bucket = store.oss_bucket(bucket_name)
    victim = PREFIX + "big/1.bin"
    parts_seen: list[Seen] = []

    def kill_the_workers_at_the_third_part(seen: Seen) -> None:
        if seen.bucket == bucket_name and seen.key == victim and seen.range:
            parts_seen.append(seen)
            if len(parts_seen) == 3:
                for child in multiprocessing.active_children():
                    os.kill(child.pid or 0, signal.SIGKILL)

    store.before_request = kill_the_workers_at_the_third_part
    try:
        with pytest.raises(partdl.PartialDownloadError) as caught:
            partdl.download_prefix(
                bucket, PREFIX, root, part_size=PART, task_num=TASK_NUM, executor=processes
            )
    finally:
        store.before_request = None
    first = caught.value.result
    assert victim in first.failed
    assert all(isinstance(e, partdl.TransferError) for e in first.failed.values())
    assert sorted([*first.downloaded, *first.failed]) == sorted(objects)

    saved = {}
    for key in first.failed:
        path = Path(checkpoint_path(str(root), key[len(PREFIX) :]))
        saved[key] = set(recorded_parts(path)) if path.exists() else set()
    before = len(store.requests(bucket_name, "GET"))
    second = partdl.download_prefix(bucket, PREFIX, root, part_size=PART, task_num=TASK_NUM)

    assert tree(root) == expected(objects)
    assert sorted(second.downloaded) == sorted(first.failed)
    assert sorted(second.skipped) == sorted(first.downloaded)
    fetched = [g for g in store.requests(bucket_name, "GET")[before:] if g.key]
    # A failed object whose checkpoint already held every part (the kill came between
    # its last part and its rename) is finished from the disk, without a GET.
    complete = {
        key for key, parts in saved.items() if parts and len(parts) == -(-len(objects[key]) // PART)
    }
    assert set(first.failed) - complete <= {g.key for g in fetched} <= set(first.failed)
    for key in first.failed:
        parts = -(-len(objects[key]) // PART)
        if parts <= 1:
            continue
        touched = {
            int(g.range.split("=")[1].split("-")[0]) // PART
            for g in fetched
            if g.key == key and g.range
        }
        # Every part its checkpoint recorded is reused, never fetched again.
        assert touched == set(range(parts)) - saved[key], key
    assert list((root / ".partdl" / "checkpoints").glob("*")) == []


# -- a tree on a Dask cluster ------------------------------------------------------------


def test_a_tree_on_a_dask_local_cluster(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    objects = a_tree()
    put_all(store, bucket_name, objects)
    root = tmp_path / "out"
    bucket = store.oss_bucket(bucket_name)
    with (
        distributed.LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        result = partdl.download_prefix(
            bucket,
            PREFIX,
            root,
            part_size=PART,
            task_num=TASK_NUM,
            executor=client.get_executor(),
        )
    assert tree(root) == expected(objects)
    assert sorted(result.downloaded) == sorted(objects)
    assert 1 <= store.peak_in_flight(bucket_name) <= 2 * TASK_NUM


def test_an_executor_must_be_an_executor(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    with pytest.raises(partdl.InvalidArgumentError, match=r"concurrent\.futures\.Executor"):
        partdl.download_prefix(store.oss_bucket(bucket_name), "", tmp_path, executor=object())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# -- the CLI -------------------------------------------------------------------------------


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("scheme", ["oss", "s3"])
def test_the_cli_spreads_a_tree_over_processes(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    scheme: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    objects = a_tree()
    put_all(store, bucket_name, objects)
    root = tmp_path / "out"
    argv = [f"{scheme}://{bucket_name}/{PREFIX}", str(root), "-r", "--processes", "2"]
    argv += ["--endpoint", store.endpoint, "--part-size", "100KiB", "--task-num", "2", "--json"]

    assert cli.main(argv) == 0

    summary = json.loads(capsys.readouterr().out)
    assert summary["downloaded"] == len(objects)
    assert tree(root) == expected(objects)
    assert 1 <= store.peak_in_flight(bucket_name) <= 2 * 2


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("flag", [["--processes", "2"], ["--dask", "tcp://127.0.0.1:1"]])
def test_one_object_refuses_an_executor(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    flag: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [f"oss://{bucket_name}/k", str(tmp_path / "k"), "--endpoint", store.endpoint, *flag]
    assert cli.main(argv) == cli.ExitCode.INVALID_ARGUMENT
    assert flag[0] in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("env")
def test_processes_and_dask_exclude_each_other(tmp_path: Path) -> None:
    argv = ["oss://b/p/", str(tmp_path), "-r", "--processes", "2", "--dask", "tcp://x:1"]
    assert cli.main(argv) == cli.ExitCode.INVALID_ARGUMENT
