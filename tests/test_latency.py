import json

import numpy as np
import pytest

from conformance.checks.latency import (
    LatencyPlan,
    check_latency,
    check_latency_of,
    interleaved_rounds,
    measure_latency,
    summary,
)
from conformance.encoders import EncoderKind
from conformance.runtime import run_onnx, run_torch
from fixtures.latency import batches_for, load_baseline
from tests.helpers import TINY_VIT, good, slow_down, synthetic

PLAN = LatencyPlan(batch=2, rounds=5, warmup=1)


def test_measurement_records_every_figure(tiny_cache):
    figures = measure_latency(good(tiny_cache, TINY_VIT, "image"), synthetic(TINY_VIT).model, TINY_VIT, PLAN)
    ort, ref = figures["ort"], figures["torch"]
    assert ort["rounds"] == ref["rounds"] == PLAN.rounds
    assert ort["p50_ms"] <= ort["p90_ms"] <= ort["p99_ms"]
    assert ort["items_per_s"] == pytest.approx(PLAN.batch / (ort["p50_ms"] / 1e3))
    assert figures["ratio_p50"] == pytest.approx(ort["p50_ms"] / ref["p50_ms"])
    assert figures["roofline_fraction"] == pytest.approx(figures["achieved_gflops"] / figures["matmul_peak_gflops"])
    assert figures["matmul_peak_gflops"] > 1


def test_rounds_interleave_ort_and_torch():
    calls: list[str] = []
    interleaved_rounds(lambda: calls.append("ort"), lambda: calls.append("torch"), 3)
    assert calls == ["ort", "torch"] * 3


def test_summary_percentiles():
    stats = summary([i / 1000 for i in range(1, 101)], items=4)
    assert stats["p50_ms"] == pytest.approx(50.5) and stats["p99_ms"] == pytest.approx(99.01)
    assert stats["items_per_s"] == pytest.approx(4 / 0.0505)


def test_slowed_model_fails_the_ratio_gate(tiny_cache, tmp_path):
    good_artifact = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE)
    slowed = slow_down(good_artifact, tmp_path / "slow")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(run_onnx(slowed, x), run_onnx(good_artifact, x))  # same answers, only slower
    np.testing.assert_allclose(run_onnx(slowed, x), run_torch(synthetic(TINY_VIT).model, "image", x), atol=1e-5)
    result = check_latency_of(slowed, synthetic(TINY_VIT).model, TINY_VIT, PLAN)
    assert not result.passed
    assert "x torch eager p50" in result.message and "(gate 1.5x, batch 2)" in result.message
    assert result.figures["ratio_p50"] > 1.5


def test_baseline_50_percent_faster_fails(tiny_cache):
    figures = measure_latency(good(tiny_cache, TINY_VIT, "image"), synthetic(TINY_VIT).model, TINY_VIT, PLAN)
    baseline = figures["ort"]["p50_ms"] * 0.5
    result = check_latency(figures, max_ratio=1e9, baseline_p50_ms=baseline, baseline_tolerance=0.10)
    assert not result.passed and "exceeds baseline" in result.message
    assert result.figures["baseline_p50_ms"] == baseline
    assert check_latency(figures, max_ratio=1e9, baseline_p50_ms=figures["ort"]["p50_ms"] * 2).passed


def test_baseline_is_read_from_an_earlier_results_json(tmp_path):
    doc = {"schema": "clip-conformance-results/1",
           "tests": [{"nodeid": "a@RN50", "check": "latency", "figures": {"ort": {"p50_ms": 4.0}}},
                     {"nodeid": "b", "check": "parity", "figures": {}}]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    assert load_baseline(path) == {"a": 4.0}
    path.write_text('{"schema": "other/1", "tests": []}')
    with pytest.raises(pytest.UsageError, match="expected 'clip-conformance-results/1'"):
        load_baseline(path)
    path.write_text("{not json")
    with pytest.raises(pytest.UsageError, match="not a usable results"):
        load_baseline(path)


def test_batch_sizes_are_scaled_down_for_costly_variants():
    from conformance.variants import get

    assert batches_for(get("ViT-B/32"), EncoderKind.IMAGE, [1, 8]) == [1, 8]
    assert batches_for(get("RN50x64"), EncoderKind.IMAGE, [1, 8]) == [1]
    assert batches_for(get("ViT-L/14@336px"), EncoderKind.IMAGE, [1, 8]) == [1]
