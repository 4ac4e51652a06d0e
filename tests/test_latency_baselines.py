"""The latency verdicts (bootstrap intervals, planned looks, inconclusive) and baselines (recorded on purpose,
keyed by the machine, found automatically, never overwritten by an ordinary run)."""

import json
import re
import warnings

import pytest

from conformance.case import Case, Exporter
from conformance.checks import latency_gate as gate_module
from conformance.checks.latency import LatencyPlan
from conformance.checks.latency_gate import BaselineMatch, Gates, check_latency, check_latency_of
from conformance.checks.latency_verdict import Decision, Gate, Verdict, at_least, at_most, interval
from conformance.encoders import EncoderKind
from conformance.tolerances import LatencyGate, SpeedupGate
from conformance.versions import cpu_model, fingerprint_slug, machine_fingerprint
from fixtures import baselines
from fixtures.latency import LatencySettings, warn_about_baseline_coverage
from tests.support.helpers import TINY_VIT, good, pytest_run, synthetic

# Timed: a recorded baseline is judged against the next run's speed, so these run alone (see test_latency.py).
pytestmark = pytest.mark.timing

COARSE = LatencyGate(3.0, "test coarse gate")


def _figures(ratios, speedups=None, batch=8):
    figures = {
        "batch": batch,
        "round_ratios": ratios,
        "ratio_p50": sorted(ratios)[len(ratios) // 2],
        "ort": {"p50_ms": 10.0, "rounds": len(ratios)},
        "torch": {"p50_ms": 20.0},
    }
    if speedups is not None:
        figures.update(round_speedups=speedups, speedup_vs_fp32=sorted(speedups)[len(speedups) // 2])
    return figures


def test_an_interval_decides_only_when_it_lies_wholly_on_one_side():
    """The median's order-statistic interval: [min, max] at 7 rounds (98.3%), robust to two outliers a side at 14;
    below 7 rounds nothing is decided; a NaN round or a NaN bound is a failure, never "within"."""
    steady = interval([0.5] * 9, 0.983)
    assert steady == (0.5, 0.5) and at_most(3.0, steady) == Decision.PASSED
    assert interval([3.0, 1.0, 2.0, 5.0, 4.0, 7.0, 6.0], 0.983) == (1.0, 7.0)
    assert interval([*range(1, 13), 100, 200], 0.983) == (3.0, 12.0)  # two outliers each side left out
    assert interval([0.5] * 6, 0.983) == (float("-inf"), float("inf"))
    assert at_most(3.0, interval([0.5] * 6, 0.983)) == Decision.INCONCLUSIVE
    assert at_most(1.1, interval([1.3, 1.35, 1.4, 1.32, 1.38, 1.31, 1.36], 0.983)) == Decision.FAILED
    assert at_most(1.1, interval([0.9, 1.3, 1.0, 1.25, 1.05, 1.2, 0.95], 0.983)) == Decision.INCONCLUSIVE
    assert at_least(1.3, interval([2.1, 2.3, 2.2, 2.0, 2.4, 2.2, 2.1], 0.983)) == Decision.PASSED
    assert at_least(1.3, interval([1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03], 0.983)) == Decision.FAILED
    assert at_most(3.0, interval([0.5, float("nan"), *[0.5] * 6], 0.983)) == Decision.FAILED
    assert at_most(float("nan"), steady) == Decision.FAILED and at_least(float("inf"), steady) == Decision.FAILED


def test_the_interval_errs_at_most_at_its_stated_rate_per_side():
    """Rounds drawn with their true median exactly on the bound: a decision either way is wrong. Its rate per
    side must stay within (1 - confidence) / 2 at every round count the looks use."""
    import numpy as np

    rng = np.random.default_rng(0)
    for n in (7, 14, 28, 15, 30):
        rounds = rng.lognormal(0.0, 0.1, (4000, n))  # median 1.0
        wrong = sum(at_most(1.0, interval(r, 0.983)) == Decision.FAILED for r in rounds) / len(rounds)
        assert wrong <= 0.0085 + 0.004, (n, wrong)  # 0.85% per side, with the simulation's own error


def test_a_baseline_gate_divides_by_the_recorded_ratio():
    gate = Gate("baseline", "round_ratios", 1.1, True, "recorded", scale=0.5)
    assert gate.decide(_figures([0.5] * 7), 0.98)[0] == Decision.PASSED
    assert gate.decide(_figures([0.85] * 7), 0.98)[0] == Decision.FAILED  # 1.7x the baseline's 0.5


def test_each_gate_says_why_it_failed():
    gates = Gates(COARSE, SpeedupGate("int8", 1.3, "int8 reason"), baseline=BaselineMatch(0.5, source="b.json"))
    result = check_latency(_figures([3.4] * 7, speedups=[1.0] * 7), gates)
    assert not result.passed
    assert "above the coarse gate 3.0x at batch 8: test coarse gate" in result.message
    assert "below the int8 speed-up gate 1.3x" in result.message and "baseline b.json" in result.message
    assert result.figures["gates"]["speedup"]["decision"] == "failed"


def test_undecided_gates_get_more_rounds_then_say_inconclusive_and_fail_only_strictly(tiny_cache, monkeypatch):
    """Planned looks: while a gate straddles its bound the rounds double (5, 10, 20 within a maximum of 30),
    three looks at most; then the result is inconclusive: passed with the interval, failed under --strict-xfails."""
    undecided = Verdict({"coarse": Decision.INCONCLUSIVE}, {"coarse": (0.9, 3.2)})
    monkeypatch.setattr(gate_module, "judge", lambda *_: undecided)
    artifact, model = good(tiny_cache, TINY_VIT, "image"), synthetic(TINY_VIT).model
    plan = LatencyPlan(batch=1, min_rounds=5, warmup=0, max_rounds=30)
    result = check_latency_of(artifact, model, plan, Gates(COARSE, looks=3))
    assert result.passed and result.figures["looks"] == 3 and result.figures["ort"]["rounds"] == 20
    assert result.message.startswith("inconclusive after 20 rounds (coarse interval [0.90, 3.20])")
    strict = check_latency_of(artifact, model, plan, Gates(COARSE, looks=3, strict=True))
    assert not strict.passed and "inconclusive under --strict-xfails" in strict.message
    assert Gates(COARSE, alpha=0.05, looks=3).confidence == pytest.approx(1 - 0.05 / 3)


def _tests(ratio=0.5, threads=2, outcome="passed"):
    case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO)
    figures = {"batch": 1, "ort_threads": threads, "ratio_p50": ratio, "round_ratios": [ratio] * 5}
    return [{**case.record(), "nodeid": "x", "check": "latency", "outcome": outcome, "figures": figures}]


def test_a_recorded_baseline_is_found_by_this_machines_fingerprint_and_matched_by_case(tmp_path):
    [path] = baselines.record(tmp_path, _tests(0.5, threads=2))
    assert path == tmp_path / fingerprint_slug(machine_fingerprint(2)) / "latency-baseline.json"
    maker = re.findall(r"[A-Za-z0-9]+", cpu_model())[0]  # "Intel(R) Xeon(R) Processor": "Intel", as the slug spells it
    assert baselines.find(tmp_path, 2) == path and path.parent.name.startswith(maker)
    recorded = baselines.load_recorded(path)
    settings = LatencySettings("quick", 0.10, recorded)
    case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT)  # another exporter: another case
    assert settings.baseline_for(case, 1, 2).skipped is not None
    same = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO)
    match = settings.baseline_for(same, 1, 2)
    assert match.ratio == 0.5 and match.note is None
    assert "another machine" in str(settings.baseline_for(same, 1, 3).skipped)  # another thread count
    assert baselines.record(tmp_path / "none", _tests(outcome="failed")) == []  # a failing run records nothing


def test_another_cpu_is_refused_and_other_versions_are_compared_and_named(tmp_path):
    [path] = baselines.record(tmp_path, _tests())
    doc = json.loads(path.read_text())
    doc["versions"]["onnxruntime"] = "1.30.0"
    path.write_text(json.dumps(doc))
    noted = LatencySettings("quick", 0.10, baselines.load_recorded(path)).baseline_for(
        Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO), 1, 2
    )
    assert noted.ratio == 0.5 and "onnxruntime 1.30.0 -> " in str(noted.note)
    doc["fingerprint"]["isa"] = ["avx2"]
    path.write_text(json.dumps(doc))
    settings = LatencySettings("quick", 0.10, baselines.load_recorded(path), required=True)
    other = settings.baseline_for(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO), 1, 2)
    assert other.ratio is None and "isa ['avx2'] there" in str(other.skipped) and other.required
    result = check_latency(_figures([0.5] * 5), Gates(COARSE, baseline=other))
    assert not result.passed and "a latency baseline was required" in result.message
    path.write_text("{broken")
    with pytest.raises(pytest.UsageError, match="delete it, or record a new one"):
        baselines.load_recorded(path)


def test_without_a_baseline_only_the_coarse_gate_applies_and_the_result_says_so():
    settings = LatencySettings("quick", 0.10, searched="/ci/cache/x/latency-baseline.json does not exist")
    match = settings.baseline_for(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO), 8, 2)
    result = check_latency(_figures([0.5] * 7), Gates(COARSE, baseline=match))
    assert result.passed and "no fine gate: no latency baseline for this machine: /ci/cache" in result.message


def _results_doc(cpu: str, threads: int) -> dict:
    return {
        "schema": "clip-conformance-results/2",
        "environment": {"cpu": cpu},
        "tests": [
            {
                **Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO).record(),
                "nodeid": "dist/v1-tiny-vit-image-dynamo-op20-batch1",
                "check": "latency",
                "outcome": "passed",
                "figures": {"batch": 1, "ort_threads": threads, "ort": {"p50_ms": 4.0}, "ratio_p50": 0.4},
            },
            {"nodeid": "b", "check": "parity", "figures": {}},
        ],
    }


def test_an_earlier_results_json_still_serves_as_a_baseline(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_results_doc(cpu_model(), 2)))
    loaded = baselines.load_results(path)
    assert loaded.ratios == {("tiny-vit", "image", "dynamo", 20, "fp32", "onnx", "dynamic", 1): 0.4}
    assert (
        LatencySettings("quick", 0.10, loaded)
        .baseline_for(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO), 1, 2)
        .ratio
        == 0.4
    )
    path.write_text(json.dumps(_results_doc("Some Other CPU", 2)))
    other = LatencySettings("quick", 0.10, baselines.load_results(path), strict=True)
    assert "Some Other CPU" in str(other.baseline_for(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO), 1, 2).skipped)
    path.write_text(json.dumps({**_results_doc("cpu", 2), "schema": "clip-conformance-results/1"}))
    with pytest.raises(pytest.UsageError, match="written by an older version of this suite"):
        baselines.load_results(path)
    case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO)
    path.write_text(json.dumps(_results_doc(cpu_model(), 2)))
    with pytest.warns(UserWarning, match="matches none of this run's latency cases"):
        warn_about_baseline_coverage(baselines.load_results(path), [(case, 8)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_about_baseline_coverage(baselines.load_results(path), [(case, 1)])


def test_a_baseline_is_recorded_on_purpose_and_found_by_the_next_run(repo_root, tmp_path):
    """`--latency-record-baseline` writes one; an ordinary run with the same folder only reads it; a run that
    requires one fails where this machine has none."""
    root = tmp_path / "baselines"
    common = ("--variant", "tiny-vit", "--exporter", "dynamo", "-k", "latency and image", f"--latency-baselines={root}")
    run = pytest_run(repo_root, *common, "--latency-record-baseline", f"--report-dir={tmp_path / 'r1'}")
    assert run.returncode == 0 and "latency baseline recorded" in run.stdout, run.stdout[-3000:]
    [recorded] = list(root.glob("*/latency-baseline.json"))
    before = recorded.stat().st_mtime_ns
    run = pytest_run(repo_root, *common, f"--report-dir={tmp_path / 'r2'}")
    assert recorded.stat().st_mtime_ns == before, run.stdout[-3000:]  # read, never rewritten
    [test] = [t for t in json.loads((tmp_path / "r2" / "results.json").read_text())["tests"] if t["check"] == "latency"]
    # Judged against it (tiny-vit's sub-millisecond rounds time Python, so the verdict itself may go either way).
    assert test["figures"]["baseline_ratio"] and "baseline" in test["figures"]["gates"], test["message"]
    assert run.returncode == 0 or "the baseline's" in test["message"], run.stdout[-3000:]
    run = pytest_run(
        repo_root,
        *common[:-1],
        f"--latency-baselines={tmp_path / 'empty'}",
        "--latency-require-baseline",
        f"--report-dir={tmp_path / 'r3'}",
    )
    assert run.returncode == 1 and "a latency baseline was required" in run.stdout, run.stdout[-3000:]


def test_recording_merges_and_never_lets_a_regression_or_a_corrupt_ratio_in(tmp_path):
    """A case that failed (or was undecided) keeps the ratio it had; a run of other cases leaves it alone; a ratio
    that is not a positive finite number, or a fingerprint with fields missing, makes the file unusable."""
    [path] = baselines.record(tmp_path, _tests(0.5))
    baselines.record(tmp_path, _tests(0.9, outcome="failed"))  # the regression is not recorded
    slow = _tests(0.85)
    slow[0]["figures"]["inconclusive"] = True
    baselines.record(tmp_path, slow)  # nor an undecided pass
    other = _tests(0.3)
    other[0].update(encoder="text-split")
    baselines.record(tmp_path, other)  # another case joins
    ratios = baselines.load_recorded(path).ratios
    assert sorted(ratios.values()) == [0.3, 0.5]
    doc = json.loads(path.read_text())
    for broken in ({"ratio": float("nan")}, {"ratio": -1.0}):
        path.write_text(json.dumps({**doc, "cases": [{**doc["cases"][0], **broken}]}))
        with pytest.raises(pytest.UsageError, match="paired ratio"):
            baselines.load_recorded(path)
    path.write_text(json.dumps({**doc, "fingerprint": {}}))
    with pytest.raises(pytest.UsageError, match="fingerprint lacks"):
        baselines.load_recorded(path)


def test_a_failed_or_undecided_case_in_a_results_json_is_no_baseline(tmp_path):
    doc = _results_doc(cpu_model(), 2)
    doc["tests"][0]["outcome"] = "failed"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    assert baselines.load_results(path).ratios == {}
    doc["tests"][0].update(outcome="passed")
    doc["tests"][0]["figures"]["inconclusive"] = True
    path.write_text(json.dumps(doc))
    assert baselines.load_results(path).ratios == {}
    doc["environment"]["cpu_isa"] = "none of the recorded flags"
    path.write_text(json.dumps(doc))
    assert baselines.load_results(path).fingerprint["isa"] == []


@pytest.mark.parametrize("option", ["--latency-max-ratio=nan", "--latency-tolerance=-1", "--batch-max=0"])
def test_a_meaningless_gate_option_is_a_usage_error(repo_root, tmp_path, option):
    run = pytest_run(repo_root, "--variant", "tiny-vit", option, "--collect-only", "-q", f"--report-dir={tmp_path}")
    assert run.returncode == 4 and option.split("=")[0] in run.stderr, run.stdout[-2000:] + run.stderr[-2000:]


def test_the_speedup_gate_skips_batches_too_small_to_time_kernels():
    """tiny-vit's int8 ran at 1.15x its fp32 export with VNNI: its rounds time call overhead, so it is not gated."""
    from conformance import isa
    from conformance.case import Target
    from conformance.variants import get

    settings = LatencySettings("quick", 0.25)
    gate, why = settings.speedup(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO).on(Target.INT8_DYNAMIC), 2)
    assert gate is None and "GFLOP" in str(why) and "overhead" in str(why)
    feature = isa.feature("int8")
    vit = Case(get("ViT-B/32"), EncoderKind.TEXT_SPLIT, Exporter.DYNAMO).on(Target.INT8_DYNAMIC)
    gate, why = settings.speedup(vit, 1)
    assert (gate is not None) == bool(feature and feature.present()) and (why is None) == (gate is not None)
    assert settings.speedup(vit.source, 8) == (None, None)  # an fp32 export has no speed-up to gate
