"""Thresholds from data files, each with its reason: numeric tolerances (`tolerances.toml`: defaults per
check and precision, plus overrides), latency gates (`latency_gates.toml`) and run budgets (`limits.toml`)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from conformance.numerics import Tolerance

_FIELDS = ("atol", "rtol", "min_cosine", "norm_rtol")


@cache
def data_file(name: str) -> dict[str, Any]:
    """One of the package's TOML data files, parsed once."""
    return tomllib.loads(resources.files("conformance").joinpath(name).read_text(encoding="utf-8"))


def _table() -> dict[str, Any]:
    return data_file("tolerances.toml")


def _matches(match: dict[str, str], context: dict[str, str]) -> bool:
    return all(context.get(key) == value for key, value in match.items())


def tolerance(check: str, context: dict[str, str], table: dict[str, Any] | None = None) -> Tolerance:
    """The default for (check, the context's precision), with every matching override applied in file order.
    `context` is `Case.context()`: variant, encoder, exporter, precision, target, profile."""
    data = table if table is not None else _table()
    precision = context.get("precision", "fp32")
    values = dict(data["defaults"][precision][check])
    reason = f"default {precision} {check}"
    for override in data.get("override", []):
        if override.get("check") == check and _matches(override.get("match", {}), context):
            values.update({k: override[k] for k in _FIELDS if k in override})
            reason = override["reason"]
    return Tolerance(**{k: float(values[k]) for k in _FIELDS if k in values}, reason=reason)


@dataclass(frozen=True)
class LatencyGate:
    """The coarse gate: the most a graph's p50 may be, as a multiple of torch eager's in the same rounds."""

    max_ratio: float
    reason: str


@dataclass(frozen=True)
class SpeedupGate:
    """The least speed-up a compile target of `precision` must show over its own fp32 export, in the same rounds,
    on a CPU with the precision's acceleration (isa.toml)."""

    precision: str
    min_speedup: float
    reason: str
    min_batch_gflops: float = 0.0  # below this much work a round times call overhead, not kernels: not gated


def latency_gate(table: dict[str, Any] | None = None) -> LatencyGate:
    """`latency_gates.toml`'s [coarse] gate: the same for every case, so that it holds on every machine."""
    data = table if table is not None else data_file("latency_gates.toml")
    return LatencyGate(float(data["coarse"]["max_ratio"]), str(data["coarse"]["reason"]))


def speedup_gate(precision: str, table: dict[str, Any] | None = None) -> SpeedupGate | None:
    """The [[speedup]] entry for a precision, or None (fp32 and fp16 targets gain nothing to gate on a CPU)."""
    data = table if table is not None else data_file("latency_gates.toml")
    found = [g for g in data.get("speedup", []) if g["precision"] == precision]
    if not found:
        return None
    entry = found[-1]
    return SpeedupGate(precision, float(entry["min"]), str(entry["reason"]), float(entry.get("min_batch_gflops", 0)))


@dataclass(frozen=True)
class Rounds:
    warmup: int
    min_rounds: int
    max_rounds: int
    budget_s: float
    looks: int  # planned looks at the rounds (each doubling them, within max_rounds) before "inconclusive"


@dataclass(frozen=True)
class Limits:
    batch_gflops: float
    batch_min: int
    sweep_max: int
    batch_also: tuple[int, ...]
    batch_release: tuple[int, ...]
    latency_gflops: float
    latency_min: int
    baseline_tolerance: float
    alpha: float
    rounds: dict[str, Rounds]
    quick_exporter: str


@cache
def limits() -> Limits:
    data = data_file("limits.toml")
    latency = data["latency"]
    modes = {
        mode: Rounds(
            int(latency[mode]["warmup"]),
            int(latency[mode]["min_rounds"]),
            int(latency[mode]["max_rounds"]),
            float(latency[mode]["budget_s"]),
            int(latency[mode]["looks"]),
        )
        for mode in ("quick", "full")
    }
    return Limits(
        float(data["batch"]["gflops_cap"]),
        int(data["batch"]["min_batch"]),
        int(data["batch"]["sweep_max"]),
        tuple(int(n) for n in data["batch"]["also"]),
        tuple(int(n) for n in data["batch"]["release"]),
        float(latency["gflops_cap"]),
        int(latency["min_batch"]),
        float(latency["baseline_tolerance"]),
        float(latency["alpha"]),
        modes,
        str(latency["quick"]["exporter"]),
    )
