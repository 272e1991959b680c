"""oss:// from the command line as OSS is today: V4 signatures, regions, credential chains.

The store refuses V1-signed requests for the buckets in ``store.v4_only`` with 403, as
OSS does for accounts created since 2025-03 and buckets since 2025-09.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import partdl
from partdl import cli
from partdl.oss_setup import OssKeys, keys_from, locate, region_of
from tests.helpers import OSS_REGION, PART
from tests.store import OSS_V4, LocalStore, signed_v1

KEY = "data/object.bin"
CREDENTIAL_VARIABLES = (
    "OSS_ACCESS_KEY_ID",
    "OSS_ACCESS_KEY_SECRET",
    "OSS_SESSION_TOKEN",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "ALIBABA_CLOUD_PROFILE",
    "ALIBABA_CLOUD_ROLE_ARN",
    "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    "ALIBABA_CLOUD_CREDENTIALS_URI",
    "ALIBABA_CLOUD_CREDENTIALS_FILE",
    "OSS_REGION",
    "OSS_ENDPOINT",
)


# -- pure rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou"),
        ("https://oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou"),
        ("https://oss-cn-hangzhou.aliyuncs.com/", "cn-hangzhou"),
        ("http://oss-cn-beijing-internal.aliyuncs.com", "cn-beijing"),
        ("HTTPS://OSS-EU-CENTRAL-1.ALIYUNCS.COM", "eu-central-1"),
        ("https://ap-southeast-1.oss.aliyuncs.com", "ap-southeast-1"),  # dual-stack
        ("https://my-bucket.oss-us-west-1.aliyuncs.com", "us-west-1"),
        ("oss-cn-shanghai-finance-1-pub.aliyuncs.com", "cn-shanghai-finance-1"),
        ("https://oss-accelerate.aliyuncs.com", None),
        ("https://oss-accelerate-overseas.aliyuncs.com", None),
        ("https://oss-rg-china-mainland.aliyuncs.com", None),
        ("http://127.0.0.1:9000", None),
        ("https://files.example.com", None),
        ("https://oss-cn-hangzhou.aliyuncs.com.example.com", None),
    ],
)
def test_region_of_an_endpoint(endpoint: str, region: str | None) -> None:
    assert region_of(endpoint) == region


@pytest.mark.parametrize(
    ("region", "endpoint", "env", "expected"),
    [
        # --region wins over OSS_REGION, which wins over the endpoint's own.
        ("us-east-1", "oss-cn-hangzhou.aliyuncs.com", {"OSS_REGION": "cn-beijing"}, "us-east-1"),
        (None, "oss-cn-hangzhou.aliyuncs.com", {"OSS_REGION": "cn-beijing"}, "cn-beijing"),
        (None, "https://oss-cn-hangzhou.aliyuncs.com", {}, "cn-hangzhou"),
        (None, None, {"OSS_ENDPOINT": "https://oss-cn-shenzhen.aliyuncs.com"}, "cn-shenzhen"),
        (None, "http://127.0.0.1:9", {"OSS_REGION": "cn-hangzhou"}, "cn-hangzhou"),
    ],
)
def test_where_the_region_comes_from(
    region: str | None, endpoint: str | None, env: dict[str, str], expected: str
) -> None:
    assert locate(region, endpoint, env).region == expected


def test_a_region_alone_means_its_public_endpoint() -> None:
    location = locate("cn-hangzhou", None, {})
    assert location.endpoint == "https://oss-cn-hangzhou.aliyuncs.com"
    assert locate(None, "http://10.0.0.1", {}, v4=False).region is None  # V1 signs no region


@pytest.mark.parametrize(
    ("region", "endpoint", "message"),
    [
        (None, "http://127.0.0.1:9", "--region"),
        (None, "https://oss-accelerate.aliyuncs.com", "OSS_REGION"),
        (None, None, "--endpoint"),
        ("cn hangzhou", None, "not an OSS region"),
        ("cn-hangzhou\r\nX: y", None, "not an OSS region"),
        ("oss-cn-hangzhou", None, "the region is 'cn-hangzhou'"),
    ],
)
def test_location_refusals(region: str | None, endpoint: str | None, message: str) -> None:
    with pytest.raises(partdl.InvalidArgumentError, match=message):
        locate(region, endpoint, {})


@pytest.mark.parametrize(
    ("env", "keys"),
    [
        ({}, None),
        ({"OSS_ACCESS_KEY_ID": "a", "OSS_ACCESS_KEY_SECRET": "b"}, OssKeys("a", "b")),
        (
            {"OSS_ACCESS_KEY_ID": "a", "OSS_ACCESS_KEY_SECRET": "b", "OSS_SESSION_TOKEN": "t"},
            OssKeys("a", "b", "t"),
        ),
        (
            {
                "ALIBABA_CLOUD_ACCESS_KEY_ID": "c",
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "d",
                "ALIBABA_CLOUD_SECURITY_TOKEN": "u",
            },
            OssKeys("c", "d", "u"),
        ),
        (  # OSS_* come first
            {
                "OSS_ACCESS_KEY_ID": "a",
                "OSS_ACCESS_KEY_SECRET": "b",
                "ALIBABA_CLOUD_ACCESS_KEY_ID": "c",
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "d",
            },
            OssKeys("a", "b"),
        ),
    ],
)
def test_keys_from_the_environment(env: dict[str, str], keys: OssKeys | None) -> None:
    assert keys_from(env) == keys


def test_half_a_key_pair_is_an_error_naming_the_missing_half() -> None:
    with pytest.raises(partdl.InvalidArgumentError, match="OSS_ACCESS_KEY_SECRET is not"):
        keys_from({"OSS_ACCESS_KEY_ID": "a", "ALIBABA_CLOUD_ACCESS_KEY_ID": "c"})
    assert "secret" not in repr(OssKeys("id", "secret"))


# -- the command against a store that refuses V1 ------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def v4_bucket(store: LocalStore, bucket_name: str) -> str:
    store.v4_only.add(bucket_name)
    return bucket_name


def oss_requests(store: LocalStore, bucket: str) -> list[str]:
    """The Authorization of every request an OSS client sent for the object."""
    return [
        seen.headers.get("authorization", "")
        for seen in store.requests(bucket)
        if seen.key and seen.method in ("HEAD", "GET")
    ]


def assert_all_v4(store: LocalStore, bucket: str, key_id: str = "test") -> None:
    sent = oss_requests(store, bucket)
    assert len(sent) >= 2  # the HEAD and at least one GET
    assert all(value.startswith(f"{OSS_V4}Credential={key_id}/") for value in sent), sent
    assert f"/{OSS_REGION}/oss/aliyun_v4_request" in sent[0]
    assert not any(signed_v1(seen) for seen in store.requests(bucket))


def test_the_store_refuses_v1_for_such_a_bucket(
    store: LocalStore, v4_bucket: str, tmp_path: Path
) -> None:
    store.put(v4_bucket, KEY, b"data")
    with pytest.raises(partdl.AccessDeniedError, match="403"):
        partdl.download_file(
            partdl_v1_bucket(store, v4_bucket), KEY, tmp_path / "out", checkpoint=False
        )
    assert os.listdir(tmp_path) == []


def partdl_v1_bucket(store: LocalStore, name: str) -> object:
    import oss2

    return oss2.Bucket(oss2.Auth("test", "test"), store.endpoint, name)


@pytest.mark.usefixtures("clean_env")
def test_cli_downloads_with_region_flag_signing_v4(
    store: LocalStore,
    v4_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = os.urandom(3 * PART)
    store.put(v4_bucket, KEY, data)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "test")
    src, out = f"oss://{v4_bucket}/{KEY}", tmp_path / "out"
    args = [src, str(out), "--endpoint", store.endpoint, "--region", OSS_REGION, "-q"]
    assert cli.main([*args, "--part-size", "100KiB"]) == 0
    assert out.read_bytes() == data
    assert_all_v4(store, v4_bucket)


@pytest.mark.usefixtures("clean_env")
def test_cli_downloads_with_oss_region_from_the_environment(
    store: LocalStore, v4_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2 * PART)
    store.put(v4_bucket, KEY, data)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "test")
    monkeypatch.setenv("OSS_REGION", OSS_REGION)
    monkeypatch.setenv("OSS_ENDPOINT", store.endpoint)
    out = tmp_path / "out"
    assert cli.main([f"oss://{v4_bucket}/{KEY}", str(out), "-q"]) == 0
    assert out.read_bytes() == data
    assert_all_v4(store, v4_bucket)


@pytest.mark.usefixtures("clean_env")
def test_cli_downloads_with_only_alibaba_cloud_variables(
    store: LocalStore, v4_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2 * PART + 3)
    store.put(v4_bucket, KEY, data)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "sts-id")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "sts-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "sts-token")
    out = tmp_path / "out"
    src = f"oss://{v4_bucket}/{KEY}"
    assert cli.main([src, str(out), "--endpoint", store.endpoint, "--region", OSS_REGION]) == 0
    assert out.read_bytes() == data
    assert_all_v4(store, v4_bucket, key_id="sts-id")
    tokens = {seen.headers.get("x-oss-security-token") for seen in store.requests(v4_bucket)}
    assert "sts-token" in tokens


@pytest.mark.usefixtures("clean_env")
def test_sign_version_1_is_refused_by_such_a_store(
    store: LocalStore,
    v4_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store.put(v4_bucket, KEY, b"data")
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "test")
    args = [f"oss://{v4_bucket}/{KEY}", str(tmp_path / "out"), "--endpoint", store.endpoint]
    assert cli.main([*args, "--sign-version", "1"]) == cli.ExitCode.ACCESS_DENIED
    assert "403" in capsys.readouterr().err
    assert all(value.startswith("OSS test:") for value in oss_requests(store, v4_bucket))


@pytest.mark.usefixtures("clean_env")
def test_no_region_and_an_endpoint_without_one_is_exit_2_before_any_request(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store.put(bucket_name, KEY, b"data")
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "test")
    monkeypatch.chdir(tmp_path)
    args = [f"oss://{bucket_name}/{KEY}", ".", "--endpoint", store.endpoint, "--json"]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    line = captured.err.strip()
    assert "\n" not in line
    assert "--region" in line
    assert "OSS_REGION" in line
    assert json.loads(captured.out)["error"] == "invalid_argument"
    assert os.listdir(tmp_path) == []
    assert oss_requests(store, bucket_name) == []


@pytest.mark.parametrize(
    ("src", "flag"),
    [
        ("https://h/k", ["--region", "cn-hangzhou"]),
        ("https://h/k", ["--profile", "p"]),
        ("s3://b/k", ["--sign-version", "1"]),
    ],
)
def test_flags_for_other_schemes_are_refused(
    src: str, flag: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([src, str(tmp_path / "out"), *flag]) == 2
    assert flag[0] in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


# -- the default chain, in processes of their own ---------------------------------------------
# alibabacloud-credentials reads its variables when first imported: a child each.


def run_cli(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "partdl", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def isolated(home: Path) -> dict[str, str]:
    """No profile files of the user's, no ECS metadata: only what the test writes."""
    return {
        "HOME": str(home),
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CREDENTIALS_FILE": str(home / "credentials.ini"),
    }


def test_missing_credentials_name_what_was_looked_for(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "out"
    args = [f"oss://b/{KEY}", str(out), "--region", OSS_REGION, "--endpoint", "http://127.0.0.1:9"]
    done = run_cli(args, isolated(home))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    for name in (
        "OSS_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_CREDENTIALS_FILE",
    ):
        assert name in lines[0]
    assert not out.exists()


def test_credentials_file_of_the_default_chain(
    store: LocalStore, v4_bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(PART + 1)
    store.put(v4_bucket, KEY, data)
    home = tmp_path / "home"
    home.mkdir()
    (home / "credentials.ini").write_text(
        "[default]\nenable = true\ntype = access_key\n"
        "access_key_id = from-file\naccess_key_secret = file-secret\n"
        "[other]\nenable = true\ntype = access_key\n"
        "access_key_id = other-profile\naccess_key_secret = other-secret\n"
    )
    out = tmp_path / "out"
    args = [f"oss://{v4_bucket}/{KEY}", str(out), "--endpoint", store.endpoint, "-q"]
    done = run_cli([*args, "--region", OSS_REGION], isolated(home))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == data
    assert_all_v4(store, v4_bucket, key_id="from-file")

    out.unlink()
    done = run_cli([*args, "--region", OSS_REGION, "--profile", "other"], isolated(home))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == data
    assert oss_requests(store, v4_bucket)[-1].startswith(f"{OSS_V4}Credential=other-profile/")


def test_the_credentials_package_is_not_imported_when_variables_are_set(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, KEY, b"x" * 1000)
    out = tmp_path / "out"
    code = (
        "import sys; from partdl import cli; "
        f"code = cli.main(['oss://{bucket_name}/{KEY}', {str(out)!r}, '-q', "
        f"'--endpoint', {store.endpoint!r}, '--region', {OSS_REGION!r}]); "
        "print(code, 'alibabacloud_credentials' in sys.modules)"
    )
    base = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    env = {**base, "OSS_ACCESS_KEY_ID": "test", "OSS_ACCESS_KEY_SECRET": "test"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split() == ["0", "False"], done.stderr
    assert out.read_bytes() == b"x" * 1000


# -- s3:// hands --profile and --region to boto3 --------------------------------------------


def test_s3_profile_and_region_go_to_boto3(
    store: LocalStore,
    bucket_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile other]\nregion = us-east-1\n"
        "aws_access_key_id = from-profile\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    data = os.urandom(PART)
    store.put(bucket_name, KEY, data)
    out = tmp_path / "out"
    base = [f"s3://{bucket_name}/{KEY}", str(out), "--endpoint", store.endpoint, "-q"]

    assert cli.main([*base, "--profile", "other", "--region", "eu-west-1"]) == 0
    assert out.read_bytes() == data
    gets = [s for s in store.requests(bucket_name, "GET") if s.key]
    assert gets[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=from-profile/")
    assert "/eu-west-1/s3/" in gets[-1].headers["authorization"]

    assert cli.main([*base, "--profile", "nowhere"]) == 2
    assert "nowhere" in capsys.readouterr().err
