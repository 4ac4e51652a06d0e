"""Rockchip's RKNN model zoo: its CLIP example's ONNX cut (tests/vendor/rknn_model_zoo, vendored verbatim), made from
Optimum's export of the suite's synthetic weights, with the shapes the zoo's RKNN build fixes (batch 1, 20 ids) and
its host's 20-id context. The layout's other negative controls (pooling, overflow, no weights) run with the other
producers' in test_producers.py."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import layouts
from conformance.encoders import EncoderKind
from conformance.folders import identify
from conformance.registry import run_check
from tests.support.helpers import TINY_VIT, vendored_blobs

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.producer_folders import RKNN_ZOO, copy_folder, edit_file, layout_subjects

VENDOR = RKNN_ZOO.parent.parent.parent


def _fix(batch: int, ids: int, resolution: int = TINY_VIT.image_resolution):
    """What the zoo's RKNN build does to the cut (input_size_list): every input's dims fixed."""

    def fix(model) -> None:
        for value in model.graph.input:
            dims = value.type.tensor_type.shape.dim
            sizes = [batch, 3, resolution, resolution] if value.name == "pixel_values" else [batch, ids]
            for dim, size in zip(dims, sizes, strict=True):
                dim.dim_value = size
        for value in model.graph.output:
            value.type.tensor_type.shape.dim[0].dim_value = batch

    return fix


def test_the_vendored_script_is_the_pinned_commits_file():
    blobs = vendored_blobs(VENDOR)
    assert len(blobs) == 3 and all(recorded == found for recorded, found in blobs.values()), blobs


def test_the_host_context_feeds_20_ids_and_a_long_text_ends_in_its_eot():
    binding = layouts.get("rknnzoo").binding(EncoderKind.TEXT_FULL)
    from conformance import inputs

    tokens = inputs.tokens(["a photo of a dog", " ".join(["cat"] * 40)], TINY_VIT)
    feeds = binding.feeds(tokens, TINY_VIT.image_resolution)
    assert feeds["input_ids"].shape == feeds["attention_mask"].shape == (2, 20)
    assert feeds["input_ids"][1, -1] == layouts.EOT_TOKEN and feeds["attention_mask"][1].all()
    assert (feeds["input_ids"][0, 7:] == 49407).all() and not feeds["attention_mask"][0, 7:].any()
    fitted = binding.fitted(tokens)  # what the reference sees: the same ids, 0-padded to CLIP's 77
    assert fitted.shape == tokens.shape and np.array_equal(
        fitted[:, :20], np.where(feeds["attention_mask"], feeds["input_ids"], 0)
    )


def test_the_cut_fixed_as_rknn_builds_it_passes_and_skips_the_batch_checks(made, tmp_path):
    folder = copy_folder(made, "rknnzoo", tmp_path)
    edit_file(folder / "clip_text.onnx", _fix(1, 20))
    edit_file(folder / "clip_images.onnx", _fix(1, 3))  # ids unused: the image graph has one input
    graphs, pair = layout_subjects(folder, "rknnzoo")
    for kind, subject in graphs.items():
        assert subject.case.static_batch == 1
        for check in (
            "io_contract",
            "parity",
            "finite_extremes",
            "token_dtype" if kind != "image" else "repeatability",
        ):
            result = run_check(check, subject)
            assert result.passed, (kind, check, result.message)
        assert "fixed at batch 1" in run_check("dynamic_batch", subject).message
    assert run_check("zero_shot_agreement", pair).passed


@pytest.mark.parametrize(("batch", "ids", "expected"), [
    (4, 20, "fixed batch dimension 4"),  # a baked batch other than the zoo's 1
    (1, 77, "the layout's contract is 20 = 20"),  # a text graph fixed at CLIP's context: the host feeds 20
])  # fmt: skip
def test_a_cut_fixed_at_other_shapes_fails_the_contract(made, tmp_path, batch, ids, expected):
    folder = copy_folder(made, "rknnzoo", tmp_path)
    edit_file(folder / "clip_text.onnx", _fix(batch, ids))
    graphs, _ = layout_subjects(folder, "rknnzoo")
    result = run_check("io_contract", graphs["text-full"])
    assert not result.passed and expected in result.message, result.message


def test_a_cut_without_the_attention_mask_passes(made, tmp_path):
    """export_onnx.md tells users to remove attention_mask (onnx-modifier), and text/convert.py loads input_ids alone:
    the mask becomes all ones inside, which the causal mask makes harmless for first-EOT pooling."""
    import onnx

    folder = copy_folder(made, "rknnzoo", tmp_path)

    def remove_mask(model) -> None:
        mask = next(i for i in model.graph.input if i.name == "attention_mask")
        model.graph.input.remove(mask)
        ones = onnx.helper.make_tensor("mask_one", onnx.TensorProto.INT64, [1], [1])
        model.graph.node.insert(0, onnx.helper.make_node("Shape", ["input_ids"], ["mask_shape"]))
        model.graph.node.insert(
            1, onnx.helper.make_node("ConstantOfShape", ["mask_shape"], ["attention_mask"], value=ones)
        )

    edit_file(folder / "clip_text.onnx", remove_mask)
    graphs, pair = layout_subjects(folder, "rknnzoo")
    for check in ("io_contract", "parity", "token_dtype", "dynamic_batch"):
        result = run_check(check, graphs["text-full"])
        assert result.passed, (check, result.message)
    assert run_check("zero_shot_agreement", pair).passed


def test_the_zoos_cut_beside_optimums_export_is_the_zoos(made, tmp_path):
    """export_onnx.md's truncated_onnx.py writes beside wherever Optimum's model.onnx is: one folder, one layout."""
    import shutil

    folder = copy_folder(made, "rknnzoo", tmp_path)
    for name in ("model.onnx", "config.json"):
        shutil.copyfile(made["optimum"] / name, folder / name)
    assert identify.detect(folder) == "rknnzoo"
