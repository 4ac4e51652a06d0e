"""Other tools' exports, made by those tools (Optimum, immich's open_clip procedure) from the suite's synthetic
weights: each passes the suite, and each deliberately broken graph fails the check that must catch it. The
`made` folders come from tests/conftest.py; the host contract's controls are in test_host_contract.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from conformance import layouts
from conformance.encoders import EncoderKind
from conformance.folders.layout import LayoutFolder
from conformance.registry import run_check
from conformance.subject import Subject
from tests.support.graph_edits import _const, rewire_output
from tests.support.helpers import TINY_VIT, pytest_run, synthetic

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
pytest.importorskip("open_clip", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.graph_edits import ignore_mask, pool_last_argmax
from tests.support.immich import immich_export
from tests.support.producer_folders import copy_folder, edit_file, layout_subjects

LAYOUTS = ("optimum", "transformersjs", "rknnzoo", "sophgo", "immich")
CONFIGURED = ("optimum", "transformersjs", "immich")  # the zoos' folders have no config.json
POOLED = ("optimum", "transformersjs", "rknnzoo", "immich")  # Sophgo's host gathers the EOT (test_sophgo.py)


def test_each_producers_export_passes_the_suite_and_the_report_names_its_layout(made, repo_root, tmp_path):
    reports = tmp_path / "reports"
    run = pytest_run(
        repo_root, "--variant=tiny-vit", "--synthetic-reference", "--latency=none", f"--report-dir={reports}",
        *(f"--artifacts={made[name]}" for name in LAYOUTS), timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    doc = json.loads((reports / "results.json").read_text())
    assert {v["layout"] for v in doc["layouts"].values()} == set(LAYOUTS)
    by_check = {(t["layout"], t["check"], t["target"]): t for t in doc["tests"] if t.get("layout")}
    for layout in LAYOUTS:
        for check in ("parity", "host_preprocessing", "host_tokenizer", "producer_reference", "zero_shot_agreement"):
            expected = "skipped" if layouts.get(layout).skip_reason(check) else "passed"  # the zoo: no host files
            assert by_check[(layout, check, "onnx")]["outcome"] == expected, (layout, check)
    siblings = {(t["sibling"], t["check"]): t["outcome"] for t in doc["tests"] if t.get("sibling")}
    for suffix in ("_fp16", "_quantized", "_int8", "_uint8", "_q4", "_q4f16", "_bnb4"):  # each transformers.js writes
        assert siblings[(suffix, "source_agreement")] == siblings[(suffix, "parity")] == "passed", suffix
    assert doc["layouts"]["transformersjs"]["siblings"] == sorted(["_fp16", "_quantized", "_int8", "_uint8", "_q4",
                                                                   "_q4f16", "_bnb4"])  # fmt: skip
    assert doc["layouts"]["transformersjs"]["files"]["onnx/text_model_q4.onnx"].startswith("text-full graph as q4")
    assert "fixed at batch 1" in by_check[("immich", "dynamic_batch", "onnx")]["message"]
    assert by_check[("optimum", "dynamic_batch", "onnx")]["outcome"] == "passed"
    assert "Exports made elsewhere" in (reports / "report.html").read_text()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_without_reference_weights_the_structural_checks_still_run(made, layout):
    graphs, pair = layout_subjects(made[layout], layout, reference=False)
    image = graphs["image"]
    assert run_check("parity", image).status == "skipped"
    assert "no reference weights" in run_check("zero_shot_agreement", pair).message
    for check in ("opset_validity", "io_contract", "repeatability", "finite_extremes"):
        assert run_check(check, image).passed, check
    expected = "skipped" if layout == "immich" else "passed"  # immich fixes batch 1
    assert run_check("dynamic_batch", image).status == expected


def test_a_baked_batch_fails_the_optimum_contract_and_batch_checks(made, tmp_path):
    folder = copy_folder(made, "optimum", tmp_path)

    def bake(model) -> None:
        for value in [*model.graph.input, *model.graph.output]:
            value.type.tensor_type.shape.dim[0].dim_value = 1

    edit_file(folder / "model.onnx", bake)
    graphs, _ = layout_subjects(folder, "optimum")
    assert "fixed batch dimension 1" in run_check("io_contract", graphs["image"]).message
    assert not run_check("dynamic_batch", graphs["text-full"]).passed


@pytest.mark.parametrize("layout", POOLED)
def test_pooling_the_last_eot_fails_parity(made, layout, tmp_path):
    folder = copy_folder(made, layout, tmp_path)
    path = folder / layouts.get(layout).binding(EncoderKind.TEXT_FULL).file
    edit_file(path, pool_last_argmax)
    graphs, _ = layout_subjects(folder, layout)
    assert not run_check("parity", graphs["text-full"]).passed


def test_a_dropped_text_projection_fails_contract_and_parity(tmp_path):
    """open_clip applies the text projection only when there is one: without it the graph gives the pooled width.
    (transformers' CLIPModel cannot export without it: its logits multiply the two towers' embeddings.)"""

    def drop(model) -> None:
        model.text_projection = None

    folder = immich_export(synthetic(TINY_VIT).model, TINY_VIT, tmp_path / "immich", edit=drop)
    graphs, _ = layout_subjects(folder, "immich")
    contract = run_check("io_contract", graphs["text-full"])
    assert not contract.passed and "the layout's contract is embed = 96" in contract.message
    assert not run_check("parity", graphs["text-full"]).passed


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_overflow_to_inf_fails_extremes_and_parity(made, layout, tmp_path):
    """Inf where the embedding is negative: what an fp16 overflow inside the tower leaves at its output."""
    folder = copy_folder(made, layout, tmp_path)
    binding = layouts.get(layout).binding(EncoderKind.IMAGE)

    def overflow(model) -> None:
        raw = rewire_output(model, binding.output)
        model.graph.initializer.append(_const("overflow_zero", 0.0, np.float32))
        model.graph.node.extend(
            [
                onnx.helper.make_node("Greater", [raw, "overflow_zero"], ["overflow_keep"]),
                onnx.helper.make_node("Cast", ["overflow_keep"], ["overflow_div"], to=onnx.TensorProto.FLOAT),
                onnx.helper.make_node("Div", [raw, "overflow_div"], [binding.output]),
            ]
        )

    edit_file(folder / binding.file, overflow)
    graphs, _ = layout_subjects(folder, layout)
    for check in ("finite_extremes", "parity"):
        result = run_check(check, graphs["image"])
        assert not result.passed and "non-finite" in result.message, check


def test_an_ignored_attention_mask_is_not_a_fault(made, tmp_path):
    """CLIP pads after the first EOT and its causal mask already hides the padding from the pooled token: a graph
    that never reads attention_mask computes the same embeddings and must pass."""
    folder = copy_folder(made, "optimum", tmp_path)

    edit_file(folder / "model.onnx", ignore_mask)
    graphs, pair = layout_subjects(folder, "optimum")
    for check in ("parity", "dynamic_batch", "finite_extremes"):
        assert run_check(check, graphs["text-full"]).passed, check
    assert run_check("zero_shot_agreement", pair).passed


def _external(folder: Path, name: str, location: str) -> Path:
    """The graph re-saved by onnx with its weights in an external file (as producers do past 2 GB)."""
    path = folder / name
    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, location=location, size_threshold=0)
    return path.parent / location


def test_truncated_external_data_fails_the_folder_and_validity(made, tmp_path):
    folder = copy_folder(made, "optimum", tmp_path)  # optimum writes model.onnx_data past 2 GB
    data = _external(folder, "model.onnx", "model.onnx_data")
    assert run_check("bundle_integrity", (None, None), folder).passed
    os.truncate(data, data.stat().st_size // 2)
    result = run_check("bundle_integrity", (None, None), folder)
    assert not result.passed and "is truncated" in result.message
    assert not run_check("opset_validity", layout_subjects(folder, "optimum")[0]["text-full"]).passed


def test_external_data_outside_the_folder_fails_it(made, tmp_path):
    folder = copy_folder(made, "optimum", tmp_path)
    _external(folder, "model.onnx", "model.onnx_data").rename(tmp_path / "shared.data")  # beside, not inside

    def point_outside(model) -> None:
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = "../shared.data"

    edit_file(folder / "model.onnx", point_outside)
    result = run_check("bundle_integrity", (None, None), folder)
    assert not result.passed and "outside the folder" in result.message


def test_weights_stored_in_fp16_fail_an_fp32_claim(made, tmp_path):
    """A producer that stores immich's weights in fp16, cast back to fp32 at run time (in initializers, or in
    Constant nodes as older TorchScript exports hold them), still claims fp32 and must be caught."""
    from onnx import numpy_helper

    folder = copy_folder(made, "immich", tmp_path)
    graphs, _ = layout_subjects(folder, "immich")
    assert run_check("realised_precision", graphs["image"]).passed

    def store_fp16(model) -> None:
        for tensor in list(model.graph.initializer):
            array = numpy_helper.to_array(tensor)
            if array.dtype != np.float32 or array.size < 1000:
                continue
            tensor.CopyFrom(numpy_helper.from_array(array.astype(np.float16), f"{tensor.name}_fp16"))
            name = tensor.name.removesuffix("_fp16")
            model.graph.node.insert(0, onnx.helper.make_node("Cast", [tensor.name], [name], to=onnx.TensorProto.FLOAT))
        for node in [n for n in model.graph.node if n.op_type == "Constant"]:
            value = next(a for a in node.attribute if a.name == "value")
            array = numpy_helper.to_array(value.t)
            if array.dtype != np.float32 or array.size < 1000:
                continue
            value.t.CopyFrom(numpy_helper.from_array(array.astype(np.float16), value.t.name))
            half = f"{node.output[0]}_fp16"
            cast = onnx.helper.make_node("Cast", [half], [node.output[0]], to=onnx.TensorProto.FLOAT)
            node.output[0] = half
            model.graph.node.insert(list(model.graph.node).index(node) + 1, cast)

    edit_file(folder / "visual" / "model.onnx", store_fp16)
    result = run_check("realised_precision", layout_subjects(folder, "immich")[0]["image"])
    assert not result.passed and "claims fp32 but stores" in result.message


def test_an_immich_style_export_with_a_dynamic_batch_gets_the_batch_checks(tmp_path):
    folder = immich_export(synthetic(TINY_VIT).model, TINY_VIT, tmp_path / "immich", dynamic=True)
    graphs, _ = layout_subjects(folder, "immich")
    for kind in ("image", "text-full"):
        assert graphs[kind].case.static_batch is None
        assert run_check("io_contract", graphs[kind]).passed
        assert run_check("dynamic_batch", graphs[kind]).passed
        assert run_check("row_independence", graphs[kind]).passed


@pytest.mark.parametrize("layout", CONFIGURED)
def test_a_folder_of_another_variant_fails_the_contract_by_its_config(made, layout):
    """ViT-B/16 and ViT-B/32 have the same I/O shapes: only what the folder says of its architecture tells them
    apart without weights. Here tiny-vit's folder is checked as another ViT with its shapes."""
    from dataclasses import replace

    twin = replace(TINY_VIT, name="tiny-vit-16", vision_patch_size=16)  # the same shapes, another patch size
    found = LayoutFolder(made[layout], layouts.get(layout), twin)
    subject = Subject(found.case(EncoderKind.IMAGE), None, {EncoderKind.IMAGE: found.artifact(EncoderKind.IMAGE)})
    result = run_check("io_contract", subject)
    assert not result.passed and "patch_size = 8; tiny-vit-16 has vision_patch_size = 16" in result.message


def test_an_int32_attention_mask_does_not_fail_the_token_dtype(made, tmp_path):
    """token_dtype feeds the ids raw, in the layout's dtype: a graph taking its mask as int32 refuses no ids."""
    folder = copy_folder(made, "optimum", tmp_path)

    def int32_mask(model) -> None:
        mask = next(i for i in model.graph.input if i.name == "attention_mask")
        mask.type.tensor_type.elem_type = onnx.TensorProto.INT32
        for node in model.graph.node:
            node.input[:] = ["attention_mask_64" if n == "attention_mask" else n for n in node.input]
        cast = onnx.helper.make_node("Cast", ["attention_mask"], ["attention_mask_64"], to=onnx.TensorProto.INT64)
        model.graph.node.insert(0, cast)

    edit_file(folder / "model.onnx", int32_mask)
    graphs, _ = layout_subjects(folder, "optimum")
    assert run_check("token_dtype", graphs["text-full"]).passed
    assert run_check("parity", graphs["text-full"]).passed  # the runtime feeds the mask in the graph's dtype too
