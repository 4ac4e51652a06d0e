"""Latency: onnxruntime against torch eager on the same inputs, in interleaved rounds, and its gates."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch

from conformance import inputs
from conformance.artifact import Artifact
from conformance.encoders import ClipModel, wrap
from conformance.results import CheckResult, error_line, failed, verdict
from conformance.runtime import run_onnx, session, threads
from conformance.tolerances import LatencyGate, limits

CHECK = "latency"

Call = Callable[[], object]
# (ort_call, torch_call, rounds) -> (ort seconds per round, torch seconds per round)
RoundTimer = Callable[[Call, Call, int], tuple[list[float], list[float]]]


@dataclass(frozen=True)
class LatencyPlan:
    """Time `batch`: `warmup` untimed rounds, then as many rounds as fit in `budget_s` (ORT plus torch, as
    the warm-up rounds cost), at least `min_rounds` and at most `max_rounds`; with no warm-up, `min_rounds`."""

    batch: int
    min_rounds: int
    warmup: int = 2
    budget_s: float = 0.0
    max_rounds: int = 1000

    def rounds_for(self, seconds_per_round: float) -> int:
        fitting = int(self.budget_s / seconds_per_round) if seconds_per_round > 0 else self.max_rounds
        return max(self.min_rounds, min(self.max_rounds, fitting))


def interleaved_rounds(ort_call: Call, torch_call: Call, rounds: int) -> tuple[list[float], list[float]]:
    """ORT and torch alternate round by round, so a drift in the shared machine's speed hits both."""
    ort_times, torch_times = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        ort_call()
        ort_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        torch_call()
        torch_times.append(time.perf_counter() - started)
    return ort_times, torch_times


def summary(seconds: list[float], items: int) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    p50 = float(np.percentile(ms, 50))
    return {
        "mean_ms": float(ms.mean()),
        "p50_ms": p50,
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "rounds": len(ms),
        "items_per_s": items / (p50 / 1e3),
    }


@cache
def matmul_peak_gflops(size: int = 2048, repeats: int = 3) -> float:
    """This CPU's practical fp32 peak: the best of a few torch sgemms (2 flops per multiply-add)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(call: Call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure_latency(
    artifact: Artifact, model: ClipModel, plan: LatencyPlan, timer: RoundTimer = interleaved_rounds
) -> dict[str, Any]:
    """Time ORT and torch eager on one input batch; warm-up rounds are run first and not timed."""
    variant = artifact.variant
    x = inputs.batch_for(variant, artifact.encoder, plan.batch)
    module, tensor = wrap(model, artifact.encoder), torch.from_numpy(x)
    session(artifact)  # opened (or found open) before any round: opening a session is not running one

    def ort_call() -> object:
        return run_onnx(artifact, x)

    def torch_call() -> object:
        with torch.no_grad():
            return module(tensor)

    started = time.perf_counter()
    for _ in range(plan.warmup):
        ort_call(), torch_call()
    # With no warm-up there is nothing to size the rounds by: the stated minimum.
    rounds = plan.rounds_for((time.perf_counter() - started) / plan.warmup) if plan.warmup else plan.min_rounds
    ort_times, torch_times = timer(ort_call, torch_call, rounds)
    ort, ref = summary(ort_times, plan.batch), summary(torch_times, plan.batch)
    per_item = inputs.gflops_per_item(variant, artifact.encoder)
    achieved = per_item * plan.batch / (ort["p50_ms"] / 1e3)
    peak = matmul_peak_gflops()
    return {
        "batch": plan.batch,
        "warmup": plan.warmup,
        "min_rounds": plan.min_rounds,
        "budget_s": plan.budget_s,
        "ort": ort,
        "torch": ref,
        "ratio_p50": ort["p50_ms"] / ref["p50_ms"],
        "gflops_per_item": per_item,
        "achieved_gflops": achieved,
        "matmul_peak_gflops": peak,
        "roofline_fraction": achieved / peak,
        "ort_threads": threads(),
        "torch_threads": torch.get_num_threads(),
    }


@dataclass(frozen=True)
class BaselineMatch:
    """An earlier run's ORT p50 for the same case, or why none is used."""

    p50_ms: float | None = None
    skipped: str | None = None  # e.g. measured on another CPU model or thread count
    strict: bool = False  # --strict-xfails: a skipped baseline fails instead of being ignored


def check_latency(
    figures: dict[str, Any],
    gate: LatencyGate,
    baseline: BaselineMatch | None = None,
    baseline_tolerance: float | None = None,
) -> CheckResult:
    """Gate a measurement: against torch in the same run, and against an earlier run's p50 if given."""
    ort_p50, torch_p50, ratio = figures["ort"]["p50_ms"], figures["torch"]["p50_ms"], figures["ratio_p50"]
    figures = {**figures, "gate_max_ratio": gate.max_ratio, "gate_reason": gate.reason}
    problems = []
    if not ratio <= gate.max_ratio:
        problems.append(
            f"ORT p50 {ort_p50:.2f} ms is {ratio:.2f}x torch eager p50 {torch_p50:.2f} ms "
            f"(gate {gate.max_ratio}x at batch {figures['batch']}: {gate.reason})"
        )
    if baseline is not None and baseline.skipped:
        figures["baseline_skipped"] = baseline.skipped
        if baseline.strict:
            problems.append(f"latency baseline not usable under --strict-xfails: {baseline.skipped}")
    elif baseline is not None and baseline.p50_ms is not None:
        baseline_tolerance = limits().baseline_tolerance if baseline_tolerance is None else baseline_tolerance
        limit = baseline.p50_ms * (1 + baseline_tolerance)
        figures.update(baseline_p50_ms=baseline.p50_ms, baseline_tolerance=baseline_tolerance)
        if ort_p50 > limit:
            problems.append(
                f"ORT p50 {ort_p50:.2f} ms exceeds baseline {baseline.p50_ms:.2f} ms "
                f"+{baseline_tolerance:.0%} = {limit:.2f} ms"
            )
    return verdict(
        CHECK, problems, figures, f"ORT/torch p50 {ratio:.2f}x at batch {figures['batch']} (gate {gate.max_ratio}x)"
    )


def check_latency_of(
    artifact: Artifact,
    model: ClipModel,
    plan: LatencyPlan,
    gate: LatencyGate,
    timer: RoundTimer = interleaved_rounds,
    baseline: BaselineMatch | None = None,
    baseline_tolerance: float | None = None,
) -> CheckResult:
    try:
        figures = measure_latency(artifact, model, plan, timer)
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK, f"could not time batch {plan.batch}: {error_line(exc)}")
    return check_latency(figures, gate, baseline, baseline_tolerance)
