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


_load = data_file


def _table() -> dict[str, Any]:
    return _load("tolerances.toml")


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
    max_ratio: float
    reason: str


def _gate_matches(gate: dict[str, Any], variant: str, encoder: str, batch: int, target: str) -> bool:
    return (
        gate.get("encoder", encoder) == encoder
        and gate.get("variant", variant) == variant
        and gate.get("target", target) == target
        and int(gate.get("batch_min", 1)) <= batch <= int(gate.get("batch_max", batch))
    )


def latency_gate(
    *, variant: str, encoder: str, batch: int, target: str = "onnx", table: dict[str, Any] | None = None
) -> LatencyGate:
    """The last matching `[[gate]]` of `latency_gates.toml` for this case."""
    data = table if table is not None else _load("latency_gates.toml")
    matching = [g for g in data["gate"] if _gate_matches(g, variant, encoder, batch, target)]
    if not matching:
        raise KeyError(f"no latency gate for {variant} {encoder} batch {batch} target {target}")
    return LatencyGate(float(matching[-1]["max_ratio"]), str(matching[-1]["reason"]))


@dataclass(frozen=True)
class Rounds:
    warmup: int
    min_rounds: int
    max_rounds: int
    budget_s: float


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
    rounds: dict[str, Rounds]
    quick_exporter: str


@cache
def limits() -> Limits:
    data = _load("limits.toml")
    latency = data["latency"]
    modes = {
        mode: Rounds(
            int(latency[mode]["warmup"]),
            int(latency[mode]["min_rounds"]),
            int(latency[mode]["max_rounds"]),
            float(latency[mode]["budget_s"]),
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
        modes,
        str(latency["quick"]["exporter"]),
    )
