"""A folder holding part of what its producer writes (a transformers.js cache of `_quantized` graphs alone, as its
WASM default `q8` downloads them, or one tower) is recognised and checked with what it holds: parity and zero-shot
against the weights, the batch checks, int8_saturation. A check that needs a graph the folder lacks skips, naming
it; bundle_integrity lists what is absent."""

from __future__ import annotations

import pytest
from onnx import numpy_helper

from conformance.checks.bundle import check_bundle_integrity
from conformance.folders import identify
from conformance.registry import run_check

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.producer_folders import copy_folder, edit_file, layout_subjects

FP32 = ("onnx/text_model.onnx", "onnx/vision_model.onnx")


@pytest.fixture
def q8_cache(made, tmp_path):
    """What transformers.js's browser cache holds for dtype q8: the `_quantized` graphs and the host files."""
    folder = copy_folder(made, "transformersjs", tmp_path)
    for path in (folder / "onnx").glob("*.onnx"):
        if not path.stem.endswith("_quantized"):
            path.unlink()
    return folder


def test_a_cache_of_quantized_graphs_alone_is_recognised_and_checked_with_what_it_holds(q8_cache):
    assert identify.detect(q8_cache) == "transformersjs"
    integrity = check_bundle_integrity(q8_cache)
    assert integrity.passed and sorted(integrity.figures["absent"]) == list(FP32), integrity.message
    graphs, pairs = layout_subjects(q8_cache, "transformersjs", sibling="_quantized")
    assert set(graphs) == {"image", "text-full"}
    for subject in graphs.values():
        for check in ("parity", "dynamic_batch", "row_independence", "int8_saturation", "finite_extremes"):
            assert run_check(check, subject).passed, (check, run_check(check, subject).message)
        skipped = run_check("source_agreement", subject)  # nothing to hold it to
        assert skipped.status == "skipped" and "needs onnx/" in skipped.message and "model.onnx," in skipped.message
    assert run_check("zero_shot_agreement", pairs).passed
    _, host = layout_subjects(q8_cache, "transformersjs")  # the host files serve the siblings as much as fp32 graphs
    for check in ("host_tokenizer", "host_preprocessing"):
        assert run_check(check, host).passed, (check, run_check(check, host).message)
    fp32 = run_check("zero_shot_agreement", host)
    assert fp32.status == "skipped" and "needs onnx/vision_model.onnx, onnx/text_model.onnx" in fp32.message


def test_a_cache_of_another_models_graphs_under_its_names_is_not_taken_for_clip(q8_cache):
    """Identification reads a sibling where the folder has no fp32 graph: a renamed input is another model."""

    def rename_ids(model) -> None:
        next(i for i in model.graph.input if i.name == "input_ids").name = "ids"
        for node in model.graph.node:
            node.input[:] = ["ids" if n == "input_ids" else n for n in node.input]

    edit_file(q8_cache / "onnx" / "text_model_quantized.onnx", rename_ids)
    result = check_bundle_integrity(q8_cache)
    assert not result.passed and "onnx/text_model_quantized.onnx takes ids (int64)" in result.message, result.message


def test_the_session_makes_cases_only_for_what_the_folder_holds(q8_cache):
    from conformance.folders.layout import LayoutFolder
    from conformance.layouts import get
    from tests.support.helpers import TINY_VIT

    graphs, pairs = LayoutFolder(q8_cache, get("transformersjs"), TINY_VIT).cases()
    assert {c.sibling for c in graphs} == {"_quantized"} and len(graphs) == 2
    assert [c.sibling for c in pairs] == [None, "_quantized"]  # the host checks run on the fp32 form's pair


def test_a_quantized_graph_that_collapsed_still_fails_parity_without_its_fp32_graph(q8_cache):
    """Nothing to hold it to but the weights: every weight scale shrunk 1000x fails parity at the int8 budget."""

    def collapse(model) -> None:
        for tensor in [t for t in model.graph.initializer if t.name.endswith("_scale")]:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 1e-3, tensor.name))

    edit_file(q8_cache / "onnx" / "text_model_quantized.onnx", collapse)
    graphs, _ = layout_subjects(q8_cache, "transformersjs", sibling="_quantized")
    result = run_check("parity", graphs["text-full"])
    assert not result.passed and "cosine" in result.message, result.message


def test_one_tower_is_checked_alone_and_the_pair_checks_say_which_graph_they_need(made, tmp_path):
    folder = copy_folder(made, "immich", tmp_path)
    for path in (folder / "visual").glob("*.onnx"):
        path.unlink()
    assert identify.detect(folder) == "immich"
    graphs, pair = layout_subjects(folder, "immich")
    assert set(graphs) == {"text-full"} and run_check("parity", graphs["text-full"]).passed
    for check in ("zero_shot_agreement", "host_preprocessing"):
        result = run_check(check, pair)
        assert result.status == "skipped" and "needs visual/model.onnx" in result.message, (check, result.message)
    assert run_check("host_tokenizer", pair).passed
    assert check_bundle_integrity(folder).figures["absent"] == ["visual/model.onnx"]


def test_an_image_tower_alone_skips_what_needs_the_text_tower(made, tmp_path):
    """Sophgo's text graph and its projection side file serve each other: without the text graph the side file is
    not needed, and the known answer (both towers) skips naming the graph it lacks."""
    folder = copy_folder(made, "sophgo", tmp_path)
    (folder / "clip_text_vitb32.onnx").unlink()
    (folder / "text_projection_512_512.npy").unlink()
    assert check_bundle_integrity(folder).passed
    _, pair = layout_subjects(folder, "sophgo")
    result = run_check("known_answer", pair)
    assert result.status == "skipped" and "needs clip_text_vitb32.onnx" in result.message, result.message
