"""Error figures between an output and its reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    min_cosine: float
    reason: str = "default"


def error_figures(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """Max abs and rel error, and the min cosine similarity over rows (flattened beyond the batch axis)."""
    a = actual.reshape(actual.shape[0], -1).astype(np.float64)
    e = expected.reshape(expected.shape[0], -1).astype(np.float64)
    diff = np.abs(a - e)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(e, axis=1)
    cosine = np.where(denom > 0, (a * e).sum(axis=1) / np.maximum(denom, 1e-300), 1.0)
    return {
        "max_abs_err": float(diff.max(initial=0.0)),
        "max_rel_err": float((diff / np.maximum(np.abs(e), 1e-6)).max(initial=0.0)),
        "min_cosine": float(cosine.min(initial=1.0)),
        "ref_max_abs": float(np.abs(e).max(initial=0.0)),
    }


def tolerance_problems(figures: dict[str, float], actual: np.ndarray, expected: np.ndarray,
                       tol: Tolerance, what: str) -> list[str]:
    problems = []
    bound = tol.atol + tol.rtol * np.abs(expected.astype(np.float64))
    worst = float((np.abs(actual.astype(np.float64) - expected) - bound).max(initial=-1.0))
    if worst > 0:
        problems.append(f"{what}: max abs error {figures['max_abs_err']:.3g} exceeds atol {tol.atol:g} + "
                        f"rtol {tol.rtol:g}*|ref| (tolerance: {tol.reason})")
    if figures["min_cosine"] < tol.min_cosine:
        problems.append(f"{what}: min cosine {figures['min_cosine']:.9f} below {tol.min_cosine} "
                        f"(tolerance: {tol.reason})")
    return problems
