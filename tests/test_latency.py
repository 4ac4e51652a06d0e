import numpy as np
import pytest
import torch

from conformance import inputs
from conformance.case import Case, Exporter
from conformance.checks.latency import LatencyPlan, interleaved_rounds, measure_latency, summary
from conformance.checks.latency_gate import BaselineMatch, Gates, check_latency_of
from conformance.encoders import EncoderKind
from conformance.export import ExportCache, ExportSpec
from conformance.runtime import run_onnx, run_torch
from conformance.tolerances import LatencyGate, latency_gate, limits
from conformance.variants import get
from conformance.weights import Provenance
from tests.support.helpers import TINY_VIT, good, synthetic
from tests.support.slowdown import slow_down, slow_down_by

PLAN = LatencyPlan(batch=2, min_rounds=7, warmup=1, max_rounds=7)  # 7: the fewest rounds a gate decides from
GATES = Gates(LatencyGate(1.5, "test gate"))
VIT_B32 = get("ViT-B/32")
# Timed: these judge speed, so they run alone, after the rest (README: `-m "not timing"` under xdist, then
# `-m timing`), never beside another worker loading the same cores.
pytestmark = pytest.mark.timing


def test_measurement_records_every_figure(tiny_cache):
    figures = measure_latency(good(tiny_cache, TINY_VIT, "image"), synthetic(TINY_VIT).model, PLAN)
    ort, ref = figures["ort"], figures["torch"]
    assert ort["rounds"] == ref["rounds"] == PLAN.min_rounds == PLAN.max_rounds
    assert ort["p50_ms"] <= ort["p90_ms"] <= ort["p99_ms"]
    assert ort["items_per_s"] == pytest.approx(PLAN.batch / (ort["p50_ms"] / 1e3))
    assert len(figures["round_ratios"]) == PLAN.min_rounds  # paired: each round's ORT time over its torch time
    assert figures["ratio_p50"] == pytest.approx(float(np.median(figures["round_ratios"])))
    assert figures["roofline_fraction"] == pytest.approx(figures["achieved_gflops"] / figures["matmul_peak_gflops"])
    assert figures["matmul_peak_gflops"] == max(figures["matmul_peaks_gflops"].values()) > 1


def test_rounds_fit_the_time_budget_within_their_bounds():
    plan = LatencyPlan(batch=8, min_rounds=5, warmup=1, budget_s=2.0, max_rounds=30)
    assert plan.rounds_for(0.8) == 5  # a slow case still gets the stated minimum
    assert plan.rounds_for(0.1) == 20  # a fast one as many as fit in the budget
    assert plan.rounds_for(0.001) == 30  # never more than the maximum
    assert plan.rounds_for(0.0) == 30


def test_without_a_warm_up_the_stated_minimum_is_timed(tiny_cache):
    plan = LatencyPlan(batch=1, min_rounds=4, warmup=0, budget_s=60.0, max_rounds=100)
    figures = measure_latency(good(tiny_cache, TINY_VIT, "image"), synthetic(TINY_VIT).model, plan)
    assert figures["ort"]["rounds"] == figures["torch"]["rounds"] == 4 and figures["warmup"] == 0


def test_rounds_interleave_ort_and_torch():
    calls: list[str] = []
    interleaved_rounds([lambda: calls.append("ort"), lambda: calls.append("torch"), lambda: calls.append("fp32")], 3)
    assert calls == ["ort", "torch", "fp32"] * 3


def test_summary_percentiles():
    stats = summary([i / 1000 for i in range(1, 101)], items=4)
    assert stats["p50_ms"] == pytest.approx(50.5) and stats["p99_ms"] == pytest.approx(99.01)
    assert stats["items_per_s"] == pytest.approx(4 / 0.0505)


# As a real gate runs: 7 rounds, doubled while undecided. At 7 rounds the interval is the rounds' minimum and
# maximum, so one stalled torch round (a ~5x ratio, 3.5 ms torch rounds here) made this test inconclusive in one
# of two quiet clean-clone runs on a 2-core Zen 3 (AVX2 only); 28 rounds bound the interval by inner rounds.
LOOKED = LatencyPlan(batch=2, min_rounds=7, warmup=2, max_rounds=28)


def test_slowed_model_fails_the_ratio_gate(tiny_cache, tmp_path):
    good_artifact = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE)
    slowed = slow_down(good_artifact, tmp_path / "slow")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(run_onnx(slowed, x), run_onnx(good_artifact, x))  # same answers, only slower
    np.testing.assert_allclose(run_onnx(slowed, x), run_torch(synthetic(TINY_VIT).model, "image", x), atol=1e-5)
    result = check_latency_of(slowed, synthetic(TINY_VIT).model, LOOKED, GATES)
    assert not result.passed, result.message
    assert (
        "x torch eager p50" in result.message and "above the coarse gate 1.5x at batch 2: test gate" in result.message
    )
    assert result.figures["ratio_p50"] > 1.5 and result.figures["gates"]["coarse"]["decision"] == "failed"


@pytest.fixture(scope="module")
def vitb32(tmp_path_factory) -> tuple[ExportCache, torch.nn.Module]:
    """ViT-B/32 itself: a tiny model's sub-millisecond rounds would only time Python, not kernels."""
    return ExportCache(tmp_path_factory.mktemp("vitb32"), progress=lambda m: None), synthetic(VIT_B32).model


def _export(vitb32, encoder):
    cache, model = vitb32
    return cache.get(ExportSpec(Case(VIT_B32, encoder, Exporter.TORCHSCRIPT)), model, Provenance.synthetic(0))


@pytest.fixture
def one_thread():
    """This process at one thread, ORT and torch alike, as `taskset -c 0` or one xdist worker per core gives."""
    from conformance.runtime import share_cores
    from conformance.versions import thread_count

    share_cores(thread_count())
    yield
    share_cores(1)


@pytest.mark.parametrize("threads", ["one-thread", "all-threads"])
def test_an_export_slowed_past_5x_torch_fails_the_coarse_gate_and_the_good_one_passes(
    vitb32, tmp_path, threads, request
):
    """The coarse gate (latency_gates.toml) catches the pathological: an export whose p50 is 5x torch eager's, at
    one thread and at every thread this machine has; the good export passes it, without a baseline. 5x, not the
    3.5x this test once asked for: the slowdown is calibrated to within 15% (`achieved` below), and a 3.5x target
    landed at 2.75x on a 2-core Zen 3 (AVX2 only), under the 3.0x gate, in one of two quiet runs. At 5x the worst
    calibration the test accepts is 4.25x, well above the gate on any machine."""
    if threads == "one-thread":
        request.getfixturevalue("one_thread")
    model, good_artifact = vitb32[1], _export(vitb32, EncoderKind.IMAGE)
    plan = LatencyPlan(batch=1, min_rounds=7, warmup=2, max_rounds=28)
    gates = Gates(latency_gate())
    fast = check_latency_of(good_artifact, model, plan, gates)
    assert fast.passed and fast.figures["ratio_p50"] < latency_gate().max_ratio, fast.message
    factor = 5.0 / fast.figures["ratio_p50"]  # how much slower the export must get to be 5x torch eager

    def paired_ratio(artifact):  # what the gate judges: the export's p50 over torch's, timed in the same rounds
        return measure_latency(artifact, model, plan)["ratio_p50"]

    x = inputs.batch_for(VIT_B32, EncoderKind.IMAGE, 1)
    slowed, achieved = slow_down_by(good_artifact, tmp_path, factor, x, measure=paired_ratio)
    assert achieved > 0.85 * factor, f"the slowed copy is {achieved:.2f}x the good one, wanted {factor:.2f}x"
    slow = check_latency_of(slowed, model, plan, gates)
    assert not slow.passed and "above the coarse gate 3.0x" in slow.message, slow.message


@pytest.mark.parametrize("encoder", [EncoderKind.IMAGE, EncoderKind.TEXT_SPLIT], ids=str)
@pytest.mark.parametrize("batch", [1, 8])
def test_export_slowed_1_7x_fails_against_its_baseline_and_the_good_one_does_not(vitb32, tmp_path, encoder, batch):
    """The fine gate: the same case's paired ratio recorded on this machine (here, a run just before) catches a
    1.7x regression at each timed batch size, which the coarse gate lets through."""
    model, good_artifact = vitb32[1], _export(vitb32, encoder)
    plan = LatencyPlan(batch=batch, min_rounds=7, warmup=2, max_rounds=28)
    recorded = [measure_latency(good_artifact, model, plan)["ratio_p50"] for _ in range(2)]

    def paired_ratio(artifact):  # what the gate judges: the export's p50 over torch's, timed in the same rounds
        ratio = measure_latency(artifact, model, plan)["ratio_p50"]
        if artifact is good_artifact:
            recorded.append(ratio)  # the good export, timed again beside each slowed copy
        return ratio

    slowed, achieved = slow_down_by(
        good_artifact, tmp_path, 1.7, inputs.batch_for(VIT_B32, encoder, batch), measure=paired_ratio
    )
    assert 1.5 < achieved < 2.2, f"the slowed copy is {achieved:.2f}x, not about 1.7x"
    # The baseline: the median of three or more runs of the good export, as a baseline recorded over several CI runs
    # would be. One run alone once recorded 0.37 where the good export gave 0.86-0.91 before and after (the 2-core
    # Xeon with AMX, family 6 model 167, in its first run of this test: a burst of load on the shared host).
    tolerance = limits().baseline_tolerance
    baseline = BaselineMatch(float(np.median(recorded)), source="the runs before")
    gates = Gates(latency_gate(), baseline=baseline, tolerance=tolerance)
    fast, slow = (check_latency_of(a, model, plan, gates) for a in (good_artifact, slowed))
    assert fast.passed and fast.figures["gates"]["baseline"]["decision"] != "failed", fast.message
    assert not slow.passed and "the baseline's" in slow.message and f"above 1 + {tolerance:.0%}" in slow.message
    assert slow.figures["gates"]["coarse"]["decision"] == "passed"  # 1.7x is not pathological


@pytest.mark.parametrize("encoder", [EncoderKind.IMAGE, EncoderKind.TEXT_SPLIT], ids=str)
def test_an_int8_graph_at_fp32_speed_fails_the_speedup_gate_where_the_cpu_has_vnni(vitb32, tmp_path, encoder):
    """An int8 compile whose quantisation did nothing runs at its fp32 export's speed: the speed-up gate (timed
    against that export in the same rounds) refuses it on a CPU with int8 acceleration, and a real int8-dynamic
    compile passes. Without VNNI or AMX the speed-up is reported, not gated, with the reason."""
    from conformance import isa
    from conformance.case import Target
    from fixtures.latency import LatencySettings

    model, fp32 = vitb32[1], _export(vitb32, encoder)
    claims_int8 = fp32.case.on(Target.INT8_DYNAMIC)
    gates = LatencySettings("quick", 0.10).gates(claims_int8, 8, 2)
    plan = LatencyPlan(batch=8, min_rounds=7, warmup=2, max_rounds=28)
    needed = isa.feature("int8")
    assert needed is not None
    if not needed.present():
        assert gates.speedup is None and "avx512_vnni" in str(gates.speedup_skip)
        pytest.skip(f"speed-up not gated on this CPU: {gates.speedup_skip}")
    assert gates.speedup is not None and gates.speedup.min_speedup == 1.3
    same_speed = check_latency_of(fp32, model, plan, gates, source=fp32)
    assert not same_speed.passed and "below the int8 speed-up gate 1.3x" in same_speed.message, same_speed.message
    int8 = vitb32[0].get(ExportSpec(claims_int8), model, Provenance.synthetic(0))
    real = check_latency_of(int8, model, plan, gates, source=fp32)
    assert real.passed and real.figures["speedup_vs_fp32"] > 1.3, real.message


def test_batch_sizes_are_scaled_down_for_costly_variants():
    assert inputs.latency_batches(get("ViT-B/32"), EncoderKind.IMAGE, [1, 8]) == [1, 8]
    assert inputs.latency_batches(get("RN50x64"), EncoderKind.IMAGE, [1, 8]) == [1]
    assert inputs.latency_batches(get("ViT-L/14@336px"), EncoderKind.IMAGE, [1, 8]) == [1]


def test_quick_times_one_exporter_per_encoder_at_the_largest_batch_and_full_times_every_case():
    from fixtures.latency import timed_cases

    vit = get("ViT-B/32")
    cases = [Case(vit, kind, exporter) for kind in EncoderKind for exporter in Exporter]
    quick = timed_cases(cases, "quick", [1, 8])
    assert [(c.encoder, c.exporter, b) for c, b in quick] == [(k, Exporter.DYNAMO, 8) for k in EncoderKind]
    only_torchscript = timed_cases([c for c in cases if c.exporter == Exporter.TORCHSCRIPT], "quick", [1, 8])
    assert {c.exporter for c, _ in only_torchscript} == {Exporter.TORCHSCRIPT} and len(only_torchscript) == 3
    full = timed_cases(cases, "full", [1, 8])
    assert len(full) == len(cases) * 2
    assert timed_cases([Case(get("RN50x64"), EncoderKind.IMAGE, Exporter.DYNAMO)], "quick", [1, 8])[0][1] == 1


def test_a_graph_that_is_one_large_matmul_reaches_at_most_the_measured_peak():
    """The honest peak is the best of torch, numpy and onnxruntime: a graph that is nothing but one GEMM
    cannot exceed it (beyond timing noise), whichever library is fastest on this CPU."""
    import time

    from conformance.roofline import SIZE, matmul_model, ort_session, roofline
    from conformance.runtime import threads

    session = ort_session(matmul_model(SIZE, seed=3), threads())
    x = np.random.default_rng(4).standard_normal((SIZE, SIZE), dtype=np.float32)
    session.run(None, {"x": x})
    seconds = []
    for _ in range(5):
        started = time.perf_counter()
        session.run(None, {"x": x})
        seconds.append(time.perf_counter() - started)
    figures = roofline(2 * SIZE**3 / min(seconds) / 1e9)
    assert set(figures["matmul_peaks_gflops"]) == {"torch", "numpy", "onnxruntime"}
    assert 0.5 < figures["roofline_fraction"] <= 1.15, figures


def test_a_probe_onnxruntime_refuses_is_a_note_never_a_failed_latency_test(tiny_cache, monkeypatch):
    """The roofline is an auxiliary figure: an onnxruntime that refuses the probe graph (as 1.30 refused IR 14)
    leaves a note, and the latency test is judged on its gates alone."""
    from conformance import roofline

    def refuse(*_args, **_kwargs):
        raise RuntimeError("Unsupported model IR version: 14, max supported IR version: 13")

    roofline.matmul_peaks.cache_clear()
    monkeypatch.setattr(roofline, "ort_session", refuse)
    try:
        result = check_latency_of(
            good(tiny_cache, TINY_VIT, "image"), synthetic(TINY_VIT).model, PLAN, Gates(LatencyGate(1e9, "x"))
        )
    finally:
        roofline.matmul_peaks.cache_clear()
    assert result.passed, result.message
    assert result.figures["roofline_fraction"] is None and "IR version: 14" in result.figures["roofline_note"]
    assert roofline.matmul_model(8).ir_version == roofline.PROBE_IR_VERSION <= 9
