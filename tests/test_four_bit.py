"""Weight-only 4-bit siblings, as transformers.js's quantize.py writes them with onnxruntime's own quantisers:
`_q4` and `_q4f16` (MatMulNBits, int4 in blocks of 32) and `_bnb4` (MatMulBnb4, NF4 in blocks of 64). Each is
judged at its own precision's budget; a broken scale fails, a graph of another precision under a 4-bit name fails
realised_precision, and int8_saturation says why it does not apply."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from onnx import numpy_helper

from conformance.registry import run_check

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.producer_folders import copy_folder, edit_file, layout_subjects

FOUR_BIT = ("_q4", "_q4f16", "_bnb4")
SCALES = {"MatMulNBits": 2, "MatMulBnb4": 2}  # the input index of each op's per-block scales (absmax for Bnb4)


def _scale_one_matmul(factor: float):
    """Multiply the block scales of the first 4-bit MatMul by `factor`: one layer's weights off by that much."""

    def edit(model) -> None:
        node = next(n for n in model.graph.node if n.op_type in SCALES)
        name = node.input[SCALES[node.op_type]]
        tensor = next(t for t in model.graph.initializer if t.name == name)
        values = numpy_helper.to_array(tensor)
        tensor.CopyFrom(numpy_helper.from_array((values * factor).astype(values.dtype), name))

    return edit


@pytest.mark.parametrize("sibling", FOUR_BIT)
def test_a_4bit_sibling_with_a_broken_scale_fails_and_the_unbroken_one_passes(made, tmp_path, sibling):
    folder = copy_folder(made, "transformersjs", tmp_path)
    good, _ = layout_subjects(folder, "transformersjs", sibling=sibling)
    for check in ("parity", "source_agreement", "realised_precision"):
        assert run_check(check, good["image"]).passed, (check, run_check(check, good["image"]).message)
    edit_file(folder / "onnx" / f"vision_model{sibling}.onnx", _scale_one_matmul(8.0))
    broken, _ = layout_subjects(folder, "transformersjs", sibling=sibling)
    for check in ("parity", "source_agreement"):
        result = run_check(check, broken["image"])
        assert not result.passed and "cosine" in result.message, (check, result.message)
    assert run_check("realised_precision", broken["image"]).passed  # still 4-bit: only the numbers tell


def test_int8_saturation_says_why_it_does_not_apply_to_4bit_weights(made):
    graphs, _ = layout_subjects(made["transformersjs"], "transformersjs", sibling="_q4")
    result = run_check("int8_saturation", graphs["text-full"])
    assert result.status == "skipped" and "weight-only 4-bit" in result.message, result.message


@pytest.mark.parametrize(
    ("shipped", "as_sibling", "expected"),
    [
        ("vision_model_q4.onnx", "_quantized", "claims int8 but only 0% of its matrix weights are 8-bit"),
        ("vision_model.onnx", "_q4", "claims int4 (weight-only 4-bit, MatMulNBits) but only 0%"),
        ("vision_model_quantized.onnx", "_bnb4", "claims nf4 (weight-only 4-bit, MatMulBnb4) but only 0%"),
        ("vision_model_q4.onnx", "_bnb4", "claims nf4 (weight-only 4-bit, MatMulBnb4) but only 0%"),
        ("vision_model_q4.onnx", "_q4f16", "claims q4f16, whose MatMulNBits scales are FLOAT16; they are {'FLOAT'}"),
        ("vision_model_q4f16.onnx", "_q4", "claims q4, whose MatMulNBits scales are FLOAT; they are {'FLOAT16'}"),
    ],
)
def test_a_graph_of_another_precision_under_a_sibling_name_fails_its_precision(
    made, tmp_path, shipped, as_sibling, expected
):
    """A packaging slip: the q4 graph copied as `_quantized` would pass an int8 share that counted its packed uint8
    weights as 8-bit; it must not."""
    folder = copy_folder(made, "transformersjs", tmp_path)
    shutil.copyfile(folder / "onnx" / shipped, folder / "onnx" / f"vision_model{as_sibling}.onnx")
    graphs, _ = layout_subjects(folder, "transformersjs", reference=False, sibling=as_sibling)
    result = run_check("realised_precision", graphs["image"])
    assert not result.passed and expected in result.message, result.message


def test_each_4bit_sibling_realises_its_precision(made):
    for sibling in FOUR_BIT:
        graphs, _ = layout_subjects(made["transformersjs"], "transformersjs", reference=False, sibling=sibling)
        for subject in graphs.values():
            result = run_check("realised_precision", subject)
            assert result.passed and result.figures["four_bit_share"] >= 0.9, (sibling, result.figures)
            assert np.isfinite(result.figures["four_bit_weights"])


def test_the_q4_graph_shipped_as_q4f16_is_a_mislabelled_folder(made, tmp_path):
    """The fp16 pass never ran: the same bytes under two targets' names. The folder check names both."""
    from conformance.checks.bundle import check_bundle_integrity

    folder = copy_folder(made, "transformersjs", tmp_path)
    shutil.copyfile(folder / "onnx" / "text_model_q4.onnx", folder / "onnx" / "text_model_q4f16.onnx")
    result = check_bundle_integrity(folder)
    assert not result.passed, result.message
    assert "onnx/text_model_q4f16.onnx is byte-identical to onnx/text_model_q4.onnx" in result.message
    assert (
        "another target: one of them is not what its name says" in result.figures["files"]["onnx/text_model_q4f16.onnx"]
    )
