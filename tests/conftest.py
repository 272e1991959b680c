from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faultproxy import FaultProxy
from tests.store import LocalStore
from tests.targets import FACTORIES, Target

# The Alibaba Cloud credential chain's last resort asks the ECS metadata address, and
# the tests send traffic to loopback only (like AWS_EC2_METADATA_DISABLED for boto3).
# alibabacloud-credentials reads it when first imported, so it is set before any test.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def store() -> Iterator[LocalStore]:
    server = LocalStore()
    yield server
    server.close()


@pytest.fixture
def bucket_name(store: LocalStore) -> str:
    return store.new_bucket()


@pytest.fixture(scope="session")
def fault_proxy_process(store: LocalStore) -> Iterator[FaultProxy]:
    proxy = FaultProxy(store.endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def fault_proxy(fault_proxy_process: FaultProxy) -> Iterator[FaultProxy]:
    """The fault-injecting proxy process in front of the store: no rules, an empty log."""
    fault_proxy_process.clear()
    yield fault_proxy_process
    fault_proxy_process.set_rules()
    fault_proxy_process.release()


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
