"""Thresholds from data files, each with its reason: numeric tolerances (`tolerances.toml`: defaults per
check and precision, plus overrides) and latency gates (`latency_gates.toml`)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from conformance.numerics import Tolerance

_FIELDS = ("atol", "rtol", "min_cosine")


@cache
def _load(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("conformance").joinpath(name).read_text(encoding="utf-8"))


def _table() -> dict[str, Any]:
    return _load("tolerances.toml")


def _matches(match: dict[str, str], context: dict[str, str]) -> bool:
    return all(context.get(key) == value for key, value in match.items())


def tolerance(check: str, *, variant: str, encoder: str, exporter: str, precision: str = "fp32",
              table: dict[str, Any] | None = None) -> Tolerance:
    """The default for (check, precision), with every matching override applied in file order."""
    data = table if table is not None else _table()
    values = dict(data["defaults"][precision][check])
    reason = f"default {precision} {check}"
    context = {"variant": variant, "encoder": encoder, "exporter": exporter, "precision": precision}
    for override in data.get("override", []):
        if override.get("check") == check and _matches(override.get("match", {}), context):
            values.update({k: override[k] for k in _FIELDS if k in override})
            reason = override["reason"]
    return Tolerance(**{k: float(values[k]) for k in _FIELDS}, reason=reason)


@dataclass(frozen=True)
class LatencyGate:
    max_ratio: float
    reason: str


def _gate_matches(gate: dict[str, Any], variant: str, encoder: str, batch: int, target: str) -> bool:
    return (gate.get("encoder", encoder) == encoder and gate.get("variant", variant) == variant
            and gate.get("target", target) == target
            and int(gate.get("batch_min", 1)) <= batch <= int(gate.get("batch_max", batch)))


def latency_gate(*, variant: str, encoder: str, batch: int, target: str = "onnx",
                 table: dict[str, Any] | None = None) -> LatencyGate:
    """The last matching `[[gate]]` of `latency_gates.toml` for this case."""
    data = table if table is not None else _load("latency_gates.toml")
    matching = [g for g in data["gate"] if _gate_matches(g, variant, encoder, batch, target)]
    if not matching:
        raise KeyError(f"no latency gate for {variant} {encoder} batch {batch} target {target}")
    return LatencyGate(float(matching[-1]["max_ratio"]), str(matching[-1]["reason"]))
