"""The ``partdl`` command, in-process through ``main`` and as a real process."""

from __future__ import annotations

import fcntl
import io
import itertools
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import fastcrc
import pytest

import partdl
from partdl import cli
from partdl.backends.subrange import ByteRange
from tests.helpers import OSS_REGION, PART, Interrupt, leftovers, recorded_parts, stop_after
from tests.servers import ObjectServer
from tests.store import LocalStore, Seen

ROOT = Path(__file__).resolve().parent.parent
KEY = "data/object.bin"
ALIBABA_CLOUD_KEYS = (
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
)


@pytest.fixture
def oss_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "test")
    monkeypatch.delenv("OSS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("OSS_ENDPOINT", raising=False)
    # The local store's endpoint names no region: V4 signing needs one.
    monkeypatch.setenv("OSS_REGION", OSS_REGION)
    for name in ALIBABA_CLOUD_KEYS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Credentials from the environment only: no profile files, no instance metadata."""
    nowhere = tmp_path_factory.mktemp("aws") / "missing"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


def put(store: LocalStore, bucket: str, size: int, key: str = KEY) -> bytes:
    data = os.urandom(size)
    store.put(bucket, key, data)
    return data


def only_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- pure pieces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("100B", 100),
        ("100KB", 100_000),
        ("100kb", 100_000),
        ("100KiB", 102_400),
        ("8MiB", 8 * 1024**2),
        ("8MB", 8_000_000),
        ("1.5GB", 1_500_000_000),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("2 TiB", 2 * 1024**4),
        (" 0.5KiB ", 512),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert cli.parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a size"),
        ("MiB", "not a size"),
        ("-1MB", "not a size"),
        ("8M", "unknown unit"),
        ("8K", "unknown unit"),
        ("8 parsecs", "unknown unit"),
        ("0.5B", "whole number"),
        ("1.0001KB", "whole number"),
    ],
)
def test_parse_size_refuses(text: str, message: str) -> None:
    with pytest.raises(partdl.InvalidArgumentError, match=message):
        cli.parse_size(text)


@pytest.mark.parametrize(
    ("text", "scheme", "bucket", "key", "name"),
    [
        ("oss://b/k", cli.Scheme.OSS, "b", "k", "k"),
        ("oss://b/dir/sub/file.tar", cli.Scheme.OSS, "b", "dir/sub/file.tar", "file.tar"),
        ("s3://b/a?b#c%20d", cli.Scheme.S3, "b", "a?b#c%20d", "a?b#c%20d"),
        ("S3://b/k", cli.Scheme.S3, "b", "k", "k"),
        ("https://h/p/f%20g.bin?sig=1", cli.Scheme.HTTP, "", "", "f g.bin"),
    ],
)
def test_parse_source(text: str, scheme: cli.Scheme, bucket: str, key: str, name: str) -> None:
    source = cli.parse_source(text)
    assert (source.scheme, source.bucket, source.key, source.name) == (scheme, bucket, key, name)


@pytest.mark.parametrize(
    "text", ["oss://b", "oss://b/", "s3:///k", "ftp://h/f", "bucket/key", "https:///path"]
)
def test_parse_source_refuses(text: str) -> None:
    with pytest.raises(partdl.InvalidArgumentError, match="SRC"):
        cli.parse_source(text)


def test_url_display_drops_credentials_and_signature() -> None:
    source = cli.parse_source("https://user:pw@host:8443/b/k.bin?X-Amz-Signature=secret")
    assert source.display == "https://host:8443/b/k.bin?..."


@pytest.mark.parametrize(
    "src",
    ["oss://b/dir/..", "oss://b/dir/.", "oss://b/dir/", "https://h/a/%2E%2E", "https://h/x%2Fy"],
)
def test_names_that_would_escape_dest_are_refused(src: str, tmp_path: Path) -> None:
    with pytest.raises(partdl.InvalidArgumentError, match="DEST as a file path"):
        cli.resolve_destination(str(tmp_path), cli.parse_source(src))


def test_nul_in_a_name_is_refused() -> None:
    with pytest.raises(partdl.InvalidArgumentError):
        cli.safe_name("a\0b")


def test_destination_in_a_directory_and_as_a_file(tmp_path: Path) -> None:
    source = cli.parse_source("oss://b/dir/file.bin")
    assert cli.resolve_destination(str(tmp_path), source) == str(tmp_path / "file.bin")
    assert cli.resolve_destination(str(tmp_path / "x"), source) == str(tmp_path / "x")
    with pytest.raises(partdl.InvalidArgumentError, match="does not exist"):
        cli.resolve_destination(f"{tmp_path}/missing/", source)
    with pytest.raises(partdl.InvalidArgumentError, match="standard output"):
        cli.resolve_destination("-", source)


@pytest.mark.parametrize(
    ("text", "size", "bounds"),
    [("0-0", 10, (0, 1)), ("2-5", 10, (2, 6)), ("3-", 10, (3, 10)), ("8-100", 10, (8, 10))],
)
def test_byte_range_bounds(text: str, size: int, bounds: tuple[int, int]) -> None:
    assert ByteRange.parse(text).bounds(size) == bounds


@pytest.mark.parametrize(("text", "message"), [("5-2", "ends before"), ("a-b", "START-END")])
def test_byte_range_refuses(text: str, message: str) -> None:
    with pytest.raises(partdl.InvalidArgumentError, match=message):
        ByteRange.parse(text)


def test_byte_range_beyond_the_object_is_refused() -> None:
    with pytest.raises(partdl.InvalidArgumentError, match="beyond the end"):
        ByteRange.parse("10-").bounds(10)


def test_progress_bar_starts_at_resumed_bytes_and_rewinds_on_restart() -> None:
    stream = io.StringIO()
    bar = cli.ProgressBar(stream, "out")
    bar(400, 1000)
    assert bar.shown == 400
    bar(700, 1000)
    assert bar.shown == 700
    bar(100, 1000)  # the download started over
    assert bar.shown == 100
    bar(1000, 1000)
    bar.close()
    assert bar.shown == 1000
    frames = stream.getvalue().split("\r")
    assert frames[1].startswith("out:  40%")
    assert any(frame.startswith("out:  10%") for frame in frames[3:])
    assert frames[-1].startswith("out: 100%")


def test_exit_codes_are_documented_in_help_and_docs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    help_text = capsys.readouterr().out
    docs = (ROOT / "docs" / "cli.md").read_text()
    for code in cli.ExitCode:
        assert re.search(
            rf"^\s+{code.value}\s+{re.escape(cli.EXIT_MEANINGS[code])}$", help_text, re.M
        )
        row = rf"^\|\s*{code.value}\s*\|\s*`{code.name.lower()}`\s*\|"
        assert re.search(row, docs, re.M), f"docs/cli.md lacks a row for exit code {code.value}"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (partdl.NotFoundError("x"), 3),
        (partdl.AccessDeniedError("x"), 4),
        (partdl.ObjectChangedError("x"), 5),
        (partdl.IntegrityError("x"), 6),
        (partdl.InvalidArgumentError("x"), 2),
        (partdl.TransferError("x"), 7),
        (partdl.LocalFileError(28, "disk full"), 8),
        (PermissionError(13, "denied"), 8),
        (TimeoutError("timed out connecting to the scheduler"), 7),
        (ConnectionRefusedError(111, "refused"), 7),
        (partdl.DownloadLockedError("x"), 9),
        (partdl.PartdlError("x"), 1),
    ],
)
def test_exit_code_for_each_error(error: BaseException, code: int) -> None:
    assert cli.exit_code_for(error) == code


# -- in-process downloads -----------------------------------------------------------------


@pytest.mark.usefixtures("oss_env")
def test_oss_download_into_a_directory(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = put(store, bucket_name, 5 * PART + 3)
    args = [f"oss://{bucket_name}/{KEY}", str(tmp_path), "--part-size", "100KiB"]
    assert cli.main([*args, "--task-num", "3", "--endpoint", store.endpoint]) == 0
    assert (tmp_path / "object.bin").read_bytes() == data
    assert leftovers(tmp_path, "object.bin") == []
    summary = only_line(capsys.readouterr().out)
    assert "6 of 6 parts fetched" in summary
    assert "crc64xz verified" in summary


@pytest.mark.usefixtures("oss_env")
def test_oss_endpoint_from_the_environment_and_quiet(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = put(store, bucket_name, 1000)
    monkeypatch.setenv("OSS_ENDPOINT", store.endpoint)
    assert cli.main([f"oss://{bucket_name}/{KEY}", str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out").read_bytes() == data
    assert capsys.readouterr() == ("", "")


@pytest.mark.usefixtures("oss_env")
def test_json_summary(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = put(store, bucket_name, 3 * PART)
    out = tmp_path / "out"
    args = [f"oss://{bucket_name}/{KEY}", str(out), "--endpoint", store.endpoint, "--json"]
    assert cli.main([*args, "--part-size", "100KiB"]) == 0
    summary = json.loads(only_line(capsys.readouterr().out))
    assert summary["status"] == "ok"
    assert summary["source"] == f"oss://{bucket_name}/{KEY}"
    assert summary["path"] == str(out)
    assert summary["size"] == len(data)
    assert summary["verified"] is True
    assert summary["checksum"]["algorithm"] == "crc64xz"
    assert summary["checksum"]["value"] == str(fastcrc.crc64.xz(data))
    assert (summary["parts_total"], summary["parts_fetched"], summary["parts_reused"]) == (3, 3, 0)
    assert out.read_bytes() == data


@pytest.mark.usefixtures("oss_env")
def test_options_may_come_between_src_and_dest(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = put(store, bucket_name, 1000)
    out = tmp_path / "out"
    src = f"oss://{bucket_name}/{KEY}"
    assert cli.main([src, "--json", "--endpoint", store.endpoint, str(out), "--task-num", "2"]) == 0
    assert json.loads(only_line(capsys.readouterr().out))["path"] == str(out)
    assert out.read_bytes() == data


@pytest.mark.usefixtures("oss_env")
def test_range_downloads_exactly_those_bytes_and_keeps_its_own_checkpoint(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = put(store, bucket_name, 4 * PART)
    out = tmp_path / "out"
    base = [f"oss://{bucket_name}/{KEY}", str(out), "--endpoint", store.endpoint, "--json"]
    start, end = PART + 5, 3 * PART + 17
    assert cli.main([*base, "--range", f"{start}-{end}", "--part-size", "100KiB"]) == 0
    summary = json.loads(only_line(capsys.readouterr().out))
    assert out.read_bytes() == data[start : end + 1]
    assert summary["size"] == end + 1 - start
    assert summary["verified"] is False  # the server's checksum covers the whole object
    assert sorted(store.ranged_gets(bucket_name)) == [
        f"bytes={start}-{start + PART - 1}",
        f"bytes={start + PART}-{start + 2 * PART - 1}",
        f"bytes={start + 2 * PART}-{end}",
    ]
    assert cli.main([*base, "--range", f"{3 * PART}-"]) == 0
    assert out.read_bytes() == data[3 * PART :]
    assert leftovers(tmp_path, "out") == []


@pytest.mark.usefixtures("oss_env")
def test_resumes_from_a_custom_checkpoint_file(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = put(store, bucket_name, 20 * PART)
    out, checkpoint = tmp_path / "out", tmp_path / "state" / "out.ckpt"
    checkpoint.parent.mkdir()
    with pytest.raises(Interrupt):
        partdl.download_file(
            store.oss_bucket(bucket_name),
            KEY,
            out,
            PART,
            2,
            checkpoint_file=checkpoint,
            progress_callback=stop_after(0.5),
        )
    done = recorded_parts(checkpoint)
    assert 0 < len(done) < 20
    args = [f"oss://{bucket_name}/{KEY}", str(out), "--endpoint", store.endpoint, "--json"]
    assert cli.main([*args, "--checkpoint-file", str(checkpoint)]) == 0
    summary = json.loads(only_line(capsys.readouterr().out))
    assert (summary["parts_reused"], summary["parts_fetched"]) == (len(done), 20 - len(done))
    assert out.read_bytes() == data
    assert leftovers(tmp_path, "out", "state") == []
    assert os.listdir(checkpoint.parent) == []


@pytest.mark.usefixtures("oss_env")
def test_range_beyond_the_object_is_invalid(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, 100)
    args = [f"oss://{bucket_name}/{KEY}", str(tmp_path / "out"), "--endpoint", store.endpoint]
    assert cli.main([*args, "--range", "100-200"]) == 2
    assert "beyond the end" in only_line(capsys.readouterr().err)
    assert leftovers(tmp_path) == []


@pytest.mark.usefixtures("oss_env")
def test_missing_key_exits_3_and_leaves_nothing(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [f"oss://{bucket_name}/nope.bin", str(tmp_path), "--endpoint", store.endpoint]
    assert cli.main([*args, "--json"]) == 3
    captured = capsys.readouterr()
    assert only_line(captured.err).startswith("partdl: error: ")
    assert json.loads(only_line(captured.out))["error"] == "not_found"
    assert leftovers(tmp_path) == []


@pytest.mark.usefixtures("oss_env")
def test_part_size_below_the_minimum_is_one_line_and_no_request(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, 100)
    args = [f"oss://{bucket_name}/{KEY}", str(tmp_path), "--endpoint", store.endpoint]
    assert cli.main([*args, "--part-size", "50KB"]) == 2
    line = only_line(capsys.readouterr().err)
    assert "--part-size" in line
    assert "50,000 bytes" in line
    assert store.requests(bucket_name, "HEAD") == []
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["oss://b/k", "out", "--task-num", "0"], "--task-num: must be at least 1"),
        (["oss://b/k", "out", "--part-size", "8M"], "unknown unit"),
        (["oss://b/k", "out", "--range", "9-1"], "ends before it starts"),
        (["oss://b/k", "out", "--no-checkpoint", "--checkpoint-file", "c"], "not allowed"),
        (["oss://b/k", "out", "--head-url", "https://h/k"], "http(s):// sources only"),
        (["https://h/k", "out", "--version-id", "v1"], "oss:// and s3:// sources only"),
        (["ftp://h/k", "out"], "SRC must be"),
        (["oss://b/k"], "required: DEST"),
        (["oss://b/k", "out", "-q", "-v"], "not allowed"),
        (["oss://b/k", "out", "--task-num", "1001"], "1000"),
        (["http://[::1/k", "out"], "SRC is not a valid URL"),
        (["https://h:99999/k", "out"], "SRC is not a valid URL: Port out of range"),
    ],
)
def test_invalid_arguments_are_one_line_exit_2(
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    assert message in only_line(capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("scheme", ["oss", "s3"])
@pytest.mark.parametrize("endpoint", ["http://[::1", "http://127.0.0.1:99999"])
def test_a_malformed_endpoint_is_one_line_exit_2(
    scheme: str,
    endpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "AWS_ACCESS_KEY_ID"):
        monkeypatch.setenv(name, "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    args = [f"{scheme}://b/k", str(tmp_path / "out"), "--endpoint", endpoint]
    assert cli.main([*args, "--region", OSS_REGION]) == 2
    assert f"endpoint {endpoint!r} is not a valid URL" in only_line(capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


def test_missing_oss_credentials_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", *ALIBABA_CLOUD_KEYS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", str(tmp_path / "missing.ini"))
    args = ["oss://b/k", str(tmp_path / "out"), "--endpoint", "http://127.0.0.1:9"]
    assert cli.main([*args, "--region", OSS_REGION]) == 2
    line = only_line(capsys.readouterr().err)
    assert "OSS_ACCESS_KEY_ID" in line
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in line
    assert os.listdir(tmp_path) == []


@pytest.mark.usefixtures("oss_env")
def test_missing_oss_endpoint_and_region_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OSS_REGION")
    assert cli.main(["oss://b/k", str(tmp_path / "out")]) == 2
    line = only_line(capsys.readouterr().err)
    assert "OSS_ENDPOINT" in line
    assert "OSS_REGION" in line


@pytest.mark.usefixtures("aws_env")
def test_missing_aws_credentials_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    args = ["s3://b/k", str(tmp_path / "out"), "--endpoint", "http://127.0.0.1:9"]
    assert cli.main(args) == 2
    assert "no AWS credentials" in only_line(capsys.readouterr().err)


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [("AWS_PROFILE", "no-such-profile", "no-such-profile"), ("AWS_ENDPOINT_URL", "::", "::")],
)
def test_bad_aws_configuration_is_one_line(
    variable: str,
    value: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, value)
    assert cli.main(["s3://b/k", str(tmp_path / "out")]) == 2
    line = only_line(capsys.readouterr().err)
    assert line.startswith("partdl: error: AWS configuration: ")
    assert message in line


@pytest.mark.usefixtures("oss_env")
def test_verbose_logs_to_stderr(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, 1000)
    args = [f"oss://{bucket_name}/{KEY}", str(tmp_path / "out"), "--endpoint", store.endpoint]
    assert cli.main([*args, "-v"]) == 0
    assert "partdl: INFO: downloading" in capsys.readouterr().err


@pytest.mark.usefixtures("aws_env")
def test_s3_download(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = put(store, bucket_name, 3 * PART + 1)
    args = [f"s3://{bucket_name}/{KEY}", str(tmp_path), "--endpoint", store.endpoint, "--json"]
    assert cli.main([*args, "--part-size", "100KiB"]) == 0
    summary = json.loads(only_line(capsys.readouterr().out))
    assert summary["source"] == f"s3://{bucket_name}/{KEY}"
    assert summary["parts_fetched"] == 4
    assert (tmp_path / "object.bin").read_bytes() == data
    assert leftovers(tmp_path, "object.bin") == []


@pytest.mark.usefixtures("aws_env")
def test_s3_endpoint_from_aws_endpoint_url(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = put(store, bucket_name, 1000)
    monkeypatch.setenv("AWS_ENDPOINT_URL", store.endpoint)
    assert cli.main([f"s3://{bucket_name}/{KEY}", str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out").read_bytes() == data


@pytest.mark.parametrize("with_head_url", [True, False], ids=["head-url", "probe"])
def test_http_presigned_download(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    with_head_url: bool,
) -> None:
    data = put(store, bucket_name, 3 * PART + 1)
    params = {"Bucket": bucket_name, "Key": KEY}
    url = store.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=600)
    args = [url, str(tmp_path), "--json", "--part-size", "100KiB"]
    if with_head_url:
        head = store.s3.generate_presigned_url("head_object", Params=params, ExpiresIn=600)
        args += ["--head-url", head]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(only_line(captured.out))
    assert "Signature" not in captured.out + captured.err
    assert summary["source"].endswith(f"/{bucket_name}/{KEY}?...")
    assert (tmp_path / "object.bin").read_bytes() == data
    assert leftovers(tmp_path, "object.bin") == []


def test_http_range_and_missing_object_never_show_the_signature(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = put(store, bucket_name, 3 * PART)
    present, missing = (
        store.s3.generate_presigned_url("get_object", Params={"Bucket": bucket_name, "Key": key})
        for key in (KEY, "missing.bin")
    )
    out = tmp_path / "out"
    assert cli.main([present, str(out), "--range", f"{PART}-{2 * PART + 9}", "-q"]) == 0
    assert out.read_bytes() == data[PART : 2 * PART + 10]
    assert cli.main([missing, str(tmp_path), "--json"]) == 3
    captured = capsys.readouterr()
    assert json.loads(only_line(captured.out))["error"] == "not_found"
    assert "missing.bin" in only_line(captured.err)
    assert "Signature" not in captured.out + captured.err
    assert leftovers(tmp_path, "out") == []


# -- real processes -----------------------------------------------------------------------


def child_env(store: LocalStore) -> dict[str, str]:
    return {
        **os.environ,
        "OSS_ACCESS_KEY_ID": "test",
        "OSS_ACCESS_KEY_SECRET": "test",
        "OSS_ENDPOINT": store.endpoint,
        "OSS_REGION": OSS_REGION,
    }


def test_console_script(store: LocalStore, bucket_name: str, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "partdl"
    data = put(store, bucket_name, 2 * PART)
    out = tmp_path / "out"
    command = [str(script), f"oss://{bucket_name}/{KEY}", str(out), "--json"]
    done = subprocess.run(
        command, env=child_env(store), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["size"] == len(data)
    assert out.read_bytes() == data


@pytest.mark.parametrize("many", [False, True])
def test_the_command_closes_its_connections(tmp_path: Path, many: bool) -> None:
    # A server that keeps connections alive, as the stores do (moto's closes each one);
    # Python's development mode reports every socket collected while still open.
    data = os.urandom(3 * PART)
    env = {**os.environ, "OSS_ACCESS_KEY_ID": "test", "OSS_ACCESS_KEY_SECRET": "test"}
    with ObjectServer(data) as server:
        args = ["oss://bucket/object.bin", str(tmp_path / "a")]
        if many:
            (tmp_path / "list").write_text("oss://bucket/a a\noss://bucket/b b\n")
            args = ["-i", str(tmp_path / "list"), str(tmp_path)]
        args += ["--endpoint", server.endpoint, "--region", OSS_REGION, "--part-size", "100KiB"]
        done = subprocess.run(
            [sys.executable, "-X", "dev", "-m", "partdl", *args, "-q"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        reused = server.connections < len(server.requests)
    assert (done.returncode, done.stderr) == (0, "")
    assert (tmp_path / "a").read_bytes() == data
    assert reused  # or nothing was left open to be closed


def test_the_command_streams_an_object_without_ranges_or_length(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = os.urandom(PART * 5 + 3)
    out = tmp_path / "out"
    with ObjectServer(data, ranges=False, chunked=True) as server:
        assert cli.main([server.url(), str(out), "--json"]) == 0
    assert out.read_bytes() == data
    summary = json.loads(capsys.readouterr().out)
    assert (summary["status"], summary["size"], summary["verified"]) == ("ok", len(data), False)
    assert os.listdir(tmp_path) == ["out"]


def test_a_range_from_a_server_that_ignores_ranges_is_refused_without_a_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with ObjectServer(os.urandom(3 * PART), ranges=False) as server:
        assert cli.main([server.url(), str(out), "--range", "0-99"]) == 2
    # (The test server reports on stderr too, the probe's connection closed mid-body.)
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("partdl:")]
    assert said == [
        f"partdl: error: {server.url()} ignores byte ranges, so it cannot serve range 0-99"
    ]
    assert os.listdir(tmp_path) == []


def read_terminal(master: int) -> str:
    """Everything written to a pseudo-terminal until its last writer closes it."""
    chunks = []
    while select.select([master], [], [], 60)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child exited and the terminal is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal(store: LocalStore, bucket_name: str, tmp_path: Path) -> None:
    data = put(store, bucket_name, 3 * PART)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "partdl", f"oss://{bucket_name}/{KEY}", str(out)]
    master, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        child = subprocess.Popen(
            command, env=child_env(store), cwd=ROOT, stdout=subprocess.PIPE, stderr=terminal
        )
    finally:
        os.close(terminal)
    try:
        shown = read_terminal(master)
    finally:
        os.close(master)
    assert child.wait(60) == 0
    assert out.read_bytes() == data
    assert "out: 100%" in shown
    assert "B/s" in shown


class Refused(Exception):
    """Raised in the server's request thread: the client sees an HTTP 500."""


@pytest.fixture
def hold_after(store: LocalStore) -> Iterator[tuple[threading.Event, threading.Event]]:
    """After 8 ranged GETs, hold the next ones until released, then refuse them all.

    The download cannot finish while the hook is in place, so a signal sent once
    ``reached`` is set always lands mid-download, whatever the scheduling.
    """
    reached, release = threading.Event(), threading.Event()
    counter = itertools.count(1)

    def hook(seen: Seen) -> None:
        if seen.range and next(counter) >= 8:
            reached.set()
            release.wait(60)
            raise Refused(seen.range)

    store.before_request = hook
    yield reached, release
    store.before_request = None
    release.set()


@pytest.fixture
def sigint_reaches_children() -> Iterator[None]:
    """Children start with SIGINT's default even if this process ignores it.

    A shell without job control starts `cmd &` with SIGINT ignored and children inherit
    that, so a Ctrl-C sent to them would be lost; a handled signal is reset on exec.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.usefixtures("sigint_reaches_children")
@pytest.mark.parametrize(
    ("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"]
)
def test_a_stop_signal_keeps_the_checkpoint_and_a_rerun_completes(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    hold_after: tuple[threading.Event, threading.Event],
    stop: signal.Signals,
    code: int,
) -> None:
    reached, release = hold_after
    data = put(store, bucket_name, 40 * PART + 1)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "partdl", f"oss://{bucket_name}/{KEY}", str(out)]
    command += ["--part-size", "100KiB", "--task-num", "2"]
    child = subprocess.Popen(
        [*command, "--retries", "100"],
        env=child_env(store),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reached.wait(60), "the download never got going"
        child.send_signal(stop)
    finally:
        release.set()
    _, err = child.communicate(timeout=60)
    assert child.returncode == code, err
    assert "run the same command again to resume" in err.splitlines()[-1]
    assert not (tmp_path / "out.partdl.lock").exists()
    store.before_request = None
    done = recorded_parts(tmp_path / "out.dcp")
    assert 0 < len(done) < 41
    before = len(store.ranged_gets(bucket_name))

    rerun = subprocess.run(
        [*command, "--json"],
        env=child_env(store),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert rerun.returncode == 0, rerun.stderr
    assert out.read_bytes() == data
    assert leftovers(tmp_path, "out") == []
    assert json.loads(rerun.stdout)["parts_reused"] == len(done)
    assert len(store.ranged_gets(bucket_name)) - before == 41 - len(done)
