"""Synthetic weights leave no parameter at a value where a wrong weight mapping would be invisible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance import inputs
from conformance.clipcompat import clip
from conformance.encoders import EncoderKind
from conformance.inputs import parity_inputs
from conformance.numerics import compare
from conformance.runtime import run_torch
from conformance.tolerances import tolerance
from conformance.variants import Variant
from tests.support.helpers import TINY_RN, TINY_VIT, synthetic

PARITY = tolerance("parity", {"variant": "tiny-vit", "encoder": "image", "exporter": "torchscript"})
TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.")
# Tensors that no export can get wrong in a way anyone observes, with the reason.
UNOBSERVABLE = {
    "visual.attnpool.k_proj.bias": "adds q.b_k to every logit of a query, and softmax is shift-invariant",
}
READ_BY = {
    EncoderKind.IMAGE: ("visual.",),
    EncoderKind.TEXT_SPLIT: TEXT_PREFIXES,
    EncoderKind.TEXT_FULL: (*TEXT_PREFIXES, "text_projection"),
}


def read_tensors(model: torch.nn.Module, encoder: EncoderKind) -> dict[str, torch.Tensor]:
    """Every parameter and buffer the encoder's graph reads (BN's batch counter is never read in eval)."""
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {
        name: t
        for name, t in tensors.items()
        if name.startswith(READ_BY[encoder]) and not name.endswith("num_batches_tracked") and name not in UNOBSERVABLE
    }


def _neutral(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """The value a dropped or defaulted tensor would take: scale 1 for norms and variances, else 0."""
    leaf = name.rsplit(".", 1)[-1]
    is_norm_scale = leaf == "running_var" or (leaf == "weight" and (".ln" in name or "ln_" in name or ".bn" in name))
    return torch.ones_like(tensor) if is_norm_scale else torch.zeros_like(tensor)


def _perturbed(tensor: torch.Tensor) -> torch.Tensor:
    """A 1% change of the tensor as a whole: noise at 1e-2 of its RMS."""
    generator = torch.Generator().manual_seed(0)
    rms = tensor.float().pow(2).mean().sqrt()
    return tensor + 1e-2 * rms * torch.randn(tensor.shape, generator=generator)


def insensitive(model: torch.nn.Module, variant: Variant, encoder: EncoderKind, change) -> list[str]:
    """The tensors whose `change` leaves the encoder's output within the fp32 parity tolerance."""
    x = np.concatenate(parity_inputs(variant, encoder, 2))
    reference = run_torch(model, encoder, x)
    found = []
    for name, tensor in read_tensors(model, encoder).items():
        saved = tensor.detach().clone()
        with torch.no_grad():
            tensor.copy_(change(name, saved))
            if compare(run_torch(model, encoder, x), reference, PARITY, name).ok:
                found.append(name)
            tensor.copy_(saved)
    return found


@pytest.mark.parametrize("encoder", list(EncoderKind), ids=str)
@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN], ids=lambda v: v.name)
def test_every_tensor_read_matters_when_perturbed_by_one_percent(variant, encoder):
    model = synthetic(variant).model
    assert read_tensors(model, encoder)
    assert insensitive(model, variant, encoder, lambda name, t: _perturbed(t)) == []


@pytest.mark.parametrize("encoder", list(EncoderKind), ids=str)
@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN], ids=lambda v: v.name)
def test_no_tensor_read_sits_at_its_neutral_value(variant, encoder):
    """A dropped bias, a defaulted LayerNorm or an identity BatchNorm would change the output."""
    model = synthetic(variant).model
    assert insensitive(model, variant, encoder, _neutral) == []


def test_clip_init_alone_hides_mapping_slips():
    """Why scheme 2 exists: under CLIP's own init, resetting biases, LayerNorms and BatchNorms to their
    defaults, or perturbing the conv weights behind each bottleneck's zero BN scale, changes nothing."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        plain = clip.model.CLIP(**TINY_RN.clip_hyperparameters()).float().eval()
    hidden = insensitive(plain, TINY_RN, EncoderKind.IMAGE, _neutral)
    assert any(name.endswith(".bn1.running_mean") for name in hidden)
    dead = insensitive(plain, TINY_RN, EncoderKind.IMAGE, lambda name, t: _perturbed(t))
    assert "visual.layer1.0.conv1.weight" in dead
    text_hidden = insensitive(plain, TINY_VIT, EncoderKind.TEXT_SPLIT, _neutral)
    assert "transformer.resblocks.0.attn.in_proj_bias" in text_hidden and "ln_final.bias" in text_hidden


def test_synthetic_weights_are_finite_and_of_realistic_scale():
    for variant in (TINY_VIT, TINY_RN):
        model = synthetic(variant).model
        for encoder in EncoderKind:
            out = run_torch(model, encoder, inputs.batch_for(variant, encoder, 2))
            assert np.isfinite(out).all() and 1e-3 < np.abs(out).max() < 1e3
