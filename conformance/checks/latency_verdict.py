"""Latency verdicts from paired, interleaved rounds: a confidence interval on the median per-round ratio, and
three gates that each say passed, failed or inconclusive.

- coarse: the graph's p50 over torch eager's (paired rounds) may be at most `max_ratio` (latency_gates.toml):
  only a pathological export fails it, on any machine, without a baseline;
- speedup: a compile target's speed-up over its own fp32 export, timed in the same rounds, at least `min`, where
  the CPU has the precision's acceleration (isa.toml); elsewhere reported, not gated;
- baseline: the paired ratio against the same case's ratio recorded on the same kind of machine, at most
  1 + tolerance.

A gate decides only when its interval lies wholly on one side of its bound. The interval is the distribution-free
one for a median, from order statistics: [X(k), X(n-k+1)], with k the largest count such that a Binomial(n, 1/2)
falls below k with probability at most (1 - confidence) / 2. It holds for any distribution of i.i.d. rounds
(a percentile bootstrap of the median does not: at 5 rounds it is [min, max], wrong 3% of the time per side).
With fewer rounds than that confidence allows (n < 7 at 98.3%), the interval is unbounded and no gate decides.
Its confidence is 1 - alpha / looks: with at most `looks` planned looks the chance that any look gives a false
verdict stays under alpha (Bonferroni). After the last look an undecided gate is "inconclusive": a warning with
the interval, a failure under --strict-xfails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class Decision(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


def interval(samples: Sequence[float], confidence: float, scale: float = 1.0) -> tuple[float, float]:
    """The order-statistic confidence interval of the median of `samples` (divided by `scale`); (-inf, inf) when
    there are too few samples for that confidence, NaN when any sample is NaN."""
    values = np.sort(np.asarray(samples, dtype=np.float64) / scale)
    if values.size == 0 or np.isnan(values).any():
        return float("nan"), float("nan")
    tail, below, k = (1.0 - confidence) / 2, 0.0, 0
    for i in range(values.size):  # P(Binomial(n, 1/2) <= i), while it stays within the tail
        below += math.comb(values.size, i) / 2.0**values.size
        if below > tail:
            break
        k = i + 1
    if k == 0:
        return float("-inf"), float("inf")
    return float(values[k - 1]), float(values[values.size - k])


def at_most(bound: float, span: tuple[float, float]) -> Decision:
    """A figure that must not exceed `bound` (a ratio to torch, a ratio to the baseline)."""
    if np.isnan(span).any() or not math.isfinite(bound):
        return Decision.FAILED
    if span[0] > bound:
        return Decision.FAILED
    return Decision.PASSED if span[1] <= bound else Decision.INCONCLUSIVE


def at_least(bound: float, span: tuple[float, float]) -> Decision:
    """A figure that must reach `bound` (a compile target's speed-up over its fp32 export)."""
    if np.isnan(span).any() or not math.isfinite(bound):
        return Decision.FAILED
    if span[1] < bound:
        return Decision.FAILED
    return Decision.PASSED if span[0] >= bound else Decision.INCONCLUSIVE


@dataclass(frozen=True)
class Gate:
    """One bound on one paired figure: `figure` names the per-round series in the measurement."""

    name: str  # coarse, speedup, baseline
    figure: str  # round_ratios (graph / torch) or round_speedups (fp32 export / graph)
    bound: float
    upper: bool  # True: the figure must stay at or below the bound
    reason: str
    scale: float = 1.0  # the series is divided by this first (the baseline's ratio)

    def decide(self, figures: dict[str, Any], confidence: float) -> tuple[Decision, tuple[float, float]]:
        span = interval(figures[self.figure], confidence, self.scale)
        return (at_most if self.upper else at_least)(self.bound, span), span


@dataclass
class Verdict:
    """Every gate's decision and interval at the last look."""

    decisions: dict[str, Decision] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [name for name, d in self.decisions.items() if d == Decision.FAILED]

    @property
    def undecided(self) -> list[str]:
        return [name for name, d in self.decisions.items() if d == Decision.INCONCLUSIVE]


def judge(gates: Sequence[Gate], figures: dict[str, Any], confidence: float) -> Verdict:
    verdict = Verdict()
    for gate in gates:
        verdict.decisions[gate.name], verdict.intervals[gate.name] = gate.decide(figures, confidence)
    return verdict


def per_look_confidence(alpha: float, looks: int) -> float:
    return 1.0 - alpha / max(1, looks)
