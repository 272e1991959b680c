from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store import LocalStore


@pytest.fixture(scope="session")
def store() -> Iterator[LocalStore]:
    server = LocalStore()
    yield server
    server.close()


@pytest.fixture
def bucket_name(store: LocalStore) -> str:
    return store.new_bucket()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A generator seeded by the test's name: failures reproduce."""
    return random.Random(request.node.nodeid)


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))
