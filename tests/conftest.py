from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store import LocalStore
from tests.targets import FACTORIES, Target


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


@pytest.fixture(params=sorted(FACTORIES))
def target(request: pytest.FixtureRequest, store: LocalStore, bucket_name: str) -> Target:
    """The object under test, reached through each backend in turn."""
    return FACTORIES[request.param](store, bucket_name)
