"""Keys to paths and filters: pure tables."""

from __future__ import annotations

import pytest

from partdl.errors import InvalidArgumentError, UnsafeKeyError
from partdl.filters import PathFilter
from partdl.keys import TEMP_SUFFIX_LENGTH, KeyPath, PathClaims, key_path, relative_to_prefix


@pytest.mark.parametrize(
    ("relative", "parts", "is_folder"),
    [
        ("a.bin", ("a.bin",), False),
        ("a/b/c.bin", ("a", "b", "c.bin"), False),
        ("dir/", ("dir",), True),
        ("", (), True),
        ("with space/ünï cödé?#%.txt", ("with space", "ünï cödé?#%.txt"), False),
        ("..x/x..", ("..x", "x.."), False),
        (".hidden", (".hidden",), False),
        ("x.partdl", ("x.partdl",), False),
    ],
)
def test_safe_keys(relative: str, parts: tuple[str, ...], is_folder: bool) -> None:
    assert key_path(relative) == KeyPath(parts, is_folder)


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("../x", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a/./b", "'.' segment"),
        ("..", "'..' segment"),
        ("a//b", "empty path segment"),
        ("a//", "empty path segment"),
        ("/etc/passwd", "starts with '/'"),
        ("a\\b", "backslash"),
        ("..\\..\\x", "backslash"),
        ("a\0b", "NUL"),
        (".partdl/state.sqlite", "inside .partdl/"),
        (".partdl/", "inside .partdl/"),
        ("f.partdl-0123abcd.tmp", "temp and lock"),
        ("d/f.partdl.lock", "temp and lock"),
        ("x" * 256, "the file system allows 255"),
        ("x" * (256 - TEMP_SUFFIX_LENGTH), "less the 20 of a temp name"),
        ("é" * 128, "256 bytes"),
        ("/".join(["d" * 200] * 21), "path would be"),
    ],
)
def test_unsafe_keys(relative: str, message: str) -> None:
    with pytest.raises(UnsafeKeyError, match=message):
        key_path(relative)


def test_a_folder_name_may_use_the_whole_limit_a_file_name_may_not() -> None:
    longest_folder = "d" * 255
    assert key_path(f"{longest_folder}/x").parts[0] == longest_folder
    with pytest.raises(UnsafeKeyError):
        key_path("f" * 255)


def test_limits_come_from_the_caller() -> None:
    with pytest.raises(UnsafeKeyError, match="allows 14"):
        key_path("abcdefghijklmnop/x", name_max=14)
    with pytest.raises(UnsafeKeyError, match="path would be"):
        key_path("a/b", root_length=4075, path_max=4096)
    assert key_path("a/b", root_length=4000, path_max=4096).parts == ("a", "b")


def test_unsafe_keys_are_value_errors() -> None:
    with pytest.raises(ValueError, match="NUL"):
        key_path("\0")
    assert issubclass(UnsafeKeyError, InvalidArgumentError)


def test_relative_to_prefix() -> None:
    assert relative_to_prefix("data/v3/a/b", "data/v3/") == "a/b"
    assert relative_to_prefix("x", "") == "x"
    with pytest.raises(UnsafeKeyError, match="not under the prefix"):
        relative_to_prefix("other/a", "data/")


def claim_all(keys: list[str], *, fold_case: bool = False) -> dict[str, str]:
    """key -> "ok" or the error, claiming in order."""
    claims = PathClaims(fold_case=fold_case)
    outcome = {}
    for key in keys:
        try:
            claims.claim(key_path(key), key)
            outcome[key] = "ok"
        except UnsafeKeyError as exc:
            outcome[key] = str(exc)
    return outcome


@pytest.mark.parametrize(
    ("keys", "failing", "message"),
    [
        (["a", "a/b"], "a/b", "needs a folder 'a'"),
        (["a/b", "a"], "a", "other keys need a folder"),
        (["a/b/c", "a/b"], "a/b", "other keys need a folder"),
        (["a", "a/"], "a/", "is a folder, but another key is a file"),
        (["a/", "a"], "a", "other keys need a folder"),
        (["x/a", "x/a/b/c"], "x/a/b/c", "needs a folder 'x/a'"),
    ],
)
def test_file_and_folder_conflicts_fail_one_key(
    keys: list[str], failing: str, message: str
) -> None:
    outcome = claim_all(keys)
    assert message in outcome[failing]
    assert [k for k, v in outcome.items() if v == "ok"] == [k for k in keys if k != failing]


def test_folders_and_markers_may_repeat() -> None:
    assert set(claim_all(["d/", "d/a", "d/b", "d/", "d/sub/", "d/sub/x"]).values()) == {"ok"}


def test_case_only_collisions_fail_on_a_case_insensitive_file_system() -> None:
    keys = ["Data/A.bin", "data/a.bin", "DATA/b.bin", "x", "X/y"]
    assert set(claim_all(keys).values()) == {"ok"}
    folded = claim_all(keys, fold_case=True)
    assert folded["Data/A.bin"] == "ok"
    assert "differing only in case" in folded["data/a.bin"]
    assert folded["DATA/b.bin"] == "ok"  # the folder is shared, the names differ
    assert "needs a folder 'x'" in folded["X/y"]


@pytest.mark.parametrize(
    ("include", "exclude", "taken", "left"),
    [
        (["*.parquet"], [], ["a.parquet", "d/e/b.parquet"], ["a.csv", "parquet", "d/x.txt"]),
        ([], ["tmp/*"], ["a", "x/tmp/y", "tmpfile"], ["tmp/a", "tmp/sub/b"]),
        ([], ["tmp"], ["tmpx/a"], ["tmp", "tmp/a", "d/tmp/b"]),
        ([], ["/top.txt"], ["d/top.txt"], ["top.txt"]),
        (["d/**/*.bin"], [], ["d/a.bin", "d/x/y/a.bin"], ["a.bin", "e/d/a.bin"]),
        (["file?.txt"], [], ["file1.txt"], ["file10.txt", "file/.txt"]),
        (["[ab]*"], [], ["a1", "b/x"], ["c1"]),
        (["[!ab]*"], [], ["c1"], ["a1"]),
        (["*.parquet"], ["tmp/*"], ["a.parquet"], ["tmp/a.parquet", "a.csv"]),
        ([], [], ["anything/at/all"], []),
        (["a+b(c).txt"], [], ["a+b(c).txt"], ["aab(c).txt"]),
    ],
)
def test_filters(include: list[str], exclude: list[str], taken: list[str], left: list[str]) -> None:
    select = PathFilter(include, exclude)
    assert [p for p in taken if not select(p)] == []
    assert [p for p in left if select(p)] == []


@pytest.mark.parametrize("pattern", ["", "/", "[abc"])
def test_bad_filters_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidArgumentError):
        PathFilter([pattern])


def test_a_lone_string_is_one_pattern() -> None:
    assert PathFilter("*.bin")("x.bin")
    assert not PathFilter("*.bin")("b")
