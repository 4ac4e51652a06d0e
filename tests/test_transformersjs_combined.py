"""transformers.js's combined graph (onnx/model*.onnx, what CLIPModel and the zero-shot pipeline load), made by its
own conversion script without --split_modalities (tests/support/transformersjs.py) from the suite's synthetic
weights: alone it is a layout of its own; beside the split graphs, as the model repositories ship both, the folder is
read through both layouts in one run, and a fault in either form fails that form only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from onnx import numpy_helper

from conformance import layouts
from conformance.checks.bundle import check_bundle_integrity
from conformance.folders import identify
from conformance.folders.together import Together
from conformance.registry import run_check
from tests.support.helpers import TINY_VIT, pytest_run

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.producer_folders import edit_file, layout_subjects

COMBINED = "transformersjs-combined"
SIBLINGS = ("_fp16", "_quantized", "_int8", "_uint8", "_q4", "_q4f16", "_bnb4")


def _repository(made: dict[str, Path], tmp_path: Path) -> Path:
    """The split graphs and the combined ones in one folder, as Xenova/clip-vit-base-patch32 holds them (what
    tests.support.transformersjs.model_repository makes, from the session's two runs of the script)."""
    folder = Path(shutil.copytree(made["transformersjs"], tmp_path / "repository"))
    for graph in sorted((made[COMBINED] / "onnx").glob("model*.onnx")):
        shutil.copyfile(graph, folder / "onnx" / graph.name)
    return folder


def test_the_combined_graph_alone_is_a_layout_of_its_own(made):
    folder = made[COMBINED]
    assert identify.detect(folder) == COMBINED
    assert layouts.get(COMBINED).forms(folder) == [None, *SIBLINGS]
    graphs, pair = layout_subjects(folder, COMBINED)
    for kind, subject in graphs.items():
        for check in ("io_contract", "parity", "dynamic_batch"):
            result = run_check(check, subject)
            assert result.passed, (kind, check, result.message)
    for check in ("logits", "zero_shot_agreement"):
        assert run_check(check, pair).passed, (check, run_check(check, pair).message)


def test_a_repository_with_both_forms_is_read_through_both_layouts_in_one_run(made, repo_root, tmp_path):
    folder = _repository(made, tmp_path)
    assert identify.detect(folder) == "transformersjs"  # the split graphs' layout, the combined one its companion
    reports = tmp_path / "reports"
    run = pytest_run(
        repo_root, "--variant=tiny-vit", "--synthetic-reference", "--latency=none", f"--report-dir={reports}",
        f"--artifacts={folder}", timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    doc = json.loads((reports / "results.json").read_text())
    found = doc["layouts"]["repository"]
    assert found["layout"] == "transformersjs" and list(found["companions"]) == [COMBINED]
    assert not [f for f, what in found["files"].items() if what.startswith("not read") and f.endswith(".onnx")]
    assert found["files"]["onnx/model_q4.onnx"].startswith("image graph as q4")
    outcomes = {(t.get("layout"), t["check"], t.get("sibling"), t.get("encoder")): t["outcome"] for t in doc["tests"]}
    for layout in ("transformersjs", COMBINED):
        for encoder in ("image", "text-full"):
            assert outcomes[(layout, "parity", None, encoder)] == "passed", (layout, encoder)
            for suffix in SIBLINGS:
                assert outcomes[(layout, "source_agreement", suffix, encoder)] == "passed", (layout, suffix)
    assert outcomes[(COMBINED, "logits", None, None)] == "passed"  # the split graphs give no logits
    assert outcomes[(COMBINED, "zero_shot_agreement", None, None)] == "passed"
    assert (
        "also read, in the same run, as layout <b>transformersjs-combined</b>" in (reports / "report.html").read_text()
    )


def test_a_collapsed_combined_sibling_fails_while_the_split_graphs_beside_it_pass(made, tmp_path):
    """Every weight scale of the combined `_quantized` graph shrunk 1000x; its split siblings are untouched."""
    folder = _repository(made, tmp_path)

    def collapse(model) -> None:
        for tensor in [t for t in model.graph.initializer if t.name.endswith("_scale")]:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 1e-3, tensor.name))

    edit_file(folder / "onnx" / "model_quantized.onnx", collapse)
    combined, _ = layout_subjects(folder, COMBINED, reference=False, sibling="_quantized")
    for kind in ("image", "text-full"):
        result = run_check("source_agreement", combined[kind])
        assert not result.passed and "cosine" in result.message, (kind, result.message)
    split, _ = layout_subjects(folder, "transformersjs", reference=False, sibling="_quantized")
    assert all(run_check("source_agreement", s).passed for s in split.values())
    from fixtures.models import Models

    models = Models(None, None, 0, "cpu", lambda _: None, synthetic_reference=True)  # type: ignore[arg-type]
    opened = models.folder(folder, "transformersjs", TINY_VIT)  # as the session opens it: both layouts' cases
    assert isinstance(opened, Together)
    ids = [c.id for c in opened.cases()[0]]
    assert len(ids) == len(set(ids)) == 2 * 2 * (1 + len(SIBLINGS))  # two forms, two towers, fp32 and 7 siblings
    broken = next(c for c in opened.cases()[0] if c.layout == COMBINED and c.sibling == "_quantized" and c.encoder)
    assert not run_check("source_agreement", models.subject(broken)).passed


def _renaming(old: str, new: str):
    def rename(model) -> None:
        for node in model.graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]
        next(o for o in model.graph.output if o.name == old).name = new

    return rename


def test_a_combined_graph_that_is_not_clips_fails_the_folder_naming_its_layout(made, tmp_path):
    """A combined graph whose image embedding is named otherwise: the split graphs fit, the combined does not."""
    folder = _repository(made, tmp_path)
    edit_file(folder / "onnx" / "model.onnx", _renaming("image_embeds", "image_features"))
    assert identify.detect(folder) == "transformersjs"
    result = check_bundle_integrity(folder)
    assert not result.passed, result.message
    assert f"{COMBINED}'s onnx/model.onnx takes" in result.message and "no output 'image_embeds'" in result.message
    assert check_bundle_integrity(_repository(made, tmp_path / "good")).passed


def test_split_graphs_that_are_not_clips_fail_the_folder_though_the_combined_one_fits(made, tmp_path):
    """The combined graph does not stand in for split graphs that are there but are not transformers.js's (a vision
    graph giving another output): the folder fails naming them, as it would without the combined graph."""
    folder = _repository(made, tmp_path)
    edit_file(folder / "onnx" / "vision_model.onnx", _renaming("image_embeds", "pooler_output"))
    result = check_bundle_integrity(folder)
    assert not result.passed, result.message
    message = result.message
    assert "has the file names of layout transformersjs" in message and "no output 'image_embeds'" in message


def test_a_companion_must_be_another_layout(tmp_path):
    assert layouts.get("transformersjs").companions == (COMBINED,)
    assert [lay.name for lay in layouts.readers(tmp_path, layouts.get("transformersjs"))] == ["transformersjs"]
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").touch()
    assert [lay.name for lay in layouts.readers(tmp_path, layouts.get("transformersjs"))] == [
        "transformersjs",
        COMBINED,
    ]


def test_a_q8_cache_of_the_combined_graph_alone_is_read_as_such(made, tmp_path):
    """What a browser's cache holds after CLIPModel loaded at the WASM default dtype: onnx/model_quantized.onnx."""
    folder = Path(shutil.copytree(made[COMBINED], tmp_path / "cache"))
    for graph in [g for g in (folder / "onnx").glob("*.onnx") if g.name != "model_quantized.onnx"]:
        graph.unlink()
    assert identify.detect(folder) == COMBINED
    graphs, _ = layout_subjects(folder, COMBINED, sibling="_quantized")
    assert sorted(graphs) == ["image", "text-full"] and all(run_check("parity", s).passed for s in graphs.values())
    result = check_bundle_integrity(folder)
    assert result.passed and result.figures["absent"] == ["onnx/model.onnx"], result.message
