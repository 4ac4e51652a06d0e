"""Sophgo's sophon-demo CLIP export (its export guide's public procedure, on openai's clip) of the suite's synthetic
weights: image graph, text graph stopped after ln_final, and the projection as a side .npy that the host applies
after its argmax gather. The projection checks run here, as they do on the suite's own split text graph. The
layout's other negative controls (overflow, no weights) run with the other producers' in test_producers.py."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.checks.bundle import check_bundle_integrity
from conformance.registry import run_check
from tests.support.helpers import TINY_VIT, synthetic

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.producer_folders import SOPHGO_PROJECTION, copy_folder, edit_file, layout_subjects, sophgo_folder


def test_the_guides_export_passes_with_the_projection_checks(made):
    folder = made["sophgo"]
    assert check_bundle_integrity(folder).passed
    graphs, pair = layout_subjects(folder, "sophgo")
    text = graphs["text-split"]
    for check in ("io_contract", "parity", "token_dtype", "projection_file", "dynamic_batch", "finite_extremes"):
        result = run_check(check, text)
        assert result.passed, (check, result.message)
    for case in ("eot-in-text", "77-tokens", "over-context"):
        assert run_check("projection_roundtrip", text, case).passed, case
    assert run_check("parity", graphs["image"]).passed
    assert run_check("zero_shot_agreement", pair).passed


def test_a_transposed_projection_file_fails_without_fooling_the_graph_checks(made, tmp_path):
    """The .npy saved as text_projection.T (square for ViT-B/32, so the host's matmul still runs there)."""
    folder = copy_folder(made, "sophgo", tmp_path)
    saved = np.load(folder / SOPHGO_PROJECTION)
    square = np.resize(saved.T, saved.shape).astype(saved.dtype)  # tiny-vit's is not square: keep its shape
    np.save(folder / SOPHGO_PROJECTION, square)
    graphs, pair = layout_subjects(folder, "sophgo")
    assert run_check("parity", graphs["text-split"]).passed  # the graph itself is right
    assert not run_check("projection_file", graphs["text-split"]).passed
    assert not run_check("projection_roundtrip", graphs["text-split"], "77-tokens").passed
    assert not run_check("zero_shot_agreement", pair).passed


def test_a_missing_projection_file_fails_the_folder(made, tmp_path):
    folder = copy_folder(made, "sophgo", tmp_path)
    (folder / SOPHGO_PROJECTION).unlink()
    result = check_bundle_integrity(folder)
    assert not result.passed and SOPHGO_PROJECTION in result.message
    graphs, _ = layout_subjects(folder, "sophgo")
    assert not run_check("projection_file", graphs["text-split"]).passed


def test_a_text_graph_that_kept_the_pooling_fails_the_contract(tmp_path):
    """The guide's edit of encode_text forgotten: the graph gathers the EOT and projects, giving [N, embed] where
    the host gathers from [N, 77, width]."""
    folder = sophgo_folder(synthetic(TINY_VIT).model, TINY_VIT, tmp_path / "sophgo", cut_text=False)
    graphs, _ = layout_subjects(folder, "sophgo")
    result = run_check("io_contract", graphs["text-split"])
    assert not result.passed and "rank 2" in result.message, result.message
    assert not run_check("parity", graphs["text-split"]).passed


@pytest.mark.parametrize("batch", [8])
def test_a_baked_batch_other_than_the_bmodels_fails_the_contract(made, tmp_path, batch):
    folder = copy_folder(made, "sophgo", tmp_path)

    def bake(model) -> None:
        for value in [*model.graph.input, *model.graph.output]:
            value.type.tensor_type.shape.dim[0].dim_value = batch

    edit_file(folder / "clip_text_vitb32.onnx", bake)
    graphs, _ = layout_subjects(folder, "sophgo")
    result = run_check("io_contract", graphs["text-split"])
    assert not result.passed and f"fixed batch dimension {batch}" in result.message
