"""The listing's read-ahead: order, errors, a bounded lead, the next page asked early."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing

import pytest

from partdl.readahead import ReadAhead

WAIT = 10.0  # seconds a test waits for the other thread before it fails


@pytest.mark.parametrize(("count", "batch"), [(0, 3), (1, 3), (9, 3), (10, 3), (1050, 100)])
def test_every_item_arrives_in_order(count: int, batch: int) -> None:
    with closing(ReadAhead(range(count), batch=batch, depth=2)) as listing:
        assert list(listing) == list(range(count))


def test_an_error_of_the_source_follows_the_items_before_it() -> None:
    failure = OSError("the third page failed")

    def source() -> Iterator[int]:
        yield from range(5)
        raise failure

    got: list[int] = []
    listing = ReadAhead(source(), batch=2, depth=2)
    with pytest.raises(OSError, match="third page") as raised, closing(listing):
        got.extend(listing)
    assert raised.value is failure
    assert got == [0, 1, 2, 3, 4]


def test_the_next_page_is_asked_for_while_the_first_is_still_being_used() -> None:
    asked = threading.Event()

    def pages() -> Iterator[int]:
        yield from range(10)  # page one
        asked.set()  # the request for page two
        yield from range(10, 20)

    with closing(ReadAhead(pages(), batch=5, depth=4)) as listing:
        items = iter(listing)
        assert next(items) == 0
        # Read on the caller's thread, page two would be asked only after item 9.
        assert asked.wait(WAIT)
        assert list(items) == list(range(1, 20))


def test_the_lead_is_bounded() -> None:
    batch, depth = 10, 3
    consumed = 0
    leads: list[int] = []

    def endless() -> Iterator[int]:
        pulled = 0
        while True:
            leads.append(pulled - consumed)
            yield pulled
            pulled += 1

    with closing(ReadAhead(endless(), batch=batch, depth=depth)) as listing:
        for item in listing:
            assert item == consumed
            consumed += 1
            if consumed == 500:
                break
    # depth batches queued, the one the reader holds, the one being filled.
    assert max(leads) <= batch * (depth + 2)
    assert max(leads) >= batch  # it did read ahead


def test_leaving_early_stops_the_thread_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    listing = ReadAhead(endless(), batch=4, depth=2, name="test-list")
    with closing(listing):
        assert next(iter(listing)) == 0
    assert closed.wait(WAIT)
    listing._thread.join(WAIT)
    assert not listing._thread.is_alive()


def test_it_is_iterated_once() -> None:
    listing = ReadAhead(range(3))
    assert list(listing) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="once"):
        list(listing)


@pytest.mark.parametrize(("batch", "depth"), [(0, 1), (1, 0)])
def test_sizes_must_be_positive(batch: int, depth: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        ReadAhead(range(3), batch=batch, depth=depth)
