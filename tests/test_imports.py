"""``import partdl`` stays cheap: names load from their modules when first used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import partdl
from tests.helpers import OSS_REGION
from tests.store import LocalStore

# What a program that only imports partdl must not pay for.
HEAVY = ["partdl.batch", "partdl.execute", "partdl.state", "partdl.engine", "partdl.backends"]
HEAVY += ["sqlite3", "urllib3", "requests", "http.client", "oss2", "boto3"]


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_partdl_loads_neither_the_tree_layer_nor_the_http_stack() -> None:
    loaded = loaded_after("import partdl")
    assert "partdl" in loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_one_object_entry_points_do_not_load_the_tree_layer() -> None:
    loaded = loaded_after("import partdl\npartdl.download_file, partdl.download_url")
    assert "partdl.api" in loaded
    # The engine loads with the first download, the tree layer never for one object.
    assert sorted(loaded & {"partdl.batch", "partdl.engine", "partdl.state", "sqlite3"}) == []


def test_a_batch_name_loads_its_module_then_is_a_plain_attribute() -> None:
    loaded = loaded_after("from partdl import BatchResult\nassert BatchResult().ok")
    assert "partdl.batch" in loaded


def test_every_public_name_resolves_and_unknown_ones_raise() -> None:
    assert set(partdl.__all__) == {"__version__", *partdl._MODULE_OF}  # complete
    for name in partdl.__all__:
        assert getattr(partdl, name) is not None, name
    assert set(partdl.__all__) <= set(dir(partdl))
    assert partdl.Status.SKIPPED.value == "skipped"
    assert partdl.BatchResult.__module__ == "partdl.batch"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        partdl.nothing_here  # noqa: B018
    with pytest.raises(ImportError):
        exec("from partdl import nothing_here")


def test_the_command_over_plain_http_loads_no_tls_and_no_unneeded_stdlib() -> None:
    # Every millisecond before the first request is paid by every run of the command.
    code = """
import socket
from partdl.cli import parsing
from partdl.cli import tree  # noqa: F401  (the tree path's modules)
from partdl.backends import oss_direct  # noqa: F401
from partdl.backends._wire import Origin
parsing.build_parser().parse_args(["oss://b/k", "d", "--part-size", "1.5MiB"])
listener = socket.create_server(("127.0.0.1", 0))
Origin("http", "127.0.0.1", listener.getsockname()[1], 5.0, 5.0).connect().close()
"""
    loaded = loaded_after(code)
    assert "partdl.api" in loaded
    unneeded = {"ssl", "encodings.idna", "decimal", "shutil", "secrets", "ctypes"}
    assert sorted(loaded & unneeded) == []
    # The tree layer and the engine load once the listing's first request has gone out.
    assert sorted(loaded & {"partdl.batch", "partdl.engine", "partdl.state", "sqlite3"}) == []


def test_a_tree_starts_listing_before_it_loads_the_tree_layer(
    store: LocalStore, bucket_name: str, tmp_path: Path
) -> None:
    store.put(bucket_name, "p/a.bin", b"a" * 1000)
    store.put(bucket_name, "p/b/c.bin", b"c" * 3000)
    code = f"""
import json, sys, threading
from partdl.backends.oss_direct import OssDirectBucket
from partdl.oss_setup import OssKeys
import partdl

threads_then = []

class Watch:  # sees the import of the tree layer begin
    def find_spec(self, name, path=None, target=None):
        if name == "partdl.batch":
            threads_then.append(sorted(t.name for t in threading.enumerate()))
        return None

sys.meta_path.insert(0, Watch())
bucket = OssDirectBucket({store.endpoint!r}, {bucket_name!r}, {OSS_REGION!r}, OssKeys("t", "t"))
result = partdl.download_prefix(bucket, "p/", {str(tmp_path)!r}, task_num=2)
print(json.dumps([threads_then, sorted(result.downloaded)]))
"""
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    threads_then, downloaded = json.loads(done.stdout.splitlines()[-1])
    assert len(threads_then) == 1
    assert "partdl-list" in threads_then[0]
    assert downloaded == ["p/a.bin", "p/b/c.bin"]
    assert (tmp_path / "b" / "c.bin").read_bytes() == b"c" * 3000


def test_one_object_through_partdls_own_client_parses_no_xml() -> None:
    code = """
from partdl.cli import single  # noqa: F401
from partdl.backends import oss_direct, s3_direct  # noqa: F401
"""
    assert sorted(m for m in loaded_after(code) if m.startswith("xml")) == []
