"""The report's compile section: per compile target, its accuracy against its speed-up, and the scatter."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

Group = tuple[str, str, str, str]  # variant, target, exporter, opset


@dataclass
class TargetRow:
    variant: str
    target: str
    exporter: str
    opset: str
    precision: str = "?"
    outcomes: list[str] = field(default_factory=list)
    build_seconds: float = 0.0
    file_bytes: int = 0
    min_cosine: float | None = None
    budget: float | None = None  # the parity tolerance's min cosine: the accuracy budget
    zero_shot: dict[str, Any] = field(default_factory=dict)
    speedups: dict[str, dict[str, float | None]] = field(default_factory=dict)  # "image b8" -> vs torch / fp32
    p50_ms: dict[str, float] = field(default_factory=dict)  # "image b8" -> the target's p50, where measurable
    recipe: str = ""
    toolchain: str = ""  # the tool and its version that built it
    warnings: list[str] = field(default_factory=list)  # what the compiler said while building (RKNN's log)
    note: str = ""  # e.g. why no latency is shown (a simulator's timing is not the device's)

    @property
    def status(self) -> str:
        for outcome in ("error", "failed", "xpassed", "passed", "xfailed", "skipped"):
            if outcome in self.outcomes:
                return outcome
        return "none"


def folder_label(test: dict[str, Any]) -> str:
    """The row label's tail for another tool's graph, " [folder sibling]" (which folder, which sibling); else ""."""
    parts = [test.get("bundle") or test.get("layout"), test.get("sibling")]
    return f" [{' '.join(str(p) for p in parts if p)}]" if test.get("layout") else ""


def _group(test: dict[str, Any]) -> Group:
    target = test.get("target") or "onnx"
    if test.get("static_batch") is not None:
        target = f"{target} b{test['static_batch']}"
    target += folder_label(test)  # another tool's folder and its sibling: `_quantized` and `_uint8` are two graphs
    if test.get("emulated_cpu"):  # its own row: the same graph's accuracy on another CPU, and no latency there
        target = f"{target} on {test['emulated_cpu']} (emulated)"
    return (test["variant"], target, test["exporter"], str(test["opset"]))


def _add_parity(row: TargetRow, test: dict[str, Any]) -> None:
    figures, artifact = test.get("figures") or {}, test.get("artifact") or {}
    if "min_cosine" in figures:
        row.min_cosine = min(figures["min_cosine"], row.min_cosine if row.min_cosine is not None else 1.0)
        budget = figures.get("tolerance", {}).get("min_cosine")
        row.budget = budget if row.budget is None else min(row.budget, budget)
    files = artifact.get("files")
    row.file_bytes += sum(v for v in files.values() if isinstance(v, int)) if isinstance(files, dict) else 0
    # A bundle's manifest wrote `compiled`: render what it says only where it has the expected shape.
    recorded = artifact.get("compiled")
    compiled: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    seconds = compiled.get("build_seconds", artifact.get("export_seconds"))
    row.build_seconds += float(seconds) if isinstance(seconds, int | float) else 0.0
    summary = compiled.get("summary")
    row.recipe = str(summary) if summary else row.recipe or "the export as the exporter wrote it"
    if compiled.get("tool"):
        row.toolchain = f"{compiled['tool']} {compiled.get('tool_version', '?')}"
    warnings = compiled.get("warnings")
    if isinstance(warnings, list):
        row.warnings = sorted({*row.warnings, *(str(w) for w in warnings)})
    if compiled.get("timing_note"):
        row.note = str(compiled["timing_note"])


def _add_latency(row: TargetRow, test: dict[str, Any]) -> None:
    figures = test.get("figures") or {}
    if "speedup_vs_torch" in figures:
        key = f"{test['encoder']} b{figures['batch']}"
        row.speedups[key] = {"torch": figures["speedup_vs_torch"], "fp32": figures.get("speedup_vs_fp32")}
        p50 = (figures.get("ort") or {}).get("p50_ms")
        if isinstance(p50, int | float):
            row.p50_ms[key] = float(p50)


def compile_rows(tests: list[dict[str, Any]]) -> list[TargetRow]:
    """One row per variant x target x exporter x opset that ran a parity test (exports and bundles alike)."""
    rows: dict[Group, TargetRow] = {}
    by_group: dict[Group, list[dict[str, Any]]] = defaultdict(list)
    for test in tests:
        if test.get("variant") and test.get("exporter"):
            by_group[_group(test)].append(test)
    for group, members in by_group.items():
        if not any(t.get("check") == "parity" for t in members):
            continue
        row = rows[group] = TargetRow(*group, precision=str(members[0].get("precision") or "?"))
        for test in members:
            row.outcomes.append(test["outcome"])
            if test.get("check") == "parity":
                _add_parity(row, test)
            elif test.get("check") == "latency":
                _add_latency(row, test)
            elif test.get("check") == "zero_shot_agreement" and "similarity_budget" in (test.get("figures") or {}):
                row.zero_shot = test["figures"]  # a failure before the comparison (NaN) has no figures to show
    return sorted(rows.values(), key=lambda r: (r.variant, r.exporter, r.opset, r.target))


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    status: str


@dataclass(frozen=True)
class Scatter:
    """Speed-up against torch eager (x) and 1 - min cosine on a log scale (y, lower is better), in pixels."""

    width: int
    height: int
    points: list[Point]
    budgets: list[tuple[float, str]]  # y pixel, label
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]


def _log_gap(cosine: float) -> float:
    return math.log10(max(1.0 - cosine, 1e-9))


def scatter(rows: list[TargetRow], width: int = 560, height: int = 320, margin: int = 50) -> Scatter | None:
    """One point per target row: its slowest graph's speed-up (the conservative figure) and its min cosine."""
    measured = [
        (r, min(float(s["torch"] or 0.0) for s in r.speedups.values()))
        for r in rows
        if r.min_cosine is not None and r.speedups
    ]
    if not measured:
        return None
    x_max = max(2.0, max(speedup for _, speedup in measured) * 1.15)
    low, high = -9.0, 0.0

    def px(x: float) -> float:
        return margin + (width - 2 * margin) * x / x_max

    def py(gap: float) -> float:
        return margin / 2 + (height - 1.5 * margin) * (high - gap) / (high - low)

    points = [
        Point(
            round(px(speedup), 1), round(py(_log_gap(r.min_cosine or 1.0)), 1), f"{r.target} ({r.exporter})", r.status
        )
        for r, speedup in measured
    ]
    budgets = {(r.budget, r.precision) for r in rows if r.budget is not None and r.budget > 0}
    lines = [(round(py(_log_gap(b)), 1), f"{precision} budget: cosine ≥ {b}") for b, precision in sorted(budgets)]
    x_ticks = [(round(px(float(x)), 1), f"{x}x") for x in range(0, int(x_max) + 1)]
    y_ticks = [(round(py(float(e)), 1), f"1e{e}") for e in range(int(low), int(high) + 1, 2)]
    return Scatter(width, height, points, lines, x_ticks, y_ticks)
