"""The CPU's instruction-set features that decide what the suite may expect of it (conformance/isa.toml):
which are recorded with every run, which precision each accelerates, and which targets cannot run without."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from conformance.tolerances import data_file
from conformance.versions import cpu_flags


def _table() -> dict[str, Any]:
    return data_file("isa.toml")


@dataclass(frozen=True)
class Feature:
    """A precision's acceleration: any of `flags` provides it."""

    name: str
    flags: tuple[str, ...]
    reason: str
    source: str

    def present(self, flags: Iterable[str] | None = None) -> bool:
        have = set(cpu_flags() if flags is None else flags)
        return any(flag in have for flag in self.flags)

    def missing(self, flags: Iterable[str] | None = None) -> str | None:
        """Why this CPU lacks the feature, or None."""
        if self.present(flags):
            return None
        return f"this CPU has none of {', '.join(self.flags)} ({self.name}: {self.reason})"


def feature(precision: str) -> Feature | None:
    data = _table()["precision"].get(precision)
    if data is None:
        return None
    return Feature(precision, tuple(data["any"]), str(data["reason"]), str(data["source"]))


def target_needs(target: str) -> Feature | None:
    """The feature a target cannot run without (openvino-bf16: bf16), or None."""
    needs = _table().get("target", {}).get(target, {}).get("needs")
    return feature(str(needs)) if needs else None


def unsupported_target(target: str, flags: Iterable[str] | None = None) -> str | None:
    """Why `target` cannot run as it claims on this CPU, or None."""
    needed = target_needs(target)
    if needed is None:
        return None
    missing = needed.missing(flags)
    return f"{target} skipped: {missing}" if missing else None


@dataclass(frozen=True)
class SaturationRule:
    weight_min: int
    weight_max: int
    reason: str
    source: str
    safe_runtime_options: dict[str, str]
    accepting_isa: frozenset[str]


def saturation_rule() -> SaturationRule:
    data = _table()["int8_saturation"]
    return SaturationRule(
        int(data["weight_min"]),
        int(data["weight_max"]),
        str(data["reason"]),
        str(data["source"]),
        {str(k): str(v) for k, v in data["safe_runtime_options"].items()},
        frozenset(data["accepting_isa"]),
    )


def known_flags() -> frozenset[str]:
    """Every flag a --deploy-isa or a manifest's `deploy_isa` may name."""
    return frozenset(_table()["recorded"])
