"""HTTP dates both ways, read and written by hand for every object: pure tables."""

from __future__ import annotations

import datetime
import email.utils
import random

import pytest

from partdl.listing import http_date, mtime_ns

NOV_6_1994 = 784111777 * 1_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", NOV_6_1994),  # IMF-fixdate: what stores send
        ("Sunday, 06-Nov-94 08:49:37 GMT", NOV_6_1994),  # RFC 850
        ("Sun Nov  6 08:49:37 1994", NOV_6_1994),  # asctime
        ("Sun, 06 Nov 1994 09:49:37 +0100", NOV_6_1994),
        ("Sun, 06 Nov 1994 08:49 GMT", NOV_6_1994 - 37 * 1_000_000_000),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Wed, 31 Dec 1969 23:59:59 GMT", -1_000_000_000),
        ("Sun, 31 Feb 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 25:49:37 GMT", None),
        ("Sun, 06 Nov 1994 08:49:xx GMT", None),
        ("Sun, 06 Nov 1994 8:49:37:1 GMT", None),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_mtime_ns(text: str | None, expected: int | None) -> None:
    assert mtime_ns(text) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (784111777, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (784111777.9, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (-0.5, "Wed, 31 Dec 1969 23:59:59 GMT"),
        (
            datetime.datetime(2024, 2, 29, 23, 59, 59, tzinfo=datetime.UTC),
            "Thu, 29 Feb 2024 23:59:59 GMT",
        ),
        (
            datetime.datetime(
                2024, 3, 1, 8, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8))
            ),
            "Fri, 01 Mar 2024 00:00:00 GMT",
        ),
    ],
)
def test_http_date(moment: float | datetime.datetime, expected: str) -> None:
    assert http_date(moment) == expected


def test_both_agree_with_email_utils(rng: random.Random) -> None:
    for _ in range(5000):
        moment = rng.uniform(-2e9, 4e9)
        text = http_date(moment)
        assert text == email.utils.formatdate(moment, usegmt=True)
        parsed = email.utils.parsedate_to_datetime(text)
        assert mtime_ns(text) == int(parsed.timestamp()) * 1_000_000_000
