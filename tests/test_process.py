"""Downloads in a separate process: killed outright, and measured for memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PART, leftovers, recorded_parts
from tests.targets import Target

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def start_child(
    target: Target, out: Path, part_size: int, task_num: int, *extra: str
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.child", target.store.endpoint, target.bucket]
    command += [target.key, str(out), str(part_size), str(task_num), *extra]
    return subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def wait_for_line(child: subprocess.Popen[str], wanted: str) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == wanted:
            return
    pytest.fail(f"the child exited ({child.wait()}) before printing {wanted!r}")


@pytest.mark.parametrize("target", ["oss"], indirect=True)
def test_sigkilled_download_resumes_fetching_only_missing_parts(
    target: Target, tmp_path: Path
) -> None:
    data = os.urandom(40 * PART + 1)
    target.put(data)
    out = tmp_path / "out"
    child = start_child(target, out, PART, 3, "--block-at", "0.5")
    wait_for_line(child, "BLOCKED")
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert not out.exists()
    done = recorded_parts(tmp_path / "out.dcp")
    assert 0 < len(done) < 41

    # Requests the killed child sent may still reach the server: mark the rerun's own.
    result = target.download(out, part_size=PART, task_num=3, headers={"x-test-run": "rerun"})

    assert out.read_bytes() == data
    rerun = [s for s in target.store.requests(target.bucket, "GET") if "x-test-run" in s.headers]
    assert len(rerun) == 41 - len(done)
    assert result.parts_reused == len(done)
    assert leftovers(tmp_path, "out") == []


@pytest.mark.parametrize("target", ["oss"], indirect=True)
def test_memory_stays_bounded_with_64_mib_parts(target: Target, tmp_path: Path) -> None:
    part_size = 64 * MiB
    target.put(os.urandom(part_size + 32 * MiB))  # two parts, fetched at once
    child = start_child(target, tmp_path / "out", part_size, 2)
    assert child.stdout is not None
    lines = child.stdout.read().split("\n")
    assert child.wait() == 0
    base_kb = int(lines[0].split()[1])
    assert lines[-2].startswith("PEAK ")
    growth = (int(lines[-2].split()[1]) - base_kb) * 1024
    # Two workers each hold one 1 MiB chunk buffer; a whole part would be 64 MiB.
    assert growth < 24 * MiB, f"peak RSS grew by {growth / MiB:.1f} MiB during the download"
    assert (tmp_path / "out").stat().st_size == part_size + 32 * MiB
