"""Comparing an output with its reference: NaN-aware error figures and tolerance problems, for every check."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROWS_SHOWN = 8


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float = 0.0
    min_cosine: float = -1.0  # no bound
    reason: str = "default"
    # Scale-aware term: each element may also be off by this fraction of its reference row's scale (row_rms).
    # fp32 rounding error grows with the activations' magnitude and with the depth a value went through, and how
    # much of it there is depends on the kernels each CPU's ISA gets (tolerances.toml has the measurements).
    norm_rtol: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "atol": self.atol,
            "rtol": self.rtol,
            "norm_rtol": self.norm_rtol,
            "min_cosine": self.min_cosine,
            "reason": self.reason,
        }


MAD_TO_RMS = 1.4826  # median |x| of a normal sample times this is its standard deviation


def row_rms(array: np.ndarray) -> np.ndarray:
    """Each row's scale, robustly: 1.4826 x the median |x| of its finite elements (the RMS of a Gaussian row, but
    one huge element cannot inflate it and with it the allowance of every other element), as a column."""
    rows = _rows(array).astype(np.float64)
    if not rows.shape[1]:
        return np.zeros((len(rows), 1))
    magnitude = np.where(np.isfinite(rows), np.abs(rows), np.nan)
    with warnings.catch_warnings():  # an all-NaN row has no scale (0): its NaNs fail the comparison anyway
        warnings.simplefilter("ignore", RuntimeWarning)
        scale = MAD_TO_RMS * np.nanmedian(magnitude, axis=1, keepdims=True)
    return np.nan_to_num(scale, nan=0.0)


@dataclass
class Comparison:
    """What `compare` found: figures (always finite numbers) and problems (empty when within tolerance)."""

    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _rows(array: np.ndarray) -> np.ndarray:
    return array.reshape(array.shape[0], -1) if array.ndim else array.reshape(1, 1)


def nonfinite_problem(array: np.ndarray, what: str) -> str | None:
    """One line naming how many elements are NaN or Inf, and in which rows; None when all are finite."""
    bad = ~np.isfinite(_rows(array))
    if not bad.any():
        return None
    rows = np.flatnonzero(bad.any(axis=1)).tolist()
    shown = rows[:ROWS_SHOWN] + (["…"] if len(rows) > ROWS_SHOWN else [])
    nan = int(np.isnan(array).sum())
    return (
        f"{what} has {int(bad.sum())} non-finite values ({nan} NaN, {int(bad.sum()) - nan} Inf) "
        f"in rows {shown}".replace("'…'", "…")
    )


def error_figures(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """Max abs and rel error and min row cosine, over the elements and rows where both sides are finite.
    Non-finite elements are counted, never folded into a figure: `nan > bound` is False."""
    a, e = _rows(actual).astype(np.float64), _rows(expected).astype(np.float64)
    finite = np.isfinite(a) & np.isfinite(e)
    diff = np.where(finite, np.abs(a - e), 0.0)
    rel = diff / np.maximum(np.where(finite, np.abs(e), 1.0), 1e-6)
    rows = finite.all(axis=1)
    a_rows, e_rows = a[rows], e[rows]
    a_norm, e_norm = np.linalg.norm(a_rows, axis=1), np.linalg.norm(e_rows, axis=1)
    # A zeroed row against a non-zero reference is as wrong as a row can be (cosine 0), not "undefined".
    both_zero = (a_norm == 0) & (e_norm == 0)
    cosine = np.where(both_zero, 1.0, (a_rows * e_rows).sum(axis=1) / np.maximum(a_norm * e_norm, 1e-300))
    scale = row_rms(expected)
    return {
        # the error in units of its row's scale (row_rms): what the scale-aware term `norm_rtol` bounds
        "max_err_over_row_scale": float((diff / np.maximum(scale, 1e-30)).max(initial=0.0)),
        "max_abs_err": float(diff.max(initial=0.0)),
        "max_rel_err": float(rel.max(initial=0.0)),
        "min_cosine": float(cosine.min(initial=1.0)),
        "ref_max_abs": float(np.abs(np.where(np.isfinite(e), e, 0.0)).max(initial=0.0)),
        "nonfinite_output": int((~np.isfinite(a)).sum()),
        "nonfinite_reference": int((~np.isfinite(e)).sum()),
    }


def _tolerance_problems(
    actual: np.ndarray, expected: np.ndarray, figures: dict[str, Any], tol: Tolerance, what: str
) -> list[str]:
    a, e = _rows(actual).astype(np.float64), _rows(expected).astype(np.float64)
    excess = np.abs(a - e) - (tol.atol + tol.rtol * np.abs(e) + tol.norm_rtol * row_rms(expected))
    beyond = np.flatnonzero((np.where(np.isfinite(excess), excess, -1.0) > 0).any(axis=1)).tolist()
    problems = []
    if beyond:
        rows = beyond[:ROWS_SHOWN] + (["…"] if len(beyond) > ROWS_SHOWN else [])
        problems.append(
            f"{what}: max abs error {figures['max_abs_err']:.3g} exceeds atol {tol.atol:g} + "
            f"rtol {tol.rtol:g}*|ref|{_norm_term(tol)} in rows {rows} (tolerance: {tol.reason})".replace("'…'", "…")
        )
    if figures["min_cosine"] < tol.min_cosine:
        problems.append(
            f"{what}: min cosine {figures['min_cosine']:.9f} below {tol.min_cosine} (tolerance: {tol.reason})"
        )
    return problems


def _norm_term(tol: Tolerance) -> str:
    return f" + norm_rtol {tol.norm_rtol:g}*rms(ref row)" if tol.norm_rtol else ""


def compare(
    actual: np.ndarray, expected: np.ndarray, tol: Tolerance, what: str, reference: str = "the torch reference"
) -> Comparison:
    """The one comparison every numeric check uses: shapes, then non-finite values on either side (a
    non-finite torch reference is reported as a reference problem), then the tolerance."""
    if actual.shape != expected.shape:
        return Comparison({}, [f"{what}: output shape {list(actual.shape)} differs from {list(expected.shape)}"])
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: counted as non-finite, not warned about
        return _compare(actual, expected, tol, what, reference)


def _compare(actual: np.ndarray, expected: np.ndarray, tol: Tolerance, what: str, reference: str) -> Comparison:
    figures = error_figures(actual, expected)
    problems = [
        p
        for p in (
            nonfinite_problem(actual, f"{what}: the output"),
            nonfinite_problem(expected, f"{what}: {reference} (a reference problem, not the output's)"),
        )
        if p
    ]
    return Comparison(figures, problems + _tolerance_problems(actual, expected, figures, tol, what))
