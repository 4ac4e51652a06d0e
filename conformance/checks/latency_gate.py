"""The latency check: time a graph (checks/latency.py), then judge its paired rounds by the coarse gate, a compile
target's speed-up gate and the fine gate against a baseline (checks/latency_verdict.py), with planned looks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.artifact import Artifact
from conformance.checks.latency import CHECK, LatencyPlan, RoundTimer, interleaved_rounds, measure_latency
from conformance.checks.latency_verdict import Decision, Gate, Verdict, judge, per_look_confidence
from conformance.encoders import ClipModel
from conformance.results import CheckResult, error_line, failed, verdict
from conformance.tolerances import LatencyGate, SpeedupGate


@dataclass(frozen=True)
class BaselineMatch:
    """The same case's paired ratio on the same kind of machine, or why none is used."""

    ratio: float | None = None
    skipped: str | None = None  # none recorded for this machine, or measured on another one
    required: bool = False  # a baseline was asked for explicitly: a missing or unusable one fails
    note: str | None = None  # e.g. other library versions than the baseline's, both named
    source: str = ""


@dataclass(frozen=True)
class Gates:
    coarse: LatencyGate
    speedup: SpeedupGate | None = None  # a compile target's, where its CPU accelerates its precision
    speedup_skip: str | None = None  # why its speed-up is reported, not gated, here
    baseline: BaselineMatch | None = None
    tolerance: float = 0.25  # the fine gate: how much above the baseline's ratio (limits.toml)
    strict: bool = False  # --strict-xfails: an inconclusive gate fails
    alpha: float = 0.05
    looks: int = 3

    def for_figures(self, figures: dict[str, Any]) -> list[Gate]:
        gates = [Gate("coarse", "round_ratios", self.coarse.max_ratio, True, self.coarse.reason)]
        if self.speedup is not None and "round_speedups" in figures:
            gates.append(Gate("speedup", "round_speedups", self.speedup.min_speedup, False, self.speedup.reason))
        if self.baseline is not None and self.baseline.ratio is not None:
            reason = f"the paired ratio recorded in {self.baseline.source}"
            gates.append(Gate("baseline", "round_ratios", 1 + self.tolerance, True, reason, self.baseline.ratio))
        return gates

    @property
    def confidence(self) -> float:
        return per_look_confidence(self.alpha, self.looks)


def _span(values: tuple[float, float]) -> str:
    return f"[{values[0]:.2f}, {values[1]:.2f}]"


def _problems(figures: dict[str, Any], gates: Gates, result: Verdict) -> list[str]:
    problems = []
    runtime, batch, span = figures.get("runtime", "ORT"), figures["batch"], result.intervals
    if result.decisions.get("coarse") == Decision.FAILED:
        problems.append(
            f"{runtime} p50 {figures['ort']['p50_ms']:.2f} ms is {figures['ratio_p50']:.2f}x torch eager p50 "
            f"{figures['torch']['p50_ms']:.2f} ms (interval {_span(span['coarse'])} above the coarse gate "
            f"{gates.coarse.max_ratio}x at batch {batch}: {gates.coarse.reason})"
        )
    if result.decisions.get("speedup") == Decision.FAILED and gates.speedup is not None:
        problems.append(
            f"{figures['speedup_vs_fp32']:.2f}x its fp32 export (interval {_span(span['speedup'])}) is below the "
            f"{gates.speedup.precision} speed-up gate {gates.speedup.min_speedup}x at batch {batch} "
            f"({gates.speedup.reason})"
        )
    if result.decisions.get("baseline") == Decision.FAILED and gates.baseline is not None:
        problems.append(
            f"paired ratio {figures['ratio_p50']:.2f} is {figures['ratio_p50'] / (gates.baseline.ratio or 1):.2f}x "
            f"the baseline's {gates.baseline.ratio:.2f} (interval {_span(span['baseline'])}, above "
            f"1 + {gates.tolerance:.0%}) at batch {batch}; baseline {gates.baseline.source}"
        )
    if gates.baseline is not None and gates.baseline.skipped and gates.baseline.required:
        problems.append(f"a latency baseline was required: {gates.baseline.skipped}")
    if result.undecided and gates.strict:
        problems.append(f"inconclusive under --strict-xfails: {_undecided(result)}")
    return problems


def _undecided(result: Verdict) -> str:
    return "; ".join(f"{name} interval {_span(result.intervals[name])}" for name in result.undecided)


def _passing_message(figures: dict[str, Any], gates: Gates, result: Verdict) -> str:
    parts = [
        f"{figures.get('runtime', 'ORT')}/torch p50 {figures['ratio_p50']:.2f}x at batch {figures['batch']} "
        f"(coarse gate {gates.coarse.max_ratio}x)"
    ]
    if "speedup" in result.decisions and gates.speedup is not None:
        parts.append(f"{figures['speedup_vs_fp32']:.2f}x its fp32 export (gate {gates.speedup.min_speedup}x)")
    elif gates.speedup_skip:
        parts.append(
            f"{figures.get('speedup_vs_fp32', float('nan')):.2f}x its fp32 export, not gated: {gates.speedup_skip}"
        )
    elif gates.speedup is not None:
        parts.append("speed-up not gated: no fp32 export beside this graph (a bundle's) to time it against")
    if "baseline" in result.decisions and gates.baseline is not None:
        parts.append(f"{figures['ratio_p50'] / (gates.baseline.ratio or 1):.2f}x the baseline's paired ratio")
    elif gates.baseline is not None and gates.baseline.skipped:
        parts.append(f"no fine gate: {gates.baseline.skipped}")
    if gates.baseline is not None and gates.baseline.note:
        parts.append(gates.baseline.note)
    if result.undecided:
        parts.insert(0, f"inconclusive after {figures['ort']['rounds']} rounds ({_undecided(result)})")
    return "; ".join(parts)


def check_latency(figures: dict[str, Any], gates: Gates, looks: int = 1) -> CheckResult:
    """Judge a measurement by every gate that applies, at the confidence of the planned looks."""
    result = judge(gates.for_figures(figures), figures, gates.confidence)
    figures = {
        **figures,
        "gate_max_ratio": gates.coarse.max_ratio,
        "gate_reason": gates.coarse.reason,
        "gates": {
            name: {"decision": str(decision), "interval": list(result.intervals[name])}
            for name, decision in result.decisions.items()
        },
        "looks": looks,
        "confidence": gates.confidence,
        "inconclusive": bool(result.undecided),
    }
    if gates.speedup is not None:
        figures["speedup_gate"] = gates.speedup.min_speedup
    elif gates.speedup_skip:
        figures["speedup_gate"] = f"not gated: {gates.speedup_skip}"
    if gates.baseline is not None:
        figures.update(baseline_ratio=gates.baseline.ratio, baseline_source=gates.baseline.source)
        figures.update(baseline_tolerance=gates.tolerance)
        if gates.baseline.skipped:
            figures["baseline_skipped"] = gates.baseline.skipped
        if gates.baseline.note:
            figures["baseline_note"] = gates.baseline.note
    return verdict(CHECK, _problems(figures, gates, result), figures, _passing_message(figures, gates, result))


def check_latency_of(
    artifact: Artifact,
    model: ClipModel,
    plan: LatencyPlan,
    gates: Gates,
    timer: RoundTimer = interleaved_rounds,
    source: Artifact | None = None,
) -> CheckResult:
    """Time, then look: while a gate is undecided and looks remain, double the rounds (within the plan's
    maximum); the verdict is taken at the last look."""
    looks = [1]

    def more(figures: dict[str, Any]) -> int:
        done = figures["ort"]["rounds"]
        if looks[0] >= gates.looks or done >= plan.max_rounds:
            return 0
        result = judge(gates.for_figures(figures), figures, gates.confidence)
        if result.failed or not result.undecided:
            return 0
        looks[0] += 1
        return min(done, plan.max_rounds - done)

    try:
        figures = measure_latency(artifact, model, plan, timer, source, more)
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK, f"could not time batch {plan.batch}: {error_line(exc)}")
    return check_latency(figures, gates, looks[0])
