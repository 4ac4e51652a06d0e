"""The host contract of other tools' exports (their tokenizer, preprocessing and logits), the producer's own model
as a reference, and --hf-weights: each shown passing on the real producer's files and failing when broken."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conformance.registry import run_check
from tests.support.helpers import TINY_VIT, pytest_run, synthetic

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
pytest.importorskip("open_clip", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.graph_edits import pool_last_argmax
from tests.support.producer_folders import copy_folder, edit_file, layout_subjects

LAYOUTS = ("optimum", "immich")


def test_host_preprocessing_with_imagenet_statistics_fails(made, tmp_path):
    folder = copy_folder(made, "immich", tmp_path)
    cfg = folder / "visual" / "preprocess_cfg.json"
    cfg.write_text(
        json.dumps({**json.loads(cfg.read_text()), "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    )
    _, pair = layout_subjects(folder, "immich")
    result = run_check("host_preprocessing", pair)
    assert not result.passed and "differs from clip's" in result.message


def test_host_preprocessing_with_bilinear_resizing_fails(made, tmp_path):
    folder = copy_folder(made, "optimum", tmp_path)
    cfg = folder / "preprocessor_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "resample": 2}))  # PIL's BILINEAR, not BICUBIC (3)
    _, pair = layout_subjects(folder, "optimum")
    assert not run_check("host_preprocessing", pair).passed


def test_a_tokenizer_with_a_swapped_vocabulary_entry_fails(made, tmp_path):
    folder = copy_folder(made, "optimum", tmp_path)
    doc = json.loads((folder / "tokenizer.json").read_text())
    vocab = doc["model"]["vocab"]
    vocab["a</w>"], vocab["photo</w>"] = vocab["photo</w>"], vocab["a</w>"]
    (folder / "tokenizer.json").write_text(json.dumps(doc))
    _, pair = layout_subjects(folder, "optimum")
    result = run_check("host_tokenizer", pair)
    assert not result.passed and "!= clip's" in result.message


def test_a_producer_conversion_slip_is_a_reference_problem(made, monkeypatch):
    from conformance import producers

    convert = producers.hf_state_dict

    def q_and_k_swapped(model, variant):
        state = convert(model, variant)
        for key in [k for k in state if "self_attn.q_proj" in k]:
            other = key.replace("q_proj", "k_proj")
            state[key], state[other] = state[other], state[key]
        return state

    monkeypatch.setattr(producers, "hf_state_dict", q_and_k_swapped)
    _, pair = layout_subjects(made["optimum"], "optimum")
    result = run_check("producer_reference", pair)
    assert not result.passed and "transformers" in result.message


def _pads_with(made, tmp_path, token, layout="immich", config="textual/tokenizer_config.json"):
    folder = copy_folder(made, layout, tmp_path)
    config = folder / config
    config.write_text(json.dumps({**json.loads(config.read_text()), "pad_token": token}))
    return folder


def test_padding_is_fed_where_the_host_pads_a_batch_to_its_longest_text(made, tmp_path):
    """Optimum's host pads a batch to its longest text: the shorter texts carry the folder's padding, here a pad
    token the tokenizer adds past CLIP's vocabulary (id 49408), which the graph cannot embed."""
    folder = _pads_with(made, tmp_path, "<|pad|>", "optimum", "tokenizer_config.json")
    _, pair = layout_subjects(folder, "optimum")
    result = run_check("host_tokenizer", pair)
    assert not result.passed and "cannot take the folder's padding" in result.message, result.message


def test_a_pad_token_that_is_also_text_fails(made, tmp_path):
    """ "!" (id 0, clip.tokenize's padding, and the pad token of some CLIP tokenizer configs) made the pad token:
    the tokenizer then reads a "!" in a text as padding, so the ids before the first EOT differ."""
    _, pair = layout_subjects(_pads_with(made, tmp_path, "!"), "immich")
    result = run_check("host_tokenizer", pair)
    assert not result.passed and "('ALL CAPS TEXT!!!'): ids" in result.message, result.message


def test_a_tokenizer_that_pads_otherwise_passes_where_the_graph_cannot_see_it(made, tmp_path):
    """immich's graph pools the argmax of the ids, the first EOT, whatever follows it: a server padding with the
    start token where the layout assumes 49407 gives the same embeddings, which the check shows by running the
    graph both ways."""
    _, pair = layout_subjects(_pads_with(made, tmp_path, "<|startoftext|>"), "immich")
    result = run_check("host_tokenizer", pair)
    assert result.passed, result.message
    assert "with [49406], the layout with 49407: fed so, the text graph's embeddings agree" in result.message
    assert result.figures["texts_padded_otherwise"] > 30 and result.figures["max_abs_err"] < 1e-5


def test_a_tokenizer_that_pads_otherwise_fails_where_the_graph_reads_the_padding(made, tmp_path):
    """The same server, with a graph that pools the last maximum of the ids: fed the layout's padding (49407, the
    EOT's id) it pools the last padding position, fed the server's it pools the EOT. The padding now matters."""
    folder = _pads_with(made, tmp_path, "<|startoftext|>")
    edit_file(folder / "textual" / "model.onnx", pool_last_argmax)
    _, pair = layout_subjects(folder, "immich")
    result = run_check("host_tokenizer", pair)
    assert not result.passed and "and that moves the embeddings" in result.message, result.message


def test_an_hf_checkpoint_is_a_reference_bitwise_equal_to_clips(made):
    from conformance.producers import load_hf_checkpoint

    loaded = load_hf_checkpoint(made["hf-checkpoint"], TINY_VIT)
    assert loaded.provenance.kind == "hf-checkpoint" and loaded.provenance.sha256
    ours = synthetic(TINY_VIT).model.state_dict()
    theirs = loaded.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_the_optimum_export_passes_against_its_hf_checkpoint(made, repo_root, tmp_path):
    run = pytest_run(
        repo_root, "--variant=tiny-vit", f"--hf-weights={made['hf-checkpoint']}", "--latency=none",
        f"--artifacts={made['optimum']}", f"--report-dir={tmp_path}", "-k", "parity or producer_reference",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert "reference: the Hugging Face checkpoint" in run.stdout
    doc = json.loads((tmp_path / "results.json").read_text())
    assert {t["outcome"] for t in doc["tests"] if t["check"] == "parity"} == {"passed"}


@pytest.mark.parametrize("damage", ["no weights file", "truncated", "another variant", "gelu"])
def test_a_bad_hf_checkpoint_is_one_clear_error(made, tmp_path, damage):
    from conformance.producers import load_hf_checkpoint
    from conformance.variants import get
    from conformance.weights import WeightsError

    folder = Path(shutil.copytree(made["hf-checkpoint"], tmp_path / "hf"))
    variant, expected = TINY_VIT, "is not a Hugging Face CLIP checkpoint"
    if damage == "no weights file":
        (folder / "model.safetensors").unlink()
    elif damage == "truncated":
        os.truncate(folder / "model.safetensors", 1000)
        expected = "could not be loaded as a CLIP checkpoint"
    elif damage == "gelu":  # laion-style checkpoints: another activation, another model than clip builds
        config = json.loads((folder / "config.json").read_text())
        config["text_config"]["hidden_act"] = "gelu"
        (folder / "config.json").write_text(json.dumps(config))
        expected = "uses hidden_act \\['gelu', 'quick_gelu'\\]"
    else:
        variant, expected = get("ViT-B/32"), "does not hold a ViT-B/32 model"
    with pytest.raises(WeightsError, match=expected) as raised:
        load_hf_checkpoint(folder, variant)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("layout", "file", "outcome"), [
    ("immich", "visual/preprocess_cfg.json", "failed"),  # immich's server loads it
    ("optimum", "preprocessor_config.json", "skipped"),  # optimum copies it only where the checkpoint has one
])  # fmt: skip
def test_a_missing_host_file_fails_where_the_host_needs_it(made, tmp_path, layout, file, outcome):
    folder = copy_folder(made, layout, tmp_path)
    (folder / file).unlink()
    result = run_check("host_preprocessing", layout_subjects(folder, layout)[1])
    assert result.status == outcome and file in result.message


def test_a_pipeline_that_skips_the_rgb_conversion_fails_on_a_grey_photograph(made, tmp_path):
    folder = copy_folder(made, "optimum", tmp_path)
    cfg = folder / "preprocessor_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "do_convert_rgb": False}))
    result = run_check("host_preprocessing", layout_subjects(folder, "optimum")[1])
    assert not result.passed and "camera.png" in result.message


def test_a_tokenizer_that_does_not_lower_case_fails(made, tmp_path):
    folder = copy_folder(made, "optimum", tmp_path)
    doc = json.loads((folder / "tokenizer.json").read_text())
    doc["normalizer"]["normalizers"] = [n for n in doc["normalizer"]["normalizers"] if n["type"] != "Lowercase"]
    (folder / "tokenizer.json").write_text(json.dumps(doc))
    result = run_check("host_tokenizer", layout_subjects(folder, "optimum")[1])
    assert not result.passed and "A Photo of  a DOG" in result.message


def test_optimum_logits_hold_and_a_wrong_logit_scale_fails(made, tmp_path):
    _, pair = layout_subjects(made["optimum"], "optimum")
    good = run_check("logits", pair)
    assert good.passed, good.message
    folder = copy_folder(made, "optimum", tmp_path)

    def scale_one(model) -> None:  # exp(0) = 1: logits that are plain cosines
        from onnx import numpy_helper

        tensor = next(t for t in model.graph.initializer if t.name == "logit_scale")
        tensor.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(tensor)), "logit_scale"))

    edit_file(folder / "model.onnx", scale_one)
    result = run_check("logits", layout_subjects(folder, "optimum")[1])
    assert not result.passed and "logits_per_image vs exp(logit_scale)" in result.message
    assert run_check("logits", layout_subjects(made["immich"], "immich")[1]).status == "skipped"
