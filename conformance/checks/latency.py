"""Latency: onnxruntime against torch eager on the same inputs, in interleaved rounds, and its gates."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from conformance import inputs
from conformance.artifact import Artifact
from conformance.case import Precision
from conformance.encoders import ClipModel, wrap
from conformance.results import CheckResult, error_line, failed, verdict
from conformance.roofline import roofline
from conformance.runtime import run_onnx, session, threads
from conformance.tolerances import LatencyGate, limits

CHECK = "latency"
RUNTIME_LABEL = {"onnxruntime": "ORT", "openvino": "OpenVINO"}  # figures keep the key "ort" for either

Call = Callable[[], object]
# (calls, rounds) -> each call's seconds per round, in the calls' order. The first call is the graph under
# test, then torch eager, then (for a compile target) the fp32 export it was compiled from.
RoundTimer = Callable[[Sequence[Call], int], list[list[float]]]


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


def interleaved_rounds(calls: Sequence[Call], rounds: int) -> list[list[float]]:
    """The calls alternate round by round, so a drift in the shared machine's speed hits them all."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for call, record in zip(calls, times, strict=True):
            started = time.perf_counter()
            call()
            record.append(time.perf_counter() - started)
    return times


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


def _ort_call(artifact: Artifact, x: np.ndarray) -> Call:
    """The graph on its target's runtime, opened (or found open) before any round: opening is not running."""
    if artifact.case.target.runtime == "openvino":
        from conformance.openvino_runtime import COMPILED

        COMPILED.get(artifact, threads())
    else:
        session(artifact)
    return lambda: run_onnx(artifact, x)


def _torch_call(model: ClipModel, artifact: Artifact, x: np.ndarray) -> Call:
    module, tensor = wrap(model, artifact.encoder), torch.from_numpy(x)

    def call() -> object:
        with torch.no_grad():
            return module(tensor)

    return call


def _roofline(artifact: Artifact, achieved: float) -> dict[str, Any]:
    if artifact.case.precision == Precision.FP32:
        return roofline(achieved)
    # int8 GEMMs run 2-4x the fp32 peak, so a fraction of it would read "above the roofline"
    return {"roofline_fraction": None, "roofline_note": f"no {artifact.case.precision} peak measured"}


def measure_latency(
    artifact: Artifact,
    model: ClipModel,
    plan: LatencyPlan,
    timer: RoundTimer = interleaved_rounds,
    source: Artifact | None = None,
) -> dict[str, Any]:
    """Time ORT and torch eager (and `source`, the fp32 export a compile target came from) on one input
    batch, interleaved; warm-up rounds are run first and not timed."""
    x = inputs.batch_for(artifact.variant, artifact.encoder, plan.batch)
    calls = [_ort_call(artifact, x), _torch_call(model, artifact, x)]
    calls += [_ort_call(source, x)] if source is not None else []
    started = time.perf_counter()
    for _ in range(plan.warmup):
        for call in calls:
            call()
    # With no warm-up there is nothing to size the rounds by: the stated minimum.
    rounds = plan.rounds_for((time.perf_counter() - started) / plan.warmup) if plan.warmup else plan.min_rounds
    times = [summary(seconds, plan.batch) for seconds in timer(calls, rounds)]
    ort, ref = times[0], times[1]
    per_item = inputs.gflops_per_item(artifact.variant, artifact.encoder)
    achieved = per_item * plan.batch / (ort["p50_ms"] / 1e3)
    figures = {
        "batch": plan.batch,
        "runtime": RUNTIME_LABEL.get(artifact.case.target.runtime, "ORT"),
        "warmup": plan.warmup,
        "min_rounds": plan.min_rounds,
        "budget_s": plan.budget_s,
        "ort": ort,
        "torch": ref,
        "ratio_p50": ort["p50_ms"] / ref["p50_ms"],
        "speedup_vs_torch": ref["p50_ms"] / ort["p50_ms"],
        "file_bytes": artifact.total_bytes,
        "gflops_per_item": per_item,
        "achieved_gflops": achieved,
        **_roofline(artifact, achieved),
        "ort_threads": threads(),
        "torch_threads": torch.get_num_threads(),
    }
    if source is not None:
        figures.update(
            fp32_export=times[2],
            speedup_vs_fp32=times[2]["p50_ms"] / ort["p50_ms"],
            fp32_file_bytes=source.total_bytes,
        )
    return figures


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
    runtime = figures.get("runtime", "ORT")
    problems = []
    if not ratio <= gate.max_ratio:
        problems.append(
            f"{runtime} p50 {ort_p50:.2f} ms is {ratio:.2f}x torch eager p50 {torch_p50:.2f} ms "
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
        CHECK,
        problems,
        figures,
        f"{runtime}/torch p50 {ratio:.2f}x at batch {figures['batch']} (gate {gate.max_ratio}x)",
    )


def check_latency_of(
    artifact: Artifact,
    model: ClipModel,
    plan: LatencyPlan,
    gate: LatencyGate,
    timer: RoundTimer = interleaved_rounds,
    baseline: BaselineMatch | None = None,
    baseline_tolerance: float | None = None,
    source: Artifact | None = None,
) -> CheckResult:
    try:
        figures = measure_latency(artifact, model, plan, timer, source)
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK, f"could not time batch {plan.batch}: {error_line(exc)}")
    return check_latency(figures, gate, baseline, baseline_tolerance)
