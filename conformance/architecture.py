"""The architecture a state dict holds, read the way `clip.model.build_model` reads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from conformance.variants import Variant


def _count(state_dict: Mapping[str, torch.Tensor], prefix: str, depth: int) -> int:
    return len({key.split(".")[depth] for key in state_dict if key.startswith(prefix)})


def _vision(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    if "visual.proj" in state_dict:
        conv = state_dict["visual.conv1.weight"]
        grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        return {
            "vision_width": conv.shape[0],
            "vision_patch_size": conv.shape[-1],
            "vision_layers": _count(state_dict, "visual.transformer.resblocks.", 3),
            "image_resolution": conv.shape[-1] * grid,
        }
    grid = round((state_dict["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
    return {
        "vision_width": state_dict["visual.layer1.0.conv1.weight"].shape[0],
        "vision_patch_size": None,
        "vision_layers": tuple(_count(state_dict, f"visual.layer{b}.", 2) for b in (1, 2, 3, 4)),
        "image_resolution": grid * 32,
    }


def architecture_of(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Every hyperparameter of `clip.model.CLIP`, derived from the tensors' names and shapes."""
    width = state_dict["ln_final.weight"].shape[0]
    return {
        **_vision(state_dict),
        "embed_dim": state_dict["text_projection"].shape[1],
        "context_length": state_dict["positional_embedding"].shape[0],
        "vocab_size": state_dict["token_embedding.weight"].shape[0],
        "transformer_width": width,
        "transformer_heads": width // 64,
        "transformer_layers": _count(state_dict, "transformer.resblocks.", 2),
    }


def architecture_mismatch(state_dict: Mapping[str, torch.Tensor], variant: Variant) -> dict[str, tuple[Any, Any]]:
    """hyperparameter -> (found in the file, expected by the registry), for each that differs."""
    try:
        found = architecture_of(state_dict)
    except (KeyError, IndexError, AttributeError) as exc:
        return {"layout": (f"no {exc} tensor", "a CLIP state dict")}
    expected = variant.clip_hyperparameters()
    return {key: (found[key], expected[key]) for key in expected if found[key] != expected[key]}
