"""Tolerances from `tolerances.toml`: defaults per check and precision, plus overrides with reasons."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

from conformance.numerics import Tolerance

_FIELDS = ("atol", "rtol", "min_cosine")


@cache
def _table() -> dict[str, Any]:
    return tomllib.loads(resources.files("conformance").joinpath("tolerances.toml").read_text(encoding="utf-8"))


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
