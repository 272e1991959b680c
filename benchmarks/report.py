"""Turning measurements into ``docs/benchmarks.md`` and its chart."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from partdl.plan import MiB

from .measure import Measurement
from .scenarios import (
    ARIA2C,
    AWS_CLI,
    BOTO3,
    CURL,
    DD,
    FLOOR,
    OSS2,
    OSS_V2,
    PARTDL_CLI,
    PARTDL_CLI_OSS,
    S5CMD,
    Scenario,
    Variant,
    unavailable,
)

RSS_LIMIT = 100 * MiB
TREE_RSS_LIMIT = 150 * MiB
"""Issue 12: peak RSS at 100,000 listed keys."""
GiB = 1024 * MiB
DISK, TMPFS = "disk", "tmpfs"


@dataclass(frozen=True, slots=True)
class Summary:
    """The median of one variant's runs in one scenario, on one medium."""

    variant: Variant
    runs: int
    failures: int
    wall: float
    low: float
    """The fastest run's wall time: what the tool does when nothing else interferes."""
    high: float
    """The slowest run's wall time; ``low``-``high`` is the spread."""
    inner: float | None
    throughput: float
    """Bytes per second over the median wall time (0 when every run failed)."""
    peak_rss: int
    cpu: float
    """Median CPU seconds (user + system) of the contender's process."""
    cpu_per_gib: float
    error: str
    cpu_split: tuple[float, float] | None = None
    """CPU s/GiB of the calling process and of each executor worker (medians), when
    the client reported them and ran on more than one process."""


@dataclass(frozen=True, slots=True)
class Result:
    """One scenario's summaries: on the disk (the figures), and on tmpfs when measured."""

    scenario: Scenario
    rows: list[Summary]
    tmpfs: list[Summary]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None
    """None when it could not be measured (a contender missing or failing)."""


def summarise(
    scenario: Scenario, measurements: Sequence[Measurement], medium: str = DISK
) -> list[Summary]:
    summaries = []
    gib = scenario.size / GiB
    for variant in scenario.variants:
        mine = [m for m in measurements if m.label == variant.label and m.medium == medium]
        good = [m for m in mine if m.ok]
        walls = [m.wall for m in good]
        wall = statistics.median(walls) if good else 0.0
        inners = [m.inner for m in good if m.inner is not None]
        cpu = statistics.median(m.cpu for m in good) if good else 0.0
        error = next((m.error for m in mine if not m.ok), "")
        if not mine:
            error = unavailable(variant) or "not run"
        split = None
        selves = [m.cpu_self for m in good if m.cpu_self is not None]
        workers = [m.cpu_workers for m in good if m.cpu_workers is not None]
        if variant.processes > 1 and selves and workers and gib:
            split = (
                statistics.median(selves) / gib,
                statistics.median(workers) / variant.processes / gib,
            )
        summaries.append(
            Summary(
                variant=variant,
                runs=len(mine),
                failures=len(mine) - len(good),
                wall=wall,
                low=min(walls, default=0.0),
                high=max(walls, default=0.0),
                inner=statistics.median(inners) if inners else None,
                throughput=scenario.size / wall if wall else 0.0,
                peak_rss=max((m.max_rss for m in mine), default=0),
                cpu=cpu,
                cpu_per_gib=cpu / gib if gib else 0.0,
                error=error,
                cpu_split=split,
            )
        )
    return summaries


def result(scenario: Scenario, measurements: Sequence[Measurement]) -> Result:
    tmpfs = summarise(scenario, measurements, TMPFS) if scenario.tmpfs else []
    if not any(row.runs for row in tmpfs):
        tmpfs = []
    return Result(scenario, summarise(scenario, measurements, DISK), tmpfs)


def _find(
    summaries: Sequence[Summary], contender: str, *, crc: bool = True, fsync: bool = True
) -> Summary | None:
    for summary in summaries:
        v = summary.variant
        if v.contender != contender or v.crc != crc or v.fsync != fsync or v.suffix:
            continue
        if summary.throughput:
            return summary
    return None


def _ratio_target(name: str, goal: float, ref: Summary | None, other: Summary | None) -> Target:
    if ref is None or other is None or not ref.throughput or not other.throughput:
        return Target(name, f">= {goal}x", "not measured", None)
    ratio = ref.throughput / other.throughput
    return Target(name, f">= {goal}x", f"{ratio:.2f}x", ratio >= goal)


def _cost_target(name: str, goal: float, summaries: Sequence[Summary]) -> Target:
    on, off = summaries[0], summaries[1]
    if not on.wall or not off.wall:
        return Target(name, f"<= {goal:.0%}", "not measured", None)
    cost = on.wall / off.wall - 1
    return Target(name, f"<= {goal:.0%}", f"{cost:+.1%}", cost <= goal)


def _floor_context(ref: Summary, rows: Sequence[Summary]) -> list[Target]:
    """What the bare-socket floor reaches against the same rivals: no goal, context.

    When even the floor falls short of a ratio, no client doing partdl's work can
    meet it on this machine.
    """
    floor = _find(rows, FLOOR)
    if floor is None or not floor.throughput or not ref.throughput:
        return []
    share = f"{ref.throughput / floor.throughput:.2f} of the floor"
    if ref.inner and floor.inner:
        share += f" ({floor.inner / ref.inner:.2f} in the call)"
    found = [Target("(a) partdl, share of the bare-socket floor", "context", share, None)]
    for name, contender in (
        ("s5cmd", S5CMD),
        ("boto3/s3transfer", BOTO3),
        ("aria2c", ARIA2C),
        ("curl", CURL),
    ):
        other = _find(rows, contender)
        if other is not None and other.throughput:
            ratio = floor.throughput / other.throughput
            found.append(Target(f"(a) floor vs {name}", "context", f"{ratio:.2f}x", None))
    return found


def _headline(rows: Sequence[Summary]) -> list[Target]:
    """(a): partdl without fsync against the fast tools; against the SDKs both durable
    (partdl's default) and without fsync (the SDKs' own promise); for the library (the
    first row) and for the command line."""
    refs = [rows[0]]
    refs += [cli for kind in (PARTDL_CLI_OSS, PARTDL_CLI) if (cli := _find(rows, kind))]
    found = []
    for ref in refs:
        fast = _find(rows, ref.variant.contender, fsync=False)
        label = f"(a) {ref.variant.label}, fsync=False vs"
        found += [
            _ratio_target(f"{label} s5cmd", 1.0, fast, _find(rows, S5CMD)),
            _ratio_target(f"{label} aria2c", 1.5, fast, _find(rows, ARIA2C)),
            _ratio_target(f"{label} boto3/s3transfer", 1.5, fast, _find(rows, BOTO3)),
            _ratio_target(f"(a) {ref.variant.label} vs oss2 (CRC on)", 6, ref, _find(rows, OSS2)),
            _ratio_target(
                f"(a) {ref.variant.label} vs the OSS SDK V2 downloader",
                6,
                ref,
                _find(rows, OSS_V2),
            ),
            # Neither SDK fsyncs: the same promise is partdl's fsync=False.
            _ratio_target(f"{label} oss2 (CRC on)", 6, fast, _find(rows, OSS2)),
            _ratio_target(f"{label} the OSS SDK V2 downloader", 6, fast, _find(rows, OSS_V2)),
        ]
    found += _floor_context(refs[0], rows)
    for row in rows:
        if row.variant.is_partdl and row.variant.task_num >= 16:
            found.append(_rss_target(f"(a) {row.variant.label}", row))
    return found


def _durable_targets(rows: Sequence[Summary]) -> list[Target]:
    """(h): the durable default within 15% of the slower of fsync=False and the disk."""
    found = []
    dd = _find(rows, DD)
    for row in rows:
        v = row.variant
        if not v.is_partdl or not v.fsync:
            continue
        name = f"(h) {v.label} vs max(fsync=False, dd conv=fsync)"
        fast = _find(rows, v.contender, fsync=False)
        if not row.wall or fast is None or dd is None:
            found.append(Target(name, "<= 1.15x", "not measured", None))
            continue
        bound = max(fast.wall, dd.wall)
        ratio = row.wall / bound
        which = "fsync=False" if fast.wall >= dd.wall else "dd"
        measured = f"{ratio:.2f}x ({row.wall:.2f} s vs {bound:.2f} s, {which})"
        found.append(Target(name, "<= 1.15x", measured, ratio <= 1.15))
    return found


def targets(results: dict[str, Result]) -> list[Target]:
    """The issue's targets, judged on this run's medians with destinations on the disk."""
    found: list[Target] = []
    if "a" in results:
        found += _headline(results["a"].rows)
    if "b" in results:
        res = results["b"]
        found += [_ideal_target(res.scenario, r, 0.9) for r in res.rows if r.variant.is_partdl]
    if "d" in results:
        found += [
            _rss_target(f"(d) {r.variant.label}", r)
            for r in results["d"].rows
            if r.variant.is_partdl
        ]
    if "e" in results:
        res = results["e"]
        parts = res.scenario.obj.size // (res.rows[0].variant.part_size or res.scenario.obj.size)
        found.append(_cost_target(f"(e) checkpoint cost at {parts:,} parts", 0.10, res.rows))
    if "f" in results:
        found.append(_cost_target("(f) CRC cost", 0.05, results["f"].rows))
    if "g" in results:
        res = results["g"]
        found += [_ideal_target(res.scenario, r, 0.8) for r in res.rows if r.variant.is_partdl]
    if "h" in results:
        found += _durable_targets(results["h"].rows)
    found += tree_targets(results)
    return found


def _tree_row(rows: Sequence[Summary], contender: str, **knobs: object) -> Summary | None:
    """The row of ``contender`` whose variant has these knobs (``file_workers=8``)."""
    for row in rows:
        v = row.variant
        if v.contender == contender and all(getattr(v, k) == x for k, x in knobs.items()):
            return row
    return None


def _partdl_rows(rows: Sequence[Summary]) -> list[Summary]:
    return [r for r in rows if r.variant.is_partdl and r.variant.processes == 1]


def tree_targets(results: dict[str, Result]) -> list[Target]:
    """Issue 12: (i) >= 1.0x s5cmd and >= 3x aws-cli; (j) >= 1.0x s5cmd, >= 0.95 of the
    ideal under the cap; <= 150 MiB at 100,000 listed keys. Issue 13: (k) context."""
    found: list[Target] = []
    for key, rivals in (("i", ((S5CMD, 1.0), (AWS_CLI, 3.0))), ("j", ((S5CMD, 1.0),))):
        if key not in results:
            continue
        rows = results[key].rows
        for row in _partdl_rows(rows):
            for contender, goal in rivals:
                knobs = {"file_workers": row.variant.task_num} if contender == S5CMD else {}
                other = _tree_row(rows, contender, **knobs)
                rival = other.variant.label if other else contender
                name = f"({key}) {row.variant.label} vs {rival}"
                found.append(_ratio_target(name, goal, row, other))
    if "j-cap" in results:
        res = results["j-cap"]
        found += [_ideal_target(res.scenario, r, 0.95) for r in _partdl_rows(res.rows)]
    if "i-keys" in results:
        res = results["i-keys"]
        count = res.scenario.tree.count if res.scenario.tree else 0
        found += [
            _rss_target(f"(i-keys) {r.variant.label}, {count:,} keys", r, TREE_RSS_LIMIT)
            for r in res.rows
        ]
    for key in ("k-i", "k-j"):
        if key not in results:
            continue
        rows = results[key].rows
        for one in _partdl_rows(rows):
            two = _tree_row(rows, one.variant.contender, processes=2)
            if two is None or not two.throughput or not one.throughput:
                measured = "not measured" + (f" ({two.error})" if two and two.error else "")
            else:
                measured = f"{two.throughput / one.throughput:.2f}x"
            name = f"({key}) {one.variant.label}: 2 processes vs 1"
            found.append(Target(name, "context", measured, None))
    return found


def _ideal_target(scenario: Scenario, row: Summary, goal: float) -> Target:
    """Judged on the whole process (interpreter start and imports included), as a user
    waits; the share inside the download call is shown beside it.
    """
    ideal = scenario.ideal.get(row.variant.label, 0.0)
    name = f"({scenario.key}) {row.variant.label}, share of the ideal {ideal / MiB:.0f} MiB/s"
    if not ideal or not row.wall:
        return Target(name, f">= {goal}", "not measured", None)
    whole = row.throughput / ideal
    measured = f"{whole:.2f} whole process"
    if row.inner:
        measured += f" ({scenario.size / row.inner / ideal:.2f} in the call)"
    return Target(name, f">= {goal}", measured, whole >= goal)


def _rss_target(name: str, row: Summary, limit: int = RSS_LIMIT) -> Target:
    goal = f"<= {limit // MiB} MiB"
    if not row.runs or row.failures == row.runs:
        return Target(f"{name} peak RSS", goal, "not measured", None)
    measured = f"{row.peak_rss / MiB:.0f} MiB"
    return Target(f"{name} peak RSS", goal, measured, row.peak_rss <= limit)


def _cell(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value else "-"


def _spread(row: Summary) -> str:
    return f"{row.low:.2f}-{row.high:.2f}" if row.wall else "-"


def table(res: Result) -> list[str]:
    scenario, rows = res.scenario, res.rows
    by_label = {r.variant.label: r for r in res.tmpfs}
    ref = rows[0].throughput
    head = (
        "| Contender | Part | Tasks | Wall s | Spread s | In-call s | CPU s/GiB | MiB/s "
        "| partdl x | RSS MiB |"
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    split = any(r.variant.processes > 1 for r in rows)
    if split:
        head += " CPU s/GiB per process |"
        rule += "---:|"
    if by_label:
        head += " tmpfs wall s | tmpfs spread s | tmpfs CPU s/GiB |"
        rule += "---:|---:|---:|"
    lines = [head, rule]
    for row in rows:
        v = row.variant
        part = _size(v.part_size) if v.contender not in (CURL, DD) else "-"
        if scenario.tree is not None and not v.is_partdl:
            part = "its own"
        ratio = f"{ref / row.throughput:.2f}" if row.throughput and ref else "-"
        if not row.runs:
            note = f" (not run: {row.error})"
        elif row.failures:
            note = f" ({row.failures}/{row.runs} failed: {row.error})"
        else:
            note = ""
        rss = f"{row.peak_rss / MiB:.0f}" if row.runs else "-"
        line = (
            f"| {v.label}{note} | {part} | {v.task_num} | {_cell(row.wall)} | {_spread(row)} "
            f"| {_cell(row.inner or 0.0)} | {_cell(row.cpu_per_gib)} "
            f"| {_cell(row.throughput / MiB, 0)} | {ratio} "
            f"| {rss} |"
        )
        if split:
            line += f" {_per_process(row)} |"
        if by_label:
            other = by_label[v.label]
            line += f" {_cell(other.wall)} | {_spread(other)} | {_cell(other.cpu_per_gib)} |"
        lines.append(line)
    for label, ideal in scenario.ideal.items():
        if any(r.variant.label == label and r.variant.is_partdl for r in rows):
            blanks = " |" * ((3 if by_label else 0) + split)
            lines.append(f"| ideal for {label} | | | | | | | {ideal / MiB:.0f} | | |{blanks}")
            break
    return lines


def _per_process(row: Summary) -> str:
    """``0.41 + 2 x 0.62``: the calling process, then each worker; one process: its own."""
    if row.cpu_split is not None:
        caller, worker = row.cpu_split
        return f"{caller:.2f} + {row.variant.processes} x {worker:.2f}"
    return _cell(row.cpu_per_gib) if row.variant.processes == 1 else "-"


def _size(part: int | None) -> str:
    if part is None:
        return "auto"
    if part % MiB == 0:
        return f"{part // MiB} MiB"
    return f"{part // 1024} KiB"


def chart(results: dict[str, Result], path: Path) -> None:
    """One horizontal bar chart of throughput per scenario, partdl in a strong colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results)
    cols = 2
    rows_n = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(15, 4.6 * rows_n), squeeze=False)
    for ax in axes.flat[len(keys) :]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys, strict=False):
        scenario, rows = results[key].scenario, results[key].rows
        labels = [r.variant.label for r in rows][::-1]
        values = [r.throughput / MiB for r in rows][::-1]
        colours = ["#d9480f" if r.variant.is_partdl else "#868e96" for r in rows][::-1]
        ax.barh(labels, values, color=colours)
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.0f}", va="center", fontsize=7)
        ideals = [scenario.ideal.get(r.variant.label, 0.0) / MiB for r in rows][::-1]
        if any(ideals):
            ax.scatter(ideals, labels, marker="|", s=400, color="#1971c2", label="ideal")
            ax.legend(loc="lower right", fontsize=7)
        ax.set_title(f"({key}) {scenario.title}", fontsize=9)
        ax.set_xlabel("MiB/s (median wall time, whole process, destination on disk)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
