"""``partdl ... --recursive`` and ``partdl --input-file``: many objects from the command line."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from partdl import cli
from tests.helpers import OSS_REGION, PART
from tests.store import LocalStore, Seen
from tests.targets import Target, presign


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    nowhere = tmp_path_factory.mktemp("aws") / "missing"
    for name, value in {
        "OSS_ACCESS_KEY_ID": "test",
        "OSS_ACCESS_KEY_SECRET": "test",
        "OSS_REGION": OSS_REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(nowhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("OSS_SESSION_TOKEN", "OSS_ENDPOINT", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


def put(store: LocalStore, bucket: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        store.put(bucket, key, data)


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".partdl" not in p.parts
    }


def json_line(text: str) -> dict[str, Any]:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    document: dict[str, Any] = json.loads(lines[0])
    return document


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("scheme", ["oss", "s3"])
def test_recursive_download_then_a_rerun_that_skips_everything(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    scheme: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    objects = {"p/a": os.urandom(100), "p/d/b": os.urandom(2 * PART + 3), "q/c": b"not this"}
    put(store, bucket_name, objects)
    args = [f"{scheme}://{bucket_name}/p/", str(tmp_path), "--recursive"]
    args += ["--endpoint", store.endpoint, "--part-size", "100KiB", "--json"]

    assert cli.main(args) == 0

    summary = json_line(capsys.readouterr().out)
    assert files(tmp_path) == {"a": objects["p/a"], "d/b": objects["p/d/b"]}
    assert summary["status"] == "ok"
    assert (summary["downloaded"], summary["skipped"], summary["failed"]) == (2, 0, [])
    assert summary["bytes_downloaded"] == 2 * PART + 103

    assert cli.main(args) == 0
    again = json_line(capsys.readouterr().out)
    assert (again["downloaded"], again["skipped"]) == (0, 2)


@pytest.mark.usefixtures("env")
def test_partial_failure_exits_10_and_lists_every_failed_key(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, {"p/ok": b"ok", "p/../up": b"x", "p/a//b": b"y"})
    base = [f"oss://{bucket_name}/p", str(tmp_path / "t"), "-r", "--endpoint", store.endpoint]

    assert cli.main(base) == cli.ExitCode.PARTIAL

    out, err = capsys.readouterr()
    assert "1 downloaded" in out
    assert "2 failed" in out
    assert "partdl: failed: p/../up: key '../up' has a '..' segment" in err
    assert "partdl: failed: p/a//b: " in err

    # -q silences the summary, not the errors: each failed key is still named.
    assert cli.main([*base, "-q"]) == cli.ExitCode.PARTIAL
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "partdl: failed: p/../up: key '../up' has a '..' segment",
        "partdl: failed: p/a//b: key 'a//b' has an empty path segment ('//')",
    ]

    assert cli.main([*base, "--json"]) == 10
    summary = json_line(capsys.readouterr().out)
    assert summary["status"] == "partial"
    assert summary["exit_code"] == 10
    assert sorted(f["key"] for f in summary["failed"]) == ["p/../up", "p/a//b"]
    assert {f["error"] for f in summary["failed"]} == {"invalid_argument"}
    assert summary["skipped"] == 1
    assert os.listdir(tmp_path) == ["t"]


@pytest.mark.usefixtures("env")
def test_include_exclude_and_dry_run(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, {"p/a.bin": b"a", "p/b.txt": b"b", "p/tmp/c.bin": b"c"})
    base = [f"s3://{bucket_name}/p/", str(tmp_path / "t"), "-r", "--endpoint", store.endpoint]
    base += ["--include", "*.bin", "--exclude", "tmp"]
    before = len(store.requests(bucket_name))

    assert cli.main([*base, "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert f"would download: p/a.bin -> {tmp_path / 't' / 'a.bin'} (1 bytes)" in out
    assert "b.txt" not in out
    assert "tmp/c.bin" not in out
    assert "1 would be downloaded" in out
    assert not (tmp_path / "t").exists()
    assert [s.method for s in store.requests(bucket_name)[before:]] == ["GET"]  # the LIST

    assert cli.main([*base, "-q"]) == 0
    assert files(tmp_path / "t") == {"a.bin": b"a"}


@pytest.mark.usefixtures("env")
def test_input_file_mixes_oss_s3_and_presigned_urls(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = {"k/one": os.urandom(200), "k/two": os.urandom(2 * PART), "k/three": b"3"}
    put(store, bucket_name, objects)
    url = presign(Target("http", store, bucket_name, fetch=None, key="k/three"))  # type: ignore[arg-type]
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# a comment, then a blank line\n\n"
        f"oss://{bucket_name}/k/one 'with space/one.bin'  # trailing comment\n"
        f"s3://{bucket_name}/k/two sub/\n"
        f"'{url}' third.bin\n"
    )
    out_dir = tmp_path / "out"
    args = ["-i", str(listing), str(out_dir), "--endpoint", store.endpoint, "--json"]

    assert cli.main([*args, "--part-size", "100KiB"]) == 0

    assert files(out_dir) == {
        "with space/one.bin": objects["k/one"],
        "sub/two": objects["k/two"],
        "third.bin": objects["k/three"],
    }
    assert json_line(capsys.readouterr().out)["downloaded"] == 3

    monkeypatch.setattr("sys.stdin", io.StringIO(f"oss://{bucket_name}/k/one\n"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--input-file", "-", "--endpoint", store.endpoint, "-q"]) == 0
    assert (tmp_path / "one").read_bytes() == objects["k/one"]


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("oss://B/k a b\n", "list.txt:1: expected SRC [DEST]"),
        ("\nftp://host/x\n", "list.txt:2: SRC must be"),
        ("oss://B/k 'unclosed\n", "list.txt:1: No closing quotation"),
        # A DEST no directory can hold is refused as a key would be, but up front.
        ("oss://B/k ../../etc/x\n", "list.txt:1: DEST '../../etc/x' has a '..' segment"),
        ("oss://B/k ok\noss://B/k /etc/x\n", "list.txt:2: DEST '/etc/x' starts with '/'"),
        ("oss://B/k .partdl/x\n", "list.txt:1: DEST '.partdl/x' is inside .partdl/"),
        ("oss://B/.partdl\n", "list.txt:1: DEST '.partdl' is inside .partdl/"),
    ],
)
def test_bad_input_files(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    lines: str,
    message: str,
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(lines.replace("B", bucket_name))
    code = cli.main(["-i", str(listing), str(tmp_path / "out"), "--endpoint", store.endpoint])
    assert message in capsys.readouterr().err
    assert code == 2
    assert store.requests(bucket_name, "GET") == []


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
@pytest.mark.parametrize("on_stdin", [False, True])
def test_an_input_file_that_is_not_utf8_is_refused_naming_the_line(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    encoding: str,
    on_stdin: bool,
) -> None:
    data = f"oss://{bucket_name}/k dé.txt\n".encode(encoding)
    store.put(bucket_name, "k", b"x")
    listing = tmp_path / "list.txt"
    listing.write_bytes(data)
    source = str(listing)
    if on_stdin:  # as a UTF-8 locale's stdin decodes: strictly
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
        source = "-"
    out = tmp_path / "out"
    assert cli.main(["-i", source, str(out), "--endpoint", store.endpoint]) == 2
    where = "stdin" if on_stdin else str(listing)
    assert f"{where}:1: the line is not UTF-8 text" in capsys.readouterr().err
    assert store.requests(bucket_name, "GET") == []
    assert not out.exists()


@pytest.mark.usefixtures("env")
def test_stdin_is_read_as_utf8_whatever_the_locale(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store.put(bucket_name, "k", b"x")
    data = f"oss://{bucket_name}/k dé.txt\n".encode()
    # A Latin-1 locale's stdin would decode the name as "dÃ©.txt".
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="latin-1"))
    assert cli.main(["-i", "-", str(tmp_path), "--endpoint", store.endpoint, "-q"]) == 0
    assert (tmp_path / "dé.txt").read_bytes() == b"x"


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    "args",
    [
        ["oss://b/p/", "--recursive"],
        ["oss://b/p/", "d", "--recursive", "-i", "x"],
        ["https://h/x", "d", "--recursive"],
        ["-i", "x", "a", "b"],
        ["-i", "x", "--include", "*"],
        ["oss:///p", "d", "-r"],
    ],
)
def test_batch_usage_errors_exit_2(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*args, "--endpoint", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("partdl: error: ")
    assert len(err.splitlines()) == 1


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["oss://b/k", "s3://b/k"], "DEST 's3://b/k'"),
        (["oss://b/p/", "s3://b/q/", "-r"], "DIR 's3://b/q/'"),
        (["-i", "list.txt", "https://h/d"], "DIR 'https://h/d'"),
    ],
)
def test_a_url_where_a_local_path_belongs_is_refused(
    args: list[str],
    named: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.txt").write_text("oss://b/k\n")
    assert cli.main([*args, "--endpoint", "http://127.0.0.1:9"]) == 2
    message = f"partdl: error: {named} is a URL: partdl downloads to a local path"
    assert capsys.readouterr().err.startswith(message)
    assert os.listdir(tmp_path) == ["list.txt"]


@pytest.mark.usefixtures("env")
def test_a_missing_bucket_exits_3(
    store: LocalStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["s3://no-such-bucket/p/", str(tmp_path), "-r", "--endpoint", store.endpoint, "--json"]
    assert cli.main(args) == 3
    assert json_line(capsys.readouterr().out)["error"] == "not_found"


def test_batch_help_documents_the_partial_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--recursive", "--help"]) == 0
    out = capsys.readouterr().out
    assert f"10  {cli.EXIT_MEANINGS[cli.ExitCode.PARTIAL]}" in out
    assert "--include GLOB" in out


# -- the options one object takes, for many ------------------------------------------------


def authorizations(store: LocalStore, bucket: str) -> list[str]:
    """The Authorization of every request partdl sent: the listing's and the objects'."""
    return [
        seen.headers.get("authorization", "")
        for seen in store.requests(bucket)
        if seen.method in ("GET", "HEAD")
    ]


@pytest.mark.usefixtures("env")
def test_recursive_signs_v4_for_the_region_given_and_takes_the_transfer_options(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    objects = {"p/a": os.urandom(300), "p/b": os.urandom(2 * PART + 1)}
    put(store, bucket_name, objects)
    store.v4_only.add(bucket_name)
    args = [f"oss://{bucket_name}/p/", str(tmp_path), "-r", "--endpoint", store.endpoint, "-q"]
    args += ["--region", "eu-central-1", "--sign-version", "4", "--part-size", "100KiB"]
    args += ["--stall-timeout", "20", "--retries", "2", "--retry-deadline", "60"]

    assert cli.main(args) == 0

    assert files(tmp_path) == {"a": objects["p/a"], "b": objects["p/b"]}
    sent = authorizations(store, bucket_name)
    assert len(sent) >= 4  # the listing, a's GET, b's HEAD and its GETs
    assert all("/eu-central-1/oss/aliyun_v4_request" in value for value in sent), sent


@pytest.mark.usefixtures("env")
def test_recursive_signs_v1_when_asked_and_such_a_store_refuses_the_listing(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, {"p/a": b"a"})
    store.v4_only.add(bucket_name)
    args = [f"oss://{bucket_name}/p/", str(tmp_path), "-r", "--endpoint", store.endpoint]

    assert cli.main([*args, "--sign-version", "1"]) == cli.ExitCode.ACCESS_DENIED

    assert "403" in capsys.readouterr().err
    assert all(value.startswith("OSS test:") for value in authorizations(store, bucket_name))
    assert files(tmp_path) == {}


@pytest.mark.usefixtures("env")
def test_recursive_s3_profile_and_region_go_to_boto3(
    store: LocalStore, bucket_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile other]\nregion = us-east-1\n"
        "aws_access_key_id = from-profile\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    put(store, bucket_name, {"p/a": b"a"})
    out = tmp_path / "out"
    args = [f"s3://{bucket_name}/p/", str(out), "-r", "--endpoint", store.endpoint, "-q"]

    assert cli.main([*args, "--profile", "other", "--region", "eu-west-1"]) == 0

    assert files(out) == {"a": b"a"}
    sent = authorizations(store, bucket_name)
    assert len(sent) == 2  # the listing and the one GET
    for value in sent:
        assert value.startswith("AWS4-HMAC-SHA256 Credential=from-profile/")
        assert "/eu-west-1/s3/" in value


class Refused(Exception):
    """Raised in the server's request thread: the client sees an HTTP 500."""


@pytest.mark.usefixtures("env")
def test_retries_reach_every_object_of_a_tree(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, {"p/a": b"a"})
    refusals: list[Seen] = []

    def refuse_the_first_get(seen: Seen) -> None:
        if seen.method == "GET" and seen.key == "p/a" and not refusals:
            refusals.append(seen)
            raise Refused(seen.key)

    # oss2 retries no HTTP 500 itself (botocore would): partdl's --retries decides.
    args = [f"oss://{bucket_name}/p/", str(tmp_path), "-r", "--endpoint", store.endpoint]
    store.before_request = refuse_the_first_get
    try:
        assert cli.main([*args, "--retries", "0"]) == cli.ExitCode.TRANSFER
        assert "failed: p/a" in capsys.readouterr().err
        assert not (tmp_path / "a").exists()
        refusals.clear()
        assert cli.main([*args, "--retries", "1"]) == 0
    finally:
        store.before_request = None
    assert len(refusals) == 1
    assert files(tmp_path) == {"a": b"a"}


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["oss://b/p/", "d", "-r", "--range", "0-9"], "--range applies to one object only"),
        (["oss://b/p/", "d", "-r", "--checkpoint-file", "c"], "--checkpoint-file applies to"),
        (["oss://b/p/", "d", "-r", "--version-id", "v"], "--version-id applies to"),
        (["-i", "list.txt", "--head-url", "https://h/k"], "--head-url applies to"),
        (["oss://b/k", "out", "--include", "*"], "--include applies to --recursive only"),
        (["oss://b/k", "out", "--exclude", "*"], "--exclude applies to --recursive only"),
        (["-i", "list.txt", "--include", "*"], "--include applies to --recursive only"),
        (["-i", "list.txt", "--exclude", "*"], "--exclude applies to --recursive only"),
        (["oss://b/k", "out", "--dry-run"], "--dry-run applies to --recursive"),
        (["s3://b/p/", "d", "-r", "--sign-version", "1"], "--sign-version applies to oss://"),
    ],
)
def test_options_of_the_other_mode_are_refused_with_exit_2(
    args: list[str],
    flag: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main([*args, "--endpoint", "http://127.0.0.1:9"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("partdl: error: ")
    assert flag in lines[0]
    assert os.listdir(tmp_path) == []


def test_help_shows_one_object_and_many(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: partdl SRC DEST [options]\n" in out
    assert "partdl SRC DIR --recursive [options]\n" in out
    assert "partdl --input-file FILE [DIR] [options]\n" in out
    for flag in ("--no-fsync", "--region REGION", "--include GLOB", "--dry-run", "--head-url"):
        assert flag in out
