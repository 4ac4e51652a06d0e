"""Deterministic inputs: images, token batches, edge-case texts, and Hypothesis strategies."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from conformance.clipcompat import clip
from conformance.encoders import EncoderKind
from conformance.variants import Variant

# CLIP's preprocessing constants: images are fed normalised, as `clip.load`'s transform leaves them.
_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(1, 3, 1, 1)

PROMPTS = (
    "a diagram", "a dog", "a photo of a cat", "a red sports car parked on a wet street at night",
    "an aerial view of a city", "two people playing chess in a park on a sunny afternoon", "a bowl of soup",
    "a handwritten note", "a close-up photograph of a bee collecting pollen from a purple flower", "snow",
)

_LONG = " ".join(["a very long caption that keeps going"] * 20)
EDGE_TEXTS: dict[str, list[str]] = {
    "empty": [""],
    "full-context": [_LONG],  # truncated to the whole context, so EOT sits in the last position
    "mixed-lengths": ["", "a", "a photo of a dog", _LONG, "an aerial view of a city at dusk"],
}


def images(variant: Variant, batch: int, seed: int = 0) -> np.ndarray:
    """Normalised [batch, 3, R, R] float32 images: smooth gradients plus noise, in CLIP's input range."""
    rng = np.random.default_rng(seed)
    r = variant.image_resolution
    ramp = np.linspace(0.0, 1.0, r, dtype=np.float32)
    base = (ramp[None, None, :, None] * ramp[None, None, None, :])
    pixels = np.clip(base * rng.uniform(0.2, 1.0, (batch, 3, 1, 1)) + rng.uniform(0, 0.3, (batch, 3, r, r)), 0, 1)
    return ((pixels.astype(np.float32) - _MEAN) / _STD).astype(np.float32)


def tokens(texts: list[str], variant: Variant) -> np.ndarray:
    """Token ids exactly as the user's `clip.tokenize` makes them (int32 on current torch), truncating."""
    return clip.tokenize(texts, context_length=variant.context_length, truncate=True).numpy()


def prompts(batch: int, offset: int = 0) -> list[str]:
    return [PROMPTS[(offset + i) % len(PROMPTS)] for i in range(batch)]


def batch_for(variant: Variant, encoder: EncoderKind, batch: int, seed: int = 0) -> np.ndarray:
    """A deterministic input batch for the encoder: images, or tokens of varied prompts."""
    if encoder == EncoderKind.IMAGE:
        return images(variant, batch, seed)
    return tokens(prompts(batch, offset=seed), variant)


def example_batch(variant: Variant, encoder: EncoderKind, batch: int) -> torch.Tensor:
    return torch.from_numpy(batch_for(variant, encoder, batch))


def gflops_per_item(variant: Variant, encoder: EncoderKind) -> float:
    """The registry's cost of one image, or of one 77-token text (both text graphs alike)."""
    return variant.image_gflops if encoder == EncoderKind.IMAGE else variant.text_gflops


def max_batch(variant: Variant, encoder: EncoderKind, budget_gflops: float = 160.0) -> int:
    """The largest batch worth running for this encoder within a compute budget (about 1 s of CPU)."""
    return max(2, int(budget_gflops // gflops_per_item(variant, encoder)))


def batch_sizes(variant: Variant, encoder: EncoderKind, wanted: tuple[int, ...] = (1, 2, 7, 16)) -> list[int]:
    """The fixed sizes to try, capped by cost; 1 and 2 are always kept, so the batch axis is always exercised."""
    cap = max_batch(variant, encoder)
    return sorted({size for size in wanted if size <= cap} | {1, 2})


def batch_size_strategy(variant: Variant, encoder: EncoderKind) -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=max_batch(variant, encoder))


def text_strategy() -> st.SearchStrategy[str]:
    """Arbitrary user text, including unicode, whitespace and long strings that need truncation."""
    return st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400)
