"""The checks every backend applies to a ranged answer, as plain tables."""

from __future__ import annotations

import pytest

from partdl.backends._http import (
    body_failure,
    check_partial_response,
    check_same_object,
    content_length,
    oss_stat,
)
from partdl.crc import ChecksumAlgorithm
from partdl.errors import ObjectChangedDuringRead, TransientError
from partdl.model import Checksum, ObjectStat

PINNED = ObjectStat(
    size=1000,
    etag='"abc"',
    last_modified="Tue, 01 Dec 2026 09:00:00 GMT",
    version_id="v1",
)

SAME = [
    {},
    {"ETag": '"abc"'},
    {"ETag": "abc"},
    {"ETag": 'W/"abc"'},
    {"Last-Modified": "Tue, 01 Dec 2026 09:00:00 GMT"},
    {"Last-Modified": "Tue, 01 Dec 2026 09:00:00 +0000"},
    {"x-oss-version-id": "v1"},
    {"x-amz-version-id": "v1"},
    {"ETag": '"abc"', "Last-Modified": "Tue, 01 Dec 2026 09:00:00 GMT", "x-amz-version-id": "v1"},
]
CHANGED = [
    {"ETag": '"abd"'},
    {"ETag": '"abc-2"'},
    {"Last-Modified": "Tue, 01 Dec 2026 09:00:01 GMT"},
    {"Last-Modified": "yesterday"},
    {"x-oss-version-id": "v2"},
    {"x-amz-version-id": "v2"},
    {"ETag": '"abc"', "Last-Modified": "Wed, 02 Dec 2026 09:00:00 GMT"},
]


@pytest.mark.parametrize("headers", SAME)
def test_an_answer_of_the_pinned_version_passes(headers: dict[str, str]) -> None:
    check_same_object(headers, PINNED)


@pytest.mark.parametrize("headers", CHANGED)
def test_an_answer_of_another_version_is_a_change(headers: dict[str, str]) -> None:
    with pytest.raises(ObjectChangedDuringRead):
        check_same_object(headers, PINNED)


def test_what_the_head_did_not_pin_is_not_compared() -> None:
    bare = ObjectStat(size=1000, etag=None, last_modified=None)
    check_same_object({"ETag": '"x"', "Last-Modified": "now", "x-amz-version-id": "v9"}, bare)


RANGE = {"Content-Range": "bytes 0-99/1000", "Content-Length": "100"}


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (206, RANGE, None),
        (206, {**RANGE, "ETag": '"abc"'}, None),
        (206, {**RANGE, "ETag": '"new"'}, ObjectChangedDuringRead),
        # A whole-object 200 of another version is the object changing, not a bad proxy.
        (200, {"ETag": '"new"'}, ObjectChangedDuringRead),
        (200, {"ETag": '"abc"'}, TransientError),
        (206, {"Content-Range": "bytes 0-99/2000"}, ObjectChangedDuringRead),
        (206, {"Content-Range": "bytes 1-100/1000"}, TransientError),
        (206, {"Content-Range": "bytes 0-99/1000", "Content-Length": "99"}, TransientError),
        (500, {"ETag": '"new"'}, TransientError),
    ],
)
def test_ranged_answers(
    status: int, headers: dict[str, str], error: type[Exception] | None
) -> None:
    if error is None:
        check_partial_response(status, headers, 0, 100, PINNED)
        return
    with pytest.raises(error):
        check_partial_response(status, headers, 0, 100, PINNED)


@pytest.mark.parametrize(
    ("exc", "timeout", "message"),
    [
        (TimeoutError("timed out"), 30.0, "the connection stalled: no data for 30 s"),
        (TimeoutError("timed out"), None, "the connection stalled: no data for the read timeout"),
        (ConnectionResetError(104, "reset"), 30.0, "connection failed mid-body: Connection"),
    ],
)
def test_a_failed_body_read_is_transient_and_says_which_failure(
    exc: BaseException, timeout: float | None, message: str
) -> None:
    failure = body_failure(exc, timeout)

    assert isinstance(failure, TransientError)
    assert str(failure).startswith(message)


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        ({"Content-Length": "12"}, 12),
        ({"Content-Length": "0"}, 0),
        ({}, None),
        ({"Content-Length": "-1"}, None),
        ({"Content-Length": "twelve"}, None),
    ],
)
def test_content_length_is_a_number_or_none(headers: dict[str, str], length: int | None) -> None:
    assert content_length(headers) == length


def test_an_oss_answer_pins_its_etag_date_crc_and_version() -> None:
    headers = {
        "ETag": '"abc"',
        "Last-Modified": "Tue, 01 Dec 2026 09:00:00 GMT",
        "x-oss-hash-crc64ecma": "18446744073709551615",
        "x-oss-version-id": "v2",
    }
    stat = oss_stat(headers, 1000, "v1")
    assert stat == ObjectStat(
        size=1000,
        etag='"abc"',
        last_modified="Tue, 01 Dec 2026 09:00:00 GMT",
        checksum=Checksum(ChecksumAlgorithm.CRC64XZ, 2**64 - 1),
        version_id="v2",
    )
    bare = oss_stat({"x-oss-hash-crc64ecma": "not a number"}, 5, "v1")
    assert bare.checksum is None
    assert bare.version_id == "v1"
