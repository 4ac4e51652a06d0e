"""Latency: onnxruntime against torch eager (and a compile target's fp32 export) on the same inputs, in
interleaved rounds; the gates that judge the rounds are in checks/latency_gate.py."""

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
from conformance.results import error_line
from conformance.roofline import roofline
from conformance.runtime import run_onnx, session, threads

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
    """An auxiliary figure: whatever goes wrong measuring the peak becomes a note, never a failed check."""
    if artifact.case.precision != Precision.FP32:
        # int8 GEMMs run 2-4x the fp32 peak, so a fraction of it would read "above the roofline"
        return {"roofline_fraction": None, "roofline_note": f"no {artifact.case.precision} peak measured"}
    try:
        return roofline(achieved)
    except Exception as exc:  # noqa: BLE001 - the probe is not the subject: any failure is a note
        return {"roofline_fraction": None, "roofline_note": f"matmul peak not measured: {error_line(exc)}"}


def _round_figures(raw: list[list[float]], plan: LatencyPlan) -> dict[str, Any]:
    """Summaries of each call's rounds, and the paired per-round series the gates decide on."""
    times = [summary(seconds, plan.batch) for seconds in raw]
    figures: dict[str, Any] = {"ort": times[0], "torch": times[1]}
    figures["round_ratios"] = [o / t for o, t in zip(raw[0], raw[1], strict=True)]
    if len(raw) > 2:
        figures["fp32_export"] = times[2]
        figures["round_speedups"] = [f / o for o, f in zip(raw[0], raw[2], strict=True)]
    return figures


# (figures so far) -> how many more rounds to time (0: stop). The gates' planned looks.
MoreRounds = Callable[[dict[str, Any]], int]


def measure_latency(
    artifact: Artifact,
    model: ClipModel,
    plan: LatencyPlan,
    timer: RoundTimer = interleaved_rounds,
    source: Artifact | None = None,
    more: MoreRounds | None = None,
) -> dict[str, Any]:
    """Time ORT and torch eager (and `source`, the fp32 export a compile target came from) on one input
    batch, interleaved; warm-up rounds are run first and not timed. `more` may ask for further rounds after
    each look (they are interleaved the same way and appended)."""
    x = inputs.batch_for(artifact.variant, artifact.encoder, plan.batch)
    calls = [_ort_call(artifact, x), _torch_call(model, artifact, x)]
    calls += [_ort_call(source, x)] if source is not None else []
    started = time.perf_counter()
    for _ in range(plan.warmup):
        for call in calls:
            call()
    # With no warm-up there is nothing to size the rounds by: the stated minimum.
    rounds = plan.rounds_for((time.perf_counter() - started) / plan.warmup) if plan.warmup else plan.min_rounds
    raw = timer(calls, rounds)
    paired = _round_figures(raw, plan)
    while more is not None and (extra := more(paired)) > 0:
        for record, added in zip(raw, interleaved_rounds(calls, extra), strict=True):
            record.extend(added)
        paired = _round_figures(raw, plan)
    ort, ref = paired["ort"], paired["torch"]
    per_item = inputs.gflops_per_item(artifact.variant, artifact.encoder)
    achieved = per_item * plan.batch / (ort["p50_ms"] / 1e3)
    figures = {
        "batch": plan.batch,
        "runtime": RUNTIME_LABEL.get(artifact.case.target.runtime, "ORT"),
        "warmup": plan.warmup,
        "min_rounds": plan.min_rounds,
        "budget_s": plan.budget_s,
        **paired,
        "ratio_p50": float(np.median(paired["round_ratios"])),
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
            speedup_vs_fp32=float(np.median(paired["round_speedups"])),
            fp32_file_bytes=source.total_bytes,
        )
    return figures
