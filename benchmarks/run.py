"""``python -m benchmarks.run``: every scenario, every contender, alternating, medians.

Each contender run is a whole process (its wall time includes the interpreter and
imports, its peak RSS is its own); runs alternate between contenders so that a
burst of load from elsewhere on the machine hits them all alike; every output is
checked against the object's CRC-64 before it is counted. ``--quick`` (or
``BENCH_QUICK=1``) shrinks the objects and does one run each, for iterating; its
report goes to ``benchmarks/.data/report/`` instead of ``docs/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from partdl.plan import MiB

from . import report
from .measure import (
    DATA,
    ROOT,
    Measurement,
    command,
    measure,
    object_file,
    object_path,
    serving,
)
from .scenarios import Scenario, build
from .server import load_object

_RUN_TIMEOUT = 900.0
# Medians of 5: on this VM the kernel time of a run that writes 1 GiB of fresh pages
# swings by 2-3x from run to run (for curl as much as for partdl), so 3 can mislead.
_RUNS = 5
_PACKAGES = ("partdl", "oss2", "boto3", "botocore", "s3transfer", "requests", "urllib3", "fastcrc")


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def _proc_field(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":" if ":" in line else "=")
            if name.strip() == key:
                return value.strip().strip('"')
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, str]:
    info = {
        "cpu": _proc_field("/proc/cpuinfo", "model name"),
        "cores": str(os.cpu_count()),
        "memory": _proc_field("/proc/meminfo", "MemTotal"),
        "os": f"{_proc_field('/etc/os-release', 'PRETTY_NAME')}, Linux {platform.release()}",
        "python": platform.python_version(),
        "aria2c": _first_line(["aria2c", "--version"]),
        "curl": _first_line(["curl", "--version"]),
    }
    for package in _PACKAGES:
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def _work_dir(requested: Path | None, largest: int) -> Path:
    """Where contenders write: tmpfs when it has room, so the disk does not dominate."""
    if requested is not None:
        requested.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="partdl-bench-", dir=requested))
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 1.5 * largest:
        return Path(tempfile.mkdtemp(prefix="partdl-bench-", dir=shm))
    DATA.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="out-", dir=DATA))


def _say(text: str) -> None:
    print(text, flush=True)


def run_scenario(scenario: Scenario, runs: int, work: Path) -> list[Measurement]:
    runs = min(runs, scenario.max_runs or runs)
    spec = scenario.obj
    path = object_file(spec)
    stored = load_object(spec.name, str(path), spec.repeat)
    expected = (stored.size, stored.crc64xz)
    measurements = []
    _say(f"({scenario.key}) {scenario.title}")
    with serving({spec.name: (path, spec.repeat)}, scenario.behaviour) as endpoint:
        # One unmeasured run warms the page cache, tmpfs pages and the server.
        measure(scenario.variants[0], 0, endpoint, spec.name, expected, work, _RUN_TIMEOUT)
        for run in range(1, runs + 1):
            for variant in scenario.variants:
                m = measure(variant, run, endpoint, spec.name, expected, work, _RUN_TIMEOUT)
                speed = spec.size / m.wall / MiB if m.ok else 0.0
                status = "ok" if m.ok else f"FAILED {m.error}"
                _say(
                    f"    run {run} {variant.label:<52} {m.wall:7.2f} s {speed:7.0f} MiB/s "
                    f"{m.max_rss / MiB:5.0f} MiB  {status}"
                )
                measurements.append(m)
    return measurements


def _commands(scenarios: list[Scenario]) -> list[str]:
    lines, seen = [], set()
    for scenario in scenarios:
        for variant in scenario.variants:
            key = (variant.contender, variant.checkpoint, variant.crc)
            if key in seen:
                continue
            seen.add(key)
            argv = command(variant, "http://127.0.0.1:PORT", "OBJECT", Path("DEST/out.bin"))
            argv = ["python" if a == sys.executable else a for a in argv]
            lines.append(f"- {variant.label}: `{' '.join(argv)}`")
    return lines


def render(
    scenarios: list[Scenario],
    measurements: dict[str, list[Measurement]],
    meta: dict[str, Any],
    out_dir: Path,
) -> Path:
    results = {
        s.key: (s, report.summarise(s, measurements[s.key]))
        for s in scenarios
        if s.key in measurements
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = out_dir / "benchmarks.png"
    report.chart(results, chart)
    doc = out_dir / "benchmarks.md"
    doc.write_text(_document(results, meta, scenarios, chart.name))
    return doc


def _document(
    results: dict[str, tuple[Scenario, list[report.Summary]]],
    meta: dict[str, Any],
    scenarios: list[Scenario],
    chart_name: str,
) -> str:
    info: dict[str, str] = meta["machine"]
    quick = " --quick" if meta["quick"] else ""
    merged = f", scenarios {meta['merged']} with `--merge`" if meta.get("merged") else ""
    out = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python -m benchmarks.run{quick}`) "
        f"on {meta['date']}{merged}; median of {meta['runs']} alternating runs per contender "
        "(fewer where a scenario says so), each a whole process (interpreter start and imports "
        "included), every output checked "
        "against the object's CRC-64 before it counts. Throughput is object size / median "
        "wall time; *partdl x* is the reference partdl run's throughput (first row) over "
        "the row's; *Best s* is the fastest run; *In-call s* is the time inside the download "
        "call (Python contenders); *CPU s* is the process's user + system time.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']} x {info['cores']} cores; memory {info['memory']}; {info['os']}",
        f"- Python {info['python']}; partdl {info['partdl']}, oss2 {info['oss2']}, "
        f"boto3 {info['boto3']} (botocore {info['botocore']}, s3transfer {info['s3transfer']}), "
        f"requests {info['requests']}, urllib3 {info['urllib3']}, fastcrc {info['fastcrc']}",
        f"- {info['aria2c']}; {info['curl'].split(' (')[0]}",
        f"- Load average (1 min) before / after the run: {meta['load_before']:.2f} / "
        f"{meta['load_after']:.2f}. The machine is shared with other work; figures taken "
        "under load are noisy, which is why runs alternate and medians are reported.",
        f"- Destinations written to {meta['work_kind']}; the server reads its object from "
        "the page cache.",
        "",
        "## Targets",
        "",
        "| Target | Goal | Measured | Met |",
        "|---|---|---|---|",
    ]
    for target in report.targets(results):
        met = {True: "yes", False: "**no**", None: "-"}[target.met]
        out.append(f"| {target.name} | {target.goal} | {target.measured} | {met} |")
    out += ["", f"![throughput per scenario]({chart_name})", ""]
    for key, (scenario, rows) in results.items():
        runs = max((r.runs for r in rows), default=0)
        about = f"{scenario.about} Median of {runs} runs."
        out += [f"## ({key}) {scenario.title}", "", about, "", *report.table(scenario, rows), ""]
    notes = ROOT / "benchmarks" / "notes.md"
    if notes.exists():
        out += [notes.read_text().rstrip(), ""]
    out += [
        "## Commands",
        "",
        "`make bench` installs aria2 and curl when missing, then runs "
        "`python -m benchmarks.run` (add `--quick` or `BENCH_QUICK=1` for a short "
        "iteration run, `--scenarios a,c` to pick scenarios, `--merge` to re-run those and "
        "keep the saved results of the rest, `--runs N`). The server is "
        "`python -m benchmarks.server --object NAME=PATH[*REPEAT] [--rate B/s] [--delay S]`. "
        "One run of each contender executes:",
        "",
        *_commands(scenarios),
        "",
    ]
    return "\n".join(out)


def _to_json(measurements: dict[str, list[Measurement]], meta: dict[str, Any]) -> str:
    body = {
        "meta": meta,
        "measurements": {k: [dataclasses.asdict(m) for m in v] for k, v in measurements.items()},
    }
    return json.dumps(body, indent=1)


def _from_json(text: str) -> tuple[dict[str, list[Measurement]], dict[str, Any]]:
    body = json.loads(text)
    found = {k: [Measurement(**m) for m in v] for k, v in body["measurements"].items()}
    return found, body["meta"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="partdl benchmarks")
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("BENCH_QUICK")))
    parser.add_argument("--runs", type=int, default=None, help="runs per contender (5; quick 1)")
    parser.add_argument("--scenarios", default="", help="comma-separated keys, e.g. a,c")
    parser.add_argument("--work-dir", type=Path, default=None, help="where downloads go")
    parser.add_argument("--report-dir", type=Path, default=None)
    parser.add_argument("--report-only", action="store_true", help="re-render the last results")
    parser.add_argument("--keep-data", action="store_true", help="keep the object files")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="re-run the chosen scenarios and keep the saved results of the others",
    )
    return parser.parse_args(argv)


def _selected(scenarios: list[Scenario], keys: str) -> list[Scenario]:
    wanted = {k.strip() for k in keys.split(",") if k.strip()}
    return [s for s in scenarios if not wanted or s.key in wanted]


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    scenarios = _selected(build(quick=args.quick), args.scenarios)
    runs = args.runs or (1 if args.quick else _RUNS)
    report_dir = args.report_dir or (DATA / "report" if args.quick else ROOT / "docs")
    results_file = DATA / f"results-{'quick' if args.quick else 'full'}.json"
    if args.report_only:
        saved, saved_meta = _from_json(results_file.read_text())
        _say(f"wrote {render(scenarios, saved, saved_meta, report_dir)}")
        return
    largest = max(s.obj.size for s in scenarios)
    work = _work_dir(args.work_dir, largest)
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "runs": runs,
        "machine": machine(),
        "load_before": os.getloadavg()[0],
        "work_kind": "tmpfs (/dev/shm)" if str(work).startswith("/dev/shm") else "the disk",
    }
    measurements: dict[str, list[Measurement]] = {}
    rerun = {s.key for s in scenarios}
    if args.merge and results_file.exists():
        measurements, saved_meta = _from_json(results_file.read_text())
        scenarios = [s for s in build(quick=args.quick) if s.key in rerun or s.key in measurements]
        meta["merged"] = f"({', '.join(sorted(rerun))}) re-run on {meta['date']}"
        meta["date"] = saved_meta["date"]
    try:
        for scenario in scenarios:
            if scenario.key not in rerun:  # kept from the saved results (--merge)
                continue
            measurements[scenario.key] = run_scenario(scenario, runs, work)
            meta["load_after"] = os.getloadavg()[0]
            DATA.mkdir(parents=True, exist_ok=True)
            results_file.write_text(_to_json(measurements, meta))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep_data:
            for spec in {s.obj for s in scenarios}:
                object_path(spec).unlink(missing_ok=True)
    _say(f"wrote {render(scenarios, measurements, meta, report_dir)}")


if __name__ == "__main__":
    main()
