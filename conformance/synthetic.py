"""Seeded synthetic weights of the exact architecture, drawn so that every parameter and buffer matters.

CLIP's own init leaves many tensors at values where a wrong weight mapping is invisible: LayerNorm scale 1
and bias 0, attention in/out biases 0, BatchNorm at identity statistics, and each ResNet bottleneck's last
BN scale at 0, which makes about 90% of the RN conv weights dead; PyTorch's default conv init then shrinks
what is left until the image barely reaches the output. An export that swaps LayerNorm
parameters, drops the q/k/v biases or uses a wrong BN would then pass parity on synthetic weights and
break on real ones. Scheme 2 draws all of those at realistic scales. Scheme 3 then stores, as OpenAI's
checkpoints do, the tensors `clip.model.convert_weights` keeps in fp16 (convolutions, linear layers, attention
and the projections) at fp16-representable values: a producer that loads them in fp16 as real checkpoints
allow (open_clip's OpenAI loader does) then builds the same model, not one 2e-3 away. Real weights have
that property, so nothing they would show is hidden. Bump SCHEME whenever the draw changes: bundles record
it, and a bundle of another scheme is refused rather than rebuilt differently.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from conformance.clipcompat import clip
from conformance.encoders import ClipModel
from conformance.variants import Variant

SCHEME = "synthetic/3"


def _normal_(tensor: torch.Tensor, mean: float, std: float) -> None:
    tensor.copy_(torch.randn_like(tensor) * std + mean)


def _uniform_(tensor: torch.Tensor, low: float, high: float) -> None:
    tensor.copy_(torch.rand_like(tensor) * (high - low) + low)


def _batch_norm_(module: nn.BatchNorm2d, last_in_block: bool) -> None:
    # The block's last BN scales the residual branch: small but non-zero, as in trained ResNets.
    _uniform_(module.weight, *((0.1, 0.4) if last_in_block else (0.6, 1.4)))
    _normal_(module.bias, 0.0, 0.1)
    assert module.running_mean is not None and module.running_var is not None, "CLIP's BN tracks statistics"
    _normal_(module.running_mean, 0.0, 0.1)
    _uniform_(module.running_var, 0.5, 2.0)


def _draw_neutral_tensors_(model: ClipModel) -> None:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            # He init keeps activations at unit scale through conv + ReLU. PyTorch's default shrinks each
            # layer's std about 2.4x, so deep in a ResNet the image barely reaches the output and its conv
            # weights stop mattering.
            _normal_(module.weight, 0.0, math.sqrt(2.0 / module.weight[0].numel()))
        elif isinstance(module, nn.LayerNorm):
            _normal_(module.weight, 1.0, 0.1)
            _normal_(module.bias, 0.0, 0.05)
        elif isinstance(module, nn.BatchNorm2d):
            _batch_norm_(module, last_in_block=".layer" in name and name.endswith("bn3"))
        elif isinstance(module, nn.MultiheadAttention):
            _normal_(module.in_proj_bias, 0.0, 0.02)
            _normal_(module.out_proj.bias, 0.0, 0.02)
    attnpool = getattr(model.visual, "attnpool", None)
    if attnpool is not None:
        # CLIP's std leaves the pooling attention's logits near 0 on synthetic features: a uniform softmax,
        # under which the query and key weights hardly matter. 4x gives logits of order 1.
        std = 4.0 * attnpool.c_proj.in_features**-0.5
        _normal_(attnpool.q_proj.weight, 0.0, std)
        _normal_(attnpool.k_proj.weight, 0.0, std)
        for linear in (attnpool.q_proj, attnpool.k_proj, attnpool.v_proj, attnpool.c_proj):
            _normal_(linear.bias, 0.0, 0.2)
    model.logit_scale.fill_(math.log(float(torch.empty(()).uniform_(50.0, 100.0))))


def build_synthetic(variant: Variant, seed: int) -> ClipModel:
    """CLIP's init, then every neutral tensor redrawn; bitwise identical across runs of the same torch."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        model = clip.model.CLIP(**variant.clip_hyperparameters())
        _draw_neutral_tensors_(model)
        clip.model.convert_weights(model)  # fp16 where OpenAI's checkpoints store fp16 (scheme 3) ...
    return model.float().eval()  # ... held, and run, in fp32
