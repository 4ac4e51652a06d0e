"""Optimum's other CLIP exports, made by Optimum from the suite's synthetic weights: the vision tower alone
(a clip_vision_model checkpoint, task feature-extraction: pooler_output, the class token before the projection) and
a sentence-transformers model (`--library sentence_transformers`: text_embeds and image_embeds, projected and not
normalised). Both have the zero-shot export's file names (model.onnx, config.json); their graphs say which they are,
and each is judged against its own reference: the vision tower's against clip's unprojected pooled token, the
sentence-transformers one against unnormalised embeddings. A fault that only those references see fails."""

from __future__ import annotations

import json

import pytest
import torch

from conformance.folders import identify
from conformance.registry import run_check
from tests.support.helpers import pytest_run

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
pytest.importorskip("sentence_transformers", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.optimum import optimum_st_folder, optimum_vision_folder
from tests.support.producer_folders import layout_subjects


@pytest.fixture(scope="module")
def exports(made, tmp_path_factory):
    root = tmp_path_factory.mktemp("optimum-others")
    checkpoint = made["hf-checkpoint"]
    return {
        "optimum-vision": optimum_vision_folder(checkpoint, root / "clip-vision", root / "work-vision"),
        "optimum-st": optimum_st_folder(checkpoint, root / "clip-st", root / "work-st"),
    }


def test_each_is_told_from_the_zero_shot_export_by_its_graphs(made, exports):
    for layout, folder in exports.items():
        assert identify.detect(folder) == layout
    # the zero-shot graph also gives text_embeds and image_embeds: it declares more of Optimum's names
    assert identify.detect(made["optimum"]) == "optimum"


def test_a_run_on_both_checks_each_against_its_own_reference(exports, repo_root, tmp_path):
    reports = tmp_path / "reports"
    args = [f"--artifacts={f}" for f in exports.values()]
    run = pytest_run(
        repo_root, "--variant=tiny-vit", "--latency=none", "--synthetic-reference", *args, f"--report-dir={reports}"
    )
    assert run.returncode == 0, run.stdout[-3000:]
    tests = json.loads((reports / "results.json").read_text())["tests"]
    outcome = {(t.get("layout"), t.get("encoder"), t["check"]): t["outcome"] for t in tests}
    for key in [("optimum-vision", "image", "parity"), ("optimum-st", "image", "parity")]:
        assert outcome[key] == "passed", key
    assert outcome[("optimum-st", "text-full", "parity")] == "passed"
    assert outcome[("optimum-st", None, "zero_shot_agreement")] == "passed"
    skipped = {
        t["check"]: t["message"] for t in tests if t.get("layout") == "optimum-vision" and t["outcome"] == "skipped"
    }
    assert "no text graph" in skipped["zero_shot_agreement"], skipped


def _no_post_layernorm(model) -> None:
    """The class token taken before post_layernorm: pooler_output still, the wrong one."""
    model.vision_model.post_layernorm = torch.nn.Identity()


def test_the_vision_tower_before_its_layer_norm_fails_parity(made, tmp_path):
    folder = optimum_vision_folder(made["hf-checkpoint"], tmp_path / "out", tmp_path / "work", _no_post_layernorm)
    assert identify.detect(folder) == "optimum-vision"
    graphs, _ = layout_subjects(folder, "optimum-vision")
    assert set(graphs) == {"image"}
    result = run_check("parity", graphs["image"])
    assert not result.passed and result.status != "skipped", result.message
    assert run_check("dynamic_batch", graphs["image"]).passed  # the batch checks cannot see it


def _longer_text_projection(model) -> None:
    """Text embeddings 1.5 times as long: the same rankings (zero-shot agrees), other vectors for a host that
    compares them with stored ones, as a sentence-transformers index does without normalize_embeddings."""
    with torch.no_grad():
        model.text_projection.weight.mul_(1.5)


def test_unnormalised_embeddings_of_another_length_fail_parity_not_zero_shot(made, tmp_path):
    folder = optimum_st_folder(made["hf-checkpoint"], tmp_path / "out", tmp_path / "work", _longer_text_projection)
    graphs, pair = layout_subjects(folder, "optimum-st")
    text = run_check("parity", graphs["text-full"])
    assert not text.passed and text.status != "skipped", text.message
    assert run_check("parity", graphs["image"]).passed
    assert run_check("zero_shot_agreement", pair).passed  # the rankings cannot see it: parity must


def test_optimum_refuses_a_text_tower_alone_as_the_docs_say(made, tmp_path):
    """docs/elsewhere.md: optimum-onnx 0.1.0 has no export for a clip_text_model checkpoint, so no layout is made
    for one."""
    from optimum.exporters.onnx import main_export
    from transformers import CLIPTextModel

    CLIPTextModel.from_pretrained(str(made["hf-checkpoint"])).save_pretrained(str(tmp_path / "text"))
    with pytest.raises(ValueError, match="clip_text_model model, that is a custom or unsupported architecture"):
        main_export(str(tmp_path / "text"), output=str(tmp_path / "out"), task="feature-extraction")
