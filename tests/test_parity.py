import numpy as np
import pytest
import torch

from conformance.case import Exporter
from conformance.checks.parity import check_parity, check_zero_shot_agreement
from conformance.encoders import EncoderKind
from conformance.tolerances import tolerance
from tests.support.helpers import TINY_RN, TINY_VIT, export_model, good, synthetic

FP32_ZERO_SHOT = tolerance("zero_shot_agreement", {"precision": "fp32"})

PARITY = tolerance("parity", {"variant": "tiny-vit", "encoder": "image", "exporter": "torchscript"})


@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN], ids=lambda v: v.name)
def test_good_exports_match_torch(tiny_cache, variant):
    model = synthetic(variant).model
    for encoder in EncoderKind:
        for exporter in Exporter:
            result = check_parity(good(tiny_cache, variant, encoder, exporter), model, PARITY)
            assert result.passed, result.message
            assert result.figures["max_abs_err"] < PARITY.atol
            assert {"max_rel_err", "min_cosine", "batch"} <= set(result.figures)


PERTURBED = [
    (TINY_VIT, EncoderKind.IMAGE, "visual.proj", (0, 0)),
    (TINY_VIT, EncoderKind.IMAGE, "visual.transformer.resblocks.0.mlp.c_fc.weight", (0, 0)),
    (TINY_VIT, EncoderKind.IMAGE, "visual.ln_pre.bias", (3,)),
    (TINY_VIT, EncoderKind.TEXT_SPLIT, "transformer.resblocks.1.attn.in_proj_weight", (5, 7)),
    (TINY_VIT, EncoderKind.TEXT_SPLIT, "transformer.resblocks.0.attn.in_proj_bias", (150,)),
    (TINY_VIT, EncoderKind.TEXT_SPLIT, "ln_final.weight", (1,)),
    (TINY_VIT, EncoderKind.TEXT_FULL, "text_projection", (3, 3)),
    # Behind a bottleneck's last BatchNorm: dead under CLIP's init (scale 0), live under synthetic/2. Not every
    # single element can matter: one in a channel that ReLU zeroes for every input never does, nor the key
    # part of an attention bias (softmax is shift-invariant). tests/test_synthetic.py proves every tensor.
    (TINY_RN, EncoderKind.IMAGE, "visual.layer1.0.conv2.weight", (0, 0, 1, 1)),
]


@pytest.mark.parametrize(
    ("variant", "encoder", "name", "index"), PERTURBED, ids=[f"{v.name}-{n}" for v, _, n, _ in PERTURBED]
)
def test_one_weight_perturbed_by_1e_2_fails_parity(tmp_path, variant, encoder, name, index):
    reference, broken = synthetic(variant).model, synthetic(variant).model
    with torch.no_grad():
        broken.get_parameter(name)[index] += 1e-2
    artifact = export_model(broken, variant, encoder, tmp_path)
    result = check_parity(artifact, reference, PARITY)
    assert not result.passed, result.figures
    assert "onnx vs torch: max abs error" in result.message


def test_zero_shot_rankings_agree_for_good_exports(tiny_cache):
    model = synthetic(TINY_VIT).model
    image, text = good(tiny_cache, TINY_VIT, "image"), good(tiny_cache, TINY_VIT, "text-split", Exporter.DYNAMO)
    result = check_zero_shot_agreement(image, text, model, FP32_ZERO_SHOT)
    assert result.passed, result.message
    assert result.figures["top1_agreement"] == 1.0


def test_zero_shot_fails_for_an_image_encoder_of_other_weights(tmp_path, tiny_cache):
    other = export_model(synthetic(TINY_VIT, seed=9).model, TINY_VIT, EncoderKind.IMAGE, tmp_path)
    text = good(tiny_cache, TINY_VIT, "text-split")
    result = check_zero_shot_agreement(other, text, synthetic(TINY_VIT).model, FP32_ZERO_SHOT)
    assert not result.passed and "onnx ranks texts" in result.message


def test_image_graph_right_only_at_the_parity_batch_size_fails(tiny_cache, tmp_path):
    """Every batch size but one is compared with the graph's own batch-1 output; batch 1 is compared with torch."""
    from tests.support.graph_edits import batch_not_in_shift

    model = synthetic(TINY_VIT).model
    batch = 4
    broken = batch_not_in_shift(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE), tmp_path / "b", keep=(batch,))
    result = check_parity(broken, model, PARITY, batch=batch)
    assert not result.passed and "onnx at batch 1 vs torch" in result.message


def test_text_full_pooling_the_wrong_token_mid_context_fails(tiny_cache, tmp_path):
    """EOT between positions 16 and 74: prompts rarely put it there, 20-word captions do."""
    from tests.support.graph_edits import shift_argmax_mid_context

    broken = shift_argmax_mid_context(good(tiny_cache, TINY_VIT, EncoderKind.TEXT_FULL), tmp_path / "b")
    assert not check_parity(broken, synthetic(TINY_VIT).model, PARITY).passed


def test_split_graph_clamping_rare_token_ids_fails(tiny_cache, tmp_path):
    """A pruned or clamped embedding table: ids above 36000 are looked up one row early."""
    from tests.support.graph_edits import shift_high_token_ids

    broken = shift_high_token_ids(good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT), tmp_path / "b")
    assert not check_parity(broken, synthetic(TINY_VIT).model, PARITY).passed


def _zero_shot(onnx_sim, torch_sim, budget):
    from conformance.checks.parity import _agreement
    from conformance.numerics import Tolerance

    return _agreement(np.asarray(onnx_sim), np.asarray(torch_sim), Tolerance(atol=budget, reason="test budget"))


def test_zero_shot_budget_allows_swaps_only_where_torch_is_within_twice_the_budget():
    torch_sim = [[0.30, 0.29, 0.10], [0.40, 0.20, 0.10]]
    swapped_close = [[0.295, 0.296, 0.10], [0.40, 0.20, 0.10]]  # moved 0.006 each: within a 0.01 budget
    result = _zero_shot(swapped_close, torch_sim, 0.01)
    assert result.passed and result.figures["decided_images"] == 1 and result.figures["top1_margins"][0] == 0.01
    over_budget = [[0.30, 0.29, 0.10], [0.40, 0.20, 0.125]]  # no rank changes, but one similarity moved 0.025
    result = _zero_shot(over_budget, torch_sim, 0.01)
    assert not result.passed and "over the budget" in result.message
    decided_flip = [[0.30, 0.29, 0.10], [0.20, 0.40, 0.10]]  # margin 0.2, over twice the budget
    result = _zero_shot(decided_flip, torch_sim, 0.05)
    assert not result.passed and "image 1: onnx ranks texts [1, 0, 2]" in result.message
    assert result.figures["decided_images"] == 1 and result.figures["top1_agreement_decided"] == 0.0


def test_a_zeroed_row_has_cosine_zero_not_one():
    from conformance.numerics import Tolerance, compare

    reference = np.full((2, 4), 0.1, dtype=np.float32)
    zeroed = reference.copy()
    zeroed[1] = 0
    result = compare(zeroed, reference, Tolerance(atol=0.5, min_cosine=0.998), "int8 vs torch")
    assert result.figures["min_cosine"] == 0.0 and not result.ok
    assert compare(np.zeros((1, 4)), np.zeros((1, 4)), Tolerance(atol=0.0), "both zero").figures["min_cosine"] == 1
