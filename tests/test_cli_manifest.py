"""The lines of ``partdl --input-file``: words, comments, a byte order mark, bad DESTs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from partdl import cli
from partdl.cli.sources import split_line
from partdl.errors import InvalidArgumentError
from tests.store import LocalStore
from tests.test_cli_batch import env, files, json_line, put

__all__ = ["env"]  # the fixture, used by name


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("s3://b/v#2 out.txt\n", ["s3://b/v#2", "out.txt"]),  # '#' inside a word
        ("a#b", ["a#b"]),
        ("a #b", ["a"]),  # after whitespace: a comment
        ("a\t#b c", ["a"]),
        ("# the whole line\n", []),
        ("   # indented\n", []),
        ("a b#c #d", ["a", "b#c"]),
        ('"#x"', ["#x"]),  # quoted: a word
        ("'#x' y", ["#x", "y"]),
        ("\\#x", ["#x"]),  # escaped: a word
        ("a \\#b", ["a", "#b"]),
        ('"a #b" #c', ["a #b"]),  # '#' after a quoted space is still inside the quote
        ("'a #b' #c", ["a #b"]),
        ('"a\\" #b" c', ['a" #b', "c"]),  # an escaped quote does not end the quote
        ("'a\\' #b", ["a\\"]),  # nothing escapes inside '...': the quote ends there
        ("a\\ #b", ["a #b"]),  # an escaped space is part of the word
        ("x'#'y z", ["x#y", "z"]),
        ("'a'#b", ["a#b"]),  # right after a closing quote: still the same word
        ("", []),
    ],
)
def test_lines_split_as_a_shell_would(line: str, words: list[str]) -> None:
    assert split_line(line) == words


def test_a_quote_left_open_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="No closing quotation"):
        split_line("oss://b/k 'out #x")


def run(store: LocalStore, *args: str) -> int:
    return cli.main([*args, "--endpoint", store.endpoint])


@pytest.mark.usefixtures("env")
def test_a_hash_inside_a_key_is_part_of_the_key(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    put(store, bucket_name, {"rel/v": b"the wrong one", "rel/v#2": b"two"})
    listing = tmp_path / "list.txt"
    listing.write_text(f"s3://{bucket_name}/rel/v#2 out.txt  # v#2, not v\n")

    assert run(store, "-i", str(listing), str(tmp_path / "d"), "-q") == 0

    assert files(tmp_path / "d") == {"out.txt": b"two"}


@pytest.mark.usefixtures("env")
def test_a_byte_order_mark_is_ignored_in_a_file_and_on_stdin(
    store: LocalStore, bucket_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(store, bucket_name, {"k/a": b"a", "k/b": b"b"})
    listing = tmp_path / "list.txt"
    listing.write_bytes(f"\ufeffoss://{bucket_name}/k/a\r\n".encode())
    assert run(store, "-i", str(listing), str(tmp_path / "d"), "-q") == 0

    monkeypatch.setattr("sys.stdin", io.StringIO(f"\ufeffoss://{bucket_name}/k/b\n"))
    assert run(store, "-i", "-", str(tmp_path / "d"), "-q") == 0

    assert files(tmp_path / "d") == {"a": b"a", "b": b"b"}


@pytest.mark.usefixtures("env")
def test_a_bad_dest_is_refused_before_any_request_naming_the_line(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, {"k": b"k"})
    listing = tmp_path / "list.txt"
    listing.write_text(f"oss://{bucket_name}/k fine\noss://{bucket_name}/k /etc/evil\n")
    before = len(store.requests(bucket_name))

    assert run(store, "-i", str(listing), str(tmp_path / "d"), "--json") == 2

    out, err = capsys.readouterr()
    message = f"{listing}:2: DEST '/etc/evil' starts with '/' (an absolute path)"
    assert err == f"partdl: error: {message}\n"
    assert json_line(out) == {
        "status": "error",
        "error": "invalid_argument",
        "exit_code": 2,
        "message": message,
    }
    assert store.requests(bucket_name)[before:] == []
    assert not (tmp_path / "d").exists()


@pytest.mark.usefixtures("env")
def test_when_every_object_fails_the_json_names_the_error(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"oss://{bucket_name}/missing\n")

    assert run(store, "-i", str(listing), str(tmp_path / "d"), "--json") == 3

    summary = json_line(capsys.readouterr().out)
    assert (summary["status"], summary["error"], summary["exit_code"]) == ("error", "not_found", 3)
    assert [f["error"] for f in summary["failed"]] == ["not_found"]


@pytest.mark.usefixtures("env")
def test_every_failed_line_is_listed_with_its_dest(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, {"k": b"k"})
    other = store.new_bucket()
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"oss://{bucket_name}/k ok\n"
        f"oss://{other}/k from-other\n"  # the same key, missing in that bucket
        f"oss://{bucket_name}/gone one\n"
        f"oss://{bucket_name}/gone two\n"  # the same missing object, another DEST
    )
    root = tmp_path / "d"

    assert run(store, "-i", str(listing), str(root)) == cli.ExitCode.PARTIAL
    out, err = capsys.readouterr()
    assert "1 downloaded" in out
    assert "3 failed" in out
    # The bucket tells the two k apart: the object is named by its source.
    for source, dest in (
        (f"oss://{other}/k", "from-other"),
        (f"oss://{bucket_name}/gone", "one"),
        (f"oss://{bucket_name}/gone", "two"),
    ):
        assert f"partdl: failed: {source} -> {root / dest}: " in err

    assert run(store, "-i", str(listing), str(root), "--json") == cli.ExitCode.PARTIAL
    summary = json_line(capsys.readouterr().out)
    failed = sorted(
        (f["key"], f["source"], Path(f["path"]).name, f["error"]) for f in summary["failed"]
    )
    assert failed == [
        ("gone", f"oss://{bucket_name}/gone", "one", "not_found"),
        ("gone", f"oss://{bucket_name}/gone", "two", "not_found"),
        ("k", f"oss://{other}/k", "from-other", "not_found"),
    ]


@pytest.mark.usefixtures("env")
def test_a_prefix_with_nothing_under_it_says_so_and_leaves_nothing(
    store: LocalStore, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, bucket_name, {"p/a": b"a"})

    assert run(store, f"oss://{bucket_name}/p/a", str(tmp_path / "d"), "-r") == 0

    out, err = capsys.readouterr()
    assert f"nothing is listed under oss://{bucket_name}/p/a" in err
    assert "0 downloaded" in out
    assert not (tmp_path / "d").exists()
