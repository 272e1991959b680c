"""Turning measurements into ``docs/benchmarks.md`` and its chart."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from partdl.plan import MiB

from .measure import Measurement
from .scenarios import ARIA2C, BOTO3, CURL, FLOOR, OSS2, Scenario, Variant

RSS_LIMIT = 100 * MiB


@dataclass(frozen=True, slots=True)
class Summary:
    """The median of one variant's runs in one scenario."""

    variant: Variant
    runs: int
    failures: int
    wall: float
    best: float
    """The fastest run's wall time: what the tool does when nothing else interferes."""
    inner: float | None
    throughput: float
    """Bytes per second over the median wall time (0 when every run failed)."""
    peak_rss: int
    cpu: float
    """Median CPU seconds (user + system) of the contender's process."""
    error: str


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None
    """None when it could not be measured (a contender missing or failing)."""


def summarise(scenario: Scenario, measurements: Sequence[Measurement]) -> list[Summary]:
    summaries = []
    for variant in scenario.variants:
        mine = [m for m in measurements if m.label == variant.label]
        good = [m for m in mine if m.ok]
        wall = statistics.median(m.wall for m in good) if good else 0.0
        inners = [m.inner for m in good if m.inner is not None]
        summaries.append(
            Summary(
                variant=variant,
                runs=len(mine),
                failures=len(mine) - len(good),
                wall=wall,
                best=min((m.wall for m in good), default=0.0),
                inner=statistics.median(inners) if inners else None,
                throughput=scenario.obj.size / wall if wall else 0.0,
                peak_rss=max((m.max_rss for m in mine), default=0),
                cpu=statistics.median(m.cpu for m in good) if good else 0.0,
                error=next((m.error for m in mine if not m.ok), ""),
            )
        )
    return summaries


def _find(summaries: Sequence[Summary], contender: str, *, crc: bool = True) -> Summary | None:
    for summary in summaries:
        v = summary.variant
        if v.contender == contender and v.crc == crc and not v.suffix and summary.throughput:
            return summary
    return None


def _ratio_target(name: str, goal: float, ref: Summary, other: Summary | None) -> Target:
    if other is None or not ref.throughput:
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
    if floor is None or not floor.throughput:
        return []
    share = f"{ref.throughput / floor.throughput:.2f} of the floor"
    if ref.inner and floor.inner:
        share += f" ({floor.inner / ref.inner:.2f} in the call)"
    found = [Target("(a) partdl, share of the bare-socket floor", "context", share, None)]
    for name, contender in (("boto3/s3transfer", BOTO3), ("aria2c", ARIA2C), ("curl", CURL)):
        other = _find(rows, contender)
        if other is not None and other.throughput:
            ratio = floor.throughput / other.throughput
            found.append(Target(f"(a) floor vs {name}", "context", f"{ratio:.2f}x", None))
    return found


def targets(results: dict[str, tuple[Scenario, list[Summary]]]) -> list[Target]:
    """The issue's targets, judged on this run's medians."""
    found: list[Target] = []
    if "a" in results:
        rows = results["a"][1]
        ref = rows[0]
        found += [
            _ratio_target("(a) partdl vs boto3/s3transfer", 3.5, ref, _find(rows, BOTO3)),
            _ratio_target("(a) partdl vs oss2 (CRC on)", 8, ref, _find(rows, OSS2)),
            _ratio_target("(a) partdl vs aria2c", 1.8, ref, _find(rows, ARIA2C)),
            _ratio_target("(a) partdl vs curl", 1.5, ref, _find(rows, CURL)),
        ]
        found += _floor_context(ref, rows)
        for row in rows:
            if row.variant.is_partdl and row.variant.task_num >= 16:
                found.append(_rss_target(f"(a) {row.variant.label}", row))
    if "b" in results:
        scenario, rows = results["b"]
        found += [_ideal_target(scenario, row) for row in rows if row.variant.is_partdl]
    if "d" in results:
        found += [
            _rss_target(f"(d) {r.variant.label}", r) for r in results["d"][1] if r.variant.is_partdl
        ]
    if "e" in results:
        found.append(_cost_target("(e) checkpoint cost at 100,000 parts", 0.10, results["e"][1]))
    if "f" in results:
        found.append(_cost_target("(f) CRC cost", 0.05, results["f"][1]))
    return found


def _ideal_target(scenario: Scenario, row: Summary) -> Target:
    """Judged on the time inside the call: the ideal describes the transfer, and the
    interpreter's start and imports are no part of it (the whole process is shown too).
    """
    ideal = scenario.ideal.get(row.variant.label, 0.0)
    name = f"(b) {row.variant.label}, share of the ideal {ideal / MiB:.0f} MiB/s"
    if not ideal or not row.inner or not row.wall:
        return Target(name, ">= 0.9", "not measured", None)
    transfer = scenario.obj.size / row.inner / ideal
    whole = row.throughput / ideal
    measured = f"{transfer:.2f} in the call ({whole:.2f} whole process)"
    return Target(name, ">= 0.9", measured, transfer >= 0.9)


def _rss_target(name: str, row: Summary) -> Target:
    measured = f"{row.peak_rss / MiB:.0f} MiB"
    return Target(f"{name} peak RSS", "<= 100 MiB", measured, row.peak_rss <= RSS_LIMIT)


def _cell(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value else "-"


def table(scenario: Scenario, rows: Sequence[Summary]) -> list[str]:
    ref = rows[0].throughput
    lines = [
        "| Contender | Part | Tasks | Wall s | Best s | In-call s | CPU s | MiB/s | partdl x "
        "| RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        v = row.variant
        part = _size(v.part_size) if v.contender != CURL else "-"
        ratio = f"{ref / row.throughput:.2f}" if row.throughput and ref else "-"
        failed = f" ({row.failures}/{row.runs} failed: {row.error})" if row.failures else ""
        inner = _cell(row.inner or 0.0)
        lines.append(
            f"| {v.label}{failed} | {part} | {v.task_num} | {_cell(row.wall)} "
            f"| {_cell(row.best)} | {inner} "
            f"| {_cell(row.cpu)} | {_cell(row.throughput / MiB, 0)} | {ratio} "
            f"| {row.peak_rss / MiB:.0f} |"
        )
    for label, ideal in scenario.ideal.items():
        if any(r.variant.label == label and r.variant.is_partdl for r in rows):
            lines.append(f"| ideal for {label} | | | | | | | {ideal / MiB:.0f} | | |")
            break
    return lines


def _size(part: int | None) -> str:
    if part is None:
        return "auto"
    if part % MiB == 0:
        return f"{part // MiB} MiB"
    return f"{part // 1024} KiB"


def chart(results: dict[str, tuple[Scenario, list[Summary]]], path: Path) -> None:
    """One horizontal bar chart of throughput per scenario, partdl in a strong colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results)
    cols = 2
    rows_n = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(15, 4.2 * rows_n), squeeze=False)
    for ax in axes.flat[len(keys) :]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys, strict=False):
        scenario, rows = results[key]
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
        ax.set_xlabel("MiB/s (median wall time, whole process)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
