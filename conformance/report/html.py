"""Render a results.json document as one self-contained HTML file (no scripts, fonts or links to fetch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2

from conformance import atomic
from conformance.registry import COLUMNS
from conformance.report.compiled import compile_rows, folder_label, scatter

# Worst first: the status a matrix cell shows when several tests share it.
SEVERITY = ("error", "failed", "xpassed", "xfailed", "passed", "skipped")


@dataclass
class Cell:
    tests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        outcomes = {t["outcome"] for t in self.tests}
        return next((s for s in SEVERITY if s in outcomes), "none")


def _row_key(test: dict[str, Any]) -> tuple[str, ...]:
    axes = [test.get(axis) for axis in ("precision", "profile")]
    emulated = f" on {test['emulated_cpu']} (emulated)" if test.get("emulated_cpu") else ""
    return (
        test.get("variant") or "?",
        (test.get("target") or "?") + folder_label(test) + emulated,
        test.get("encoder") or "image+text",
        test.get("exporter") or "?",
        str(test.get("opset") or "?"),
        "/".join(str(a) for a in axes if a) or "?",
    )


def matrix(tests: list[dict[str, Any]]) -> tuple[list[str], list[tuple[tuple[str, ...], dict[str, Cell]]]]:
    """Rows variant x target x encoder x exporter x opset x (precision/profile), columns the registry's checks
    in its order, cells the tests that ran there."""
    rows: dict[tuple[str, ...], dict[str, Cell]] = {}
    for test in tests:
        rows.setdefault(_row_key(test), {}).setdefault(test["check"] or test["test"], Cell()).tests.append(test)
    present = {name for cells in rows.values() for name in cells}
    columns = [c for c in COLUMNS if c in present] + sorted(present - set(COLUMNS))
    return columns, sorted(rows.items())


def flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    lines = []
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines += flatten(value, f"{name}.")
        elif isinstance(value, float):
            lines.append((name, f"{value:.4g}"))
        else:
            lines.append((name, str(value)))
    return lines


def latency_rows(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [t for t in tests if t.get("check") == "latency" and "ort" in t.get("figures", {})]
    return sorted(
        rows, key=lambda t: (t["variant"], t.get("target") or "", t["encoder"], t["exporter"], t["figures"]["batch"])
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["flatten"] = flatten
    return env


def render(doc: dict[str, Any]) -> str:
    template = resources.files("conformance.report").joinpath("report.html.j2").read_text(encoding="utf-8")
    columns, rows = matrix(doc["tests"])
    lat = latency_rows(doc["tests"])
    scale = max((max(t["figures"]["ort"]["p50_ms"], t["figures"]["torch"]["p50_ms"]) for t in lat), default=1.0)
    xfails = [t for t in doc["tests"] if t["outcome"] in ("xfailed", "xpassed")]
    problems = [t for t in doc["tests"] if t["outcome"] in ("failed", "error", "xpassed")]
    targets = compile_rows(doc["tests"])
    return (
        _environment()
        .from_string(template)
        .render(
            doc=doc,
            columns=columns,
            rows=rows,
            latency=lat,
            scale=scale,
            xfails=xfails,
            problems=problems,
            targets=targets,
            scatter=scatter(targets),
        )
    )


def write(doc: dict[str, Any], path: Any) -> None:
    atomic.write_text(path, render(doc))
