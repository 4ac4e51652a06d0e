import pytest

from conformance.tolerances import tolerance

TABLE = {
    "defaults": {"fp32": {"parity": {"atol": 3e-5, "rtol": 1e-5, "min_cosine": 0.99999}}},
    "override": [
        {
            "check": "parity",
            "match": {"variant": "RN50x64", "encoder": "image"},
            "atol": 1e-4,
            "reason": "deep RN tower, measured 4e-5",
        },
        {"check": "row_independence", "match": {"variant": "RN50x64"}, "atol": 1.0, "reason": "other check"},
    ],
}


def test_defaults_apply_without_a_matching_override():
    tol = tolerance("parity", {"variant": "ViT-B/32", "encoder": "image", "exporter": "dynamo"}, table=TABLE)
    assert (tol.atol, tol.rtol, tol.min_cosine) == (3e-5, 1e-5, 0.99999)
    assert tol.reason == "default fp32 parity"


def test_matching_override_replaces_only_its_values_and_carries_its_reason():
    tol = tolerance("parity", {"variant": "RN50x64", "encoder": "image", "exporter": "torchscript"}, table=TABLE)
    assert (tol.atol, tol.rtol) == (1e-4, 1e-5)
    assert tol.reason == "deep RN tower, measured 4e-5"
    other = tolerance("parity", {"variant": "RN50x64", "encoder": "text-split", "exporter": "torchscript"}, table=TABLE)
    assert other.atol == 3e-5


def test_shipped_file_has_every_check_the_registry_asks_for():
    """Every registered check that compares numbers has its own table, named after it (or the one it names)."""
    from conformance.registry import CHECKS

    numeric = {"parity", "dynamic_batch", "row_independence", "projection_roundtrip", "split_matches_full"}
    asked = {c.tolerance or c.name for c in CHECKS if (c.tolerance or c.name) in numeric}
    assert asked == numeric
    for check in asked:
        tol = tolerance(check, {"variant": "ViT-B/32", "encoder": "image", "exporter": "dynamo"})
        assert 0 < tol.atol < 1e-4 and tol.min_cosine > 0.9999, check


@pytest.mark.parametrize("check", ["parity", "projection_roundtrip", "split_matches_full", "zero_shot_agreement"])
def test_every_precision_has_a_budget_and_lower_precisions_get_looser_ones(check):
    context = {"variant": "ViT-B/32", "encoder": "image", "exporter": "dynamo", "target": "x"}
    fp32, fp16, int8 = (tolerance(check, {**context, "precision": p}) for p in ("fp32", "fp16", "int8"))
    assert fp32.atol < fp16.atol < int8.atol <= 0.5, check
    assert 1 >= fp32.min_cosine >= fp16.min_cosine >= int8.min_cosine, check
    assert int8.min_cosine in (-1.0, 0.996), check  # zero-shot bounds similarities only


def test_limits_load_with_their_values():
    from conformance.tolerances import limits

    caps = limits()
    assert (caps.batch_gflops, caps.batch_min, caps.latency_gflops, caps.latency_min) == (160.0, 2, 80.0, 1)
    assert caps.baseline_tolerance == 0.25 and caps.quick_exporter == "dynamo" and caps.alpha == 0.05
    assert caps.rounds["quick"].min_rounds >= 5 and caps.rounds["full"].min_rounds > caps.rounds["quick"].min_rounds


def test_unknown_precision_is_an_error():
    with pytest.raises(KeyError):
        context = {"variant": "ViT-B/32", "encoder": "image", "exporter": "dynamo", "precision": "fp8"}
        tolerance("parity", context, table=TABLE)


def test_the_scale_aware_term_follows_each_rows_rms_and_never_forgives_nan():
    """norm_rtol: an error that is small against its row's RMS passes on a large-output row and the same absolute
    error fails on a small one; a NaN fails however loose the bound."""
    import numpy as np

    from conformance.numerics import Tolerance, compare

    tol = Tolerance(atol=3e-5, rtol=0.0, min_cosine=0.99999, norm_rtol=1e-4)
    rng = np.random.default_rng(0)
    large, small = rng.normal(0, 20.0, 512), rng.normal(0, 0.01, 512)
    expected = np.stack([large, small]).astype(np.float32)
    shifted = expected.copy()
    shifted[0, 7] += 1.5e-3  # 7.5e-5 of its row's RMS (~20): within norm_rtol, 50x over atol
    result = compare(shifted, expected, tol, "rows")
    assert result.ok, result.problems
    assert 5e-5 < result.figures["max_err_over_row_scale"] < 1e-4
    shifted[1, 7] += 1.5e-3  # the same error on the small row: 0.15 of its RMS
    result = compare(shifted, expected, tol, "rows")
    assert not result.ok and "rows [1]" in result.problems[0] and "norm_rtol" in result.problems[0]
    outlier = expected.copy()
    outlier[1, 0] = 300.0  # one huge element must not widen every other element's allowance
    widened = outlier.copy()
    widened[1, 1:] += 0.02  # 2x its row's typical value: a real fault
    result = compare(widened, outlier, tol, "rows")
    assert not result.ok and "rows [1]" in result.problems[0]
    shifted = expected.copy()
    shifted[0, 3] = np.nan
    assert not compare(shifted, expected, Tolerance(atol=1.0, norm_rtol=1.0), "rows").ok
