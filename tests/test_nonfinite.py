"""NaN and Inf are failures in every numeric check, never "within tolerance"."""

import numpy as np
import pytest

from conformance import inputs
from conformance.checks.batch import check_dynamic_batch, check_repeatability, check_row_independence
from conformance.checks.parity import check_parity, check_zero_shot_agreement
from conformance.checks.projection import check_projection_roundtrip, check_split_matches_full
from conformance.encoders import EncoderKind
from conformance.tolerances import tolerance
from tests.support.graph_edits import poison_output
from tests.support.helpers import TINY_RN, TINY_VIT, good, synthetic

FP32_ZERO_SHOT = tolerance("zero_shot_agreement", {"precision": "fp32"})

PARITY = tolerance("parity", {"variant": "tiny-vit", "encoder": "image", "exporter": "torchscript"})
ROWS = tolerance("dynamic_batch", {"variant": "tiny-vit", "encoder": "image", "exporter": "torchscript"})
PROJ = tolerance("projection_roundtrip", {"variant": "tiny-vit", "encoder": "text-split", "exporter": "torchscript"})
SPLIT_FULL = tolerance("split_matches_full", {"variant": "tiny-vit", "encoder": "text-full", "exporter": "torchscript"})


@pytest.mark.parametrize("mode", ["nan", "inf"])
@pytest.mark.parametrize("encoder", list(EncoderKind), ids=str)
def test_non_finite_output_fails_parity_naming_count_and_rows(tiny_cache, tmp_path, encoder, mode):
    broken = poison_output(good(tiny_cache, TINY_VIT, encoder), tmp_path / "b", mode)
    result = check_parity(broken, synthetic(TINY_VIT).model, PARITY)
    assert not result.passed, result.figures
    assert "non-finite" in result.message and "rows" in result.message
    assert result.figures["nonfinite_output"] > 0


@pytest.mark.parametrize("mode", ["nan", "inf"])
def test_non_finite_output_fails_batch_and_row_checks(tiny_cache, tmp_path, mode):
    broken = poison_output(good(tiny_cache, TINY_RN, EncoderKind.IMAGE), tmp_path / "b", mode)
    assert not check_dynamic_batch(broken, [1, 2, 3], ROWS).passed
    repeat = check_repeatability(broken)
    assert not repeat.passed and "non-finite" in repeat.message and "not deterministic" not in repeat.message
    result = check_row_independence(broken, 3, ROWS)
    assert not result.passed and "non-finite" in result.message


def test_nan_split_graph_fails_roundtrip_split_vs_full_and_zero_shot(tiny_cache, tmp_path):
    model = synthetic(TINY_VIT).model
    broken = poison_output(good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT), tmp_path / "b", "nan")
    assert not check_projection_roundtrip(broken, model, inputs.prompts(3), PROJ).passed
    full = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_FULL)
    assert not check_split_matches_full(full, broken, SPLIT_FULL).passed
    image = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE)
    result = check_zero_shot_agreement(image, broken, model, FP32_ZERO_SHOT)
    assert not result.passed and "non-finite" in result.message


def test_non_finite_reference_is_a_reference_problem(tiny_cache):
    model = synthetic(TINY_VIT).model
    with __import__("torch").no_grad():
        model.visual.proj.fill_(float("nan"))
    result = check_parity(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE), model, PARITY)
    assert not result.passed
    assert "torch reference" in result.message and "non-finite" in result.message
    assert result.figures["nonfinite_reference"] > 0


def test_nan_aware_figures_never_report_nan():
    from conformance.numerics import compare

    actual = np.array([[1.0, np.nan], [2.0, 3.0]], dtype=np.float32)
    expected = np.array([[1.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    result = compare(actual, expected, PARITY, "x")
    assert result.problems and "1 non-finite" in result.problems[0] and "rows [0]" in result.problems[0]
    assert all(np.isfinite(v) for v in result.figures.values() if isinstance(v, float))
