"""Folders recognised by their graphs, not only their names. Another export that has a layout's file names (Optimum's
vision tower alone writes model.onnx + config.json too) is that other export's layout, and held to one it is not
(--layout) it fails bundle_integrity with one message: what the layout's
graphs take and give, what these take and give, and which layouts come closest; no check runs on its graphs as if
they were that layout's, broken. Rewrites users make (an int32 mask, a debug output) keep a folder recognised."""

from __future__ import annotations

import json

import onnx
import pytest

from conformance.checks.bundle import check_bundle_integrity
from conformance.folders import identify
from conformance.layouts import NoLayout
from tests.support.helpers import pytest_run

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.optimum import optimum_vision_folder
from tests.support.producer_folders import copy_folder, edit_file


@pytest.fixture(scope="module")
def vision_only(made, tmp_path_factory):
    root = tmp_path_factory.mktemp("optimum-vision")
    return optimum_vision_folder(made["hf-checkpoint"], root / "clip-vision", root)


def test_optimums_vision_tower_export_is_not_taken_for_its_zero_shot_export(vision_only):
    assert identify.detect(vision_only) == "optimum-vision"  # its own layout (tests/test_optimum_exports.py)
    result = check_bundle_integrity(vision_only, layout="optimum")  # naming the layout does not make the graphs its
    message = result.message
    assert not result.passed
    assert "has the file names of layout optimum (model.onnx, config.json) but not its graphs" in message, message
    assert "model.onnx takes pixel_values (float32) and gives last_hidden_state, pooler_output" in message, message
    assert (
        "no output 'logits_per_image'" in message
        and "Closest layouts by their graphs' names: optimum-vision" in message
    )
    with pytest.raises(NoLayout, match="but not its graphs"):
        identify.detect(vision_only, "optimum")


def test_a_run_on_it_fails_the_folder_and_judges_no_graph_as_a_broken_zero_shot_export(
    vision_only, repo_root, tmp_path
):
    reports = tmp_path / "reports"
    run = pytest_run(
        repo_root,
        "--variant=tiny-vit",
        "--latency=none",
        f"--artifacts={vision_only}",
        "--layout=optimum",
        f"--report-dir={reports}",
    )
    assert run.returncode == 1, run.stdout[-3000:]
    tests = json.loads((reports / "results.json").read_text())["tests"]
    assert [(t["check"], t["outcome"]) for t in tests] == [("bundle_integrity", "failed")], tests
    assert "not its graphs" in tests[0]["message"]


def _int32_mask(model) -> None:
    mask = next(i for i in model.graph.input if i.name == "attention_mask")
    mask.type.tensor_type.elem_type = onnx.TensorProto.INT32
    for node in model.graph.node:
        node.input[:] = ["attention_mask_64" if n == "attention_mask" else n for n in node.input]
    model.graph.node.insert(0, onnx.helper.make_node("Cast", ["attention_mask"], ["attention_mask_64"], to=7))


def _debug_output(model) -> None:
    model.graph.node.append(onnx.helper.make_node("Identity", ["image_embeds"], ["image_embeds_debug"]))
    model.graph.output.append(onnx.helper.make_tensor_value_info("image_embeds_debug", onnx.TensorProto.FLOAT, None))


@pytest.mark.parametrize("edit", [_int32_mask, _debug_output], ids=["int32-mask", "debug-output"])
def test_rewrites_users_make_keep_the_folder_recognised(made, tmp_path, edit):
    folder = copy_folder(made, "optimum", tmp_path)
    edit_file(folder / "model.onnx", edit)
    assert identify.detect(folder) == "optimum"  # io_contract then judges the rewrite (an extra output fails it)


def _rename_ids(model) -> None:
    next(i for i in model.graph.input if i.name == "input_ids").name = "ids"
    for node in model.graph.node:
        node.input[:] = ["ids" if n == "input_ids" else n for n in node.input]


def test_a_renamed_input_is_said_with_what_the_layout_feeds(made, tmp_path):
    folder = copy_folder(made, "optimum", tmp_path)
    edit_file(folder / "model.onnx", _rename_ids)
    with pytest.raises(NoLayout) as caught:
        identify.detect(folder)
    assert "no input 'input_ids'" in str(caught.value) and "an input 'ids' the layout does not feed" in str(
        caught.value
    )
    assert "Closest layouts by their graphs' names: optimum" in str(caught.value)  # the rest of it still fits


def _uint8_pixels(model) -> None:
    image = model.graph.input[0]
    image.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    for node in model.graph.node:
        node.input[:] = ["image_f32" if n == image.name else n for n in node.input]
    model.graph.node.insert(0, onnx.helper.make_node("Cast", [image.name], ["image_f32"], to=1))


def test_pixels_of_another_kind_are_another_export(made, tmp_path):
    """A visual graph taking uint8 pixels (immich's fuse_visual_input) is fed otherwise than float pixels."""
    folder = copy_folder(made, "immich", tmp_path)
    edit_file(folder / "visual" / "model.onnx", _uint8_pixels)
    result = check_bundle_integrity(folder)
    assert not result.passed and "input 'image' is uint8, the layout's is float32" in result.message, result.message


def test_an_empty_graph_is_an_unreadable_file_not_another_layout(made, tmp_path):
    folder = copy_folder(made, "optimum", tmp_path)
    (folder / "model.onnx").write_bytes(b"")  # zero bytes parse as an empty ModelProto
    assert identify.detect(folder) == "optimum"
    result = check_bundle_integrity(folder)
    assert not result.passed and "model.onnx: an empty ONNX graph (no inputs, no outputs; 0 bytes)" in result.message
