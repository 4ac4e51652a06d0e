"""transformers.js's split export and its compiled siblings, made by its own conversion script (vendored verbatim:
tests/vendor/transformers_js) from the suite's synthetic weights: the siblings are checked against the fp32 graphs
beside them without any weights, and a broken sibling fails. The layout's other negative controls (pooling, overflow,
another variant's config) run with the other producers' in test_producers.py."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conformance import layouts
from conformance.case import Target
from conformance.checks.bundle import check_bundle_integrity
from conformance.encoders import EncoderKind
from conformance.folders import identify
from conformance.folders.layout import LayoutFolder
from conformance.registry import run_check
from tests.support.graph_edits import _const, rewire_output
from tests.support.helpers import TINY_VIT, vendored_blobs
from tests.support.transformersjs import VENDOR

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.producer_folders import copy_folder, edit_file, layout_subjects

SIBLINGS = {  # suffix -> target: every sibling quantize.py writes, as the layout reads it
    "_fp16": Target.FP16,
    "_quantized": Target.INT8_DYNAMIC,
    "_int8": Target.INT8_DYNAMIC,
    "_uint8": Target.INT8_DYNAMIC,
    "_q4": Target.Q4,
    "_q4f16": Target.Q4F16,
    "_bnb4": Target.BNB4,
}


def test_the_vendored_scripts_are_the_pinned_commits_files():
    blobs = vendored_blobs(VENDOR)
    assert len(blobs) == 7 and all(recorded == found for recorded, found in blobs.values()), blobs


def test_the_script_writes_the_layout_transformers_js_loads(made):
    folder = made["transformersjs"]
    assert identify.detect(folder) == "transformersjs"
    assert layouts.get("transformersjs").forms(folder) == [None, *SIBLINGS]
    quantized = onnx.load(str(folder / "onnx" / "text_model_quantized.onnx"), load_external_data=False)
    assert "MatMulInteger" in {n.op_type for n in quantized.graph.node}  # onnxruntime's dynamic int8


@pytest.mark.parametrize("sibling", SIBLINGS)
def test_each_sibling_meets_its_budget_against_the_fp32_graph_without_weights(made, sibling):
    graphs, pair = layout_subjects(made["transformersjs"], "transformersjs", reference=False, sibling=sibling)
    for kind, subject in graphs.items():
        assert subject.case.target == SIBLINGS[sibling] and subject.source is not None
        for check in ("source_agreement", "realised_precision", "io_contract", "dynamic_batch", "finite_extremes"):
            result = run_check(check, subject)
            assert result.passed, (kind, check, result.message)
        assert run_check("parity", subject).status == "skipped"
    assert "no reference weights" in run_check("zero_shot_agreement", pair).message


def test_a_quantized_sibling_that_collapsed_fails_without_weights_and_with_them(made, tmp_path):
    """Every weight scale of the `_quantized` text graph shrunk 1000x: its quantised layers add almost nothing,
    as when a quantiser's scales are wrong. The graph still runs, with the right shapes and finite values."""
    folder = copy_folder(made, "transformersjs", tmp_path)

    def collapse(model) -> None:
        scales = [t for t in model.graph.initializer if t.name.endswith("_scale")]
        assert scales, "the quantiser's weight scales are initializers"
        for tensor in scales:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 1e-3, tensor.name))

    edit_file(folder / "onnx" / "text_model_quantized.onnx", collapse)
    blind, _ = layout_subjects(folder, "transformersjs", reference=False, sibling="_quantized")
    result = run_check("source_agreement", blind["text-full"])
    assert not result.passed and "cosine" in result.message, result.message
    assert run_check("io_contract", blind["text-full"]).passed  # nothing structural gives it away
    graphs, _ = layout_subjects(folder, "transformersjs", sibling="_quantized")
    assert not run_check("parity", graphs["text-full"]).passed


def test_an_fp16_sibling_that_overflows_fails_without_weights(made, tmp_path):
    """The `_fp16` image graph's output scaled into fp16's range and out of it, as an fp16 activation overflows:
    Inf wherever an element exceeds 65504 / 1e6."""
    folder = copy_folder(made, "transformersjs", tmp_path)

    def overflow(model) -> None:
        raw = rewire_output(model, "image_embeds")
        model.graph.initializer.append(_const("overflow_gain", 1e6, np.float32))
        model.graph.node.extend(
            [
                onnx.helper.make_node("Mul", [raw, "overflow_gain"], ["overflow_big"]),
                onnx.helper.make_node("Cast", ["overflow_big"], ["overflow_half"], to=onnx.TensorProto.FLOAT16),
                onnx.helper.make_node("Cast", ["overflow_half"], ["overflow_back"], to=onnx.TensorProto.FLOAT),
                onnx.helper.make_node("Div", ["overflow_back", "overflow_gain"], ["image_embeds"]),
            ]
        )

    edit_file(folder / "onnx" / "vision_model_fp16.onnx", overflow)
    graphs, _ = layout_subjects(folder, "transformersjs", reference=False, sibling="_fp16")
    for check in ("source_agreement", "finite_extremes"):
        result = run_check(check, graphs["image"])
        assert not result.passed and "non-finite" in result.message, (check, result.message)


def test_a_sibling_of_one_tower_only_is_checked_alone(made, tmp_path):
    folder = copy_folder(made, "transformersjs", tmp_path)
    (folder / "onnx" / "vision_model_quantized.onnx").unlink()
    graphs, pairs = LayoutFolder(folder, layouts.get("transformersjs"), TINY_VIT).cases()
    quantized = [c.id for c in graphs if c.sibling == "_quantized"]
    assert quantized == ["transformersjs-transformersjs-tiny-vit-text-full-torchscript-op18-int8-dynamic-quantized"]
    assert "_quantized" in [c.sibling for c in pairs]
    _, pair = layout_subjects(folder, "transformersjs", sibling="_quantized")
    result = run_check("zero_shot_agreement", pair)  # it needs both towers
    assert result.status == "skipped" and "needs onnx/vision_model_quantized.onnx" in result.message, result.message


def test_a_truncated_sibling_fails_the_folder(made, tmp_path):
    folder = copy_folder(made, "transformersjs", tmp_path)
    path = folder / "onnx" / "text_model_fp16.onnx"
    os.truncate(path, path.stat().st_size // 2)
    result = check_bundle_integrity(folder)
    assert not result.passed and "onnx/text_model_fp16.onnx: not a readable ONNX graph" in result.message


def test_an_fp32_graph_shipped_as_the_quantized_sibling_fails_its_precision(made, tmp_path):
    """A packaging slip: the fp32 graph copied under the `_quantized` name agrees with its source perfectly, so
    source_agreement passes; realised_precision says it is not int8."""
    import shutil

    folder = copy_folder(made, "transformersjs", tmp_path)
    shutil.copyfile(folder / "onnx" / "vision_model.onnx", folder / "onnx" / "vision_model_quantized.onnx")
    graphs, _ = layout_subjects(folder, "transformersjs", reference=False, sibling="_quantized")
    assert run_check("source_agreement", graphs["image"]).passed
    result = run_check("realised_precision", graphs["image"])
    assert not result.passed and "int8" in result.message, result.message


def test_a_text_graph_fixed_at_77_ids_fails_the_contract(made, tmp_path):
    """transformers.js pads a batch to its longest text: a graph whose sequence axis is baked at 77 refuses it."""
    folder = copy_folder(made, "transformersjs", tmp_path)

    def fix_sequence(model) -> None:
        model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 77

    edit_file(folder / "onnx" / "text_model.onnx", fix_sequence)
    graphs, _ = layout_subjects(folder, "transformersjs")
    result = run_check("io_contract", graphs["text-full"])
    assert not result.passed and "fixed 77 on axis 1; the layout's is symbolic" in result.message, result.message


def _specialise_to_77(model) -> None:
    """A Reshape of the ids to [-1, 77] before anything reads them: what a converter that folded shapes from a
    77-id example leaves behind. The input axis stays symbolic, so the contract cannot see it."""
    ids = model.graph.input[0].name
    model.graph.initializer.append(numpy_helper.from_array(np.array([-1, 77], np.int64), "context_77"))
    for node in model.graph.node:
        node.input[:] = ["ids_77" if n == ids else n for n in node.input]
    model.graph.node.insert(0, onnx.helper.make_node("Reshape", [ids, "context_77"], ["ids_77"]))


def test_a_text_graph_specialised_to_77_ids_inside_fails_on_ids_padded_to_the_longest(made, tmp_path):
    """transformers.js pads a batch to its longest text, and the suite feeds it so: a graph that works only on 77
    ids fails parity; the same graph passes on batches that hold a full-context text (fed 77 wide)."""
    folder = copy_folder(made, "transformersjs", tmp_path)
    edit_file(folder / "onnx" / "text_model.onnx", _specialise_to_77)
    graphs, _ = layout_subjects(folder, "transformersjs")
    assert run_check("io_contract", graphs["text-full"]).passed
    result = run_check("parity", graphs["text-full"])
    assert not result.passed and "77" in result.message, result.message
    binding = layouts.get("transformersjs").binding(EncoderKind.TEXT_FULL)
    full = np.full((2, 77), 7, np.int64)
    full[:, -1] = 49407
    assert binding.feeds(full, 224)["input_ids"].shape == (2, 77)


def test_siblings_the_layout_does_not_know_are_named_not_judged(made, tmp_path):
    import shutil

    folder = copy_folder(made, "transformersjs", tmp_path)
    shutil.copyfile(folder / "onnx" / "text_model_quantized.onnx", folder / "onnx" / "text_model_int4.onnx")
    result = check_bundle_integrity(folder)
    assert result.passed and result.figures["not_checked"] == ["onnx/text_model_int4.onnx"], result.message
    assert "not checked: onnx/text_model_int4.onnx" in result.message
    files = result.figures["files"]  # every file, what it was read as or why not (the report lists them)
    assert files["onnx/text_model_int4.onnx"].startswith("not read: no graph or sibling of layout transformersjs")
    assert files["onnx/text_model_uint8.onnx"].startswith("text-full graph as int8-dynamic (_uint8: quantize.py")
    assert "byte-identical to onnx/text_model_quantized.onnx" in files["onnx/text_model_int8.onnx"]
    assert "byte-identical to onnx/vision_model_quantized.onnx" in files["onnx/vision_model_uint8.onnx"]
    assert files["config.json"].startswith("the architecture it states: io_contract holds it to --variant")
    assert any(what.startswith("tokenizer (transformers)") for what in files.values()), files
