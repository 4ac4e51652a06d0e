"""Deterministic inputs: images, token batches, edge-case texts, and Hypothesis strategies.

Inputs are *items*: item i is the same image (or prompt) whatever the batch it is part of, so a batch-B
output can be compared row by row with the batch-1 outputs of the same items. Every item differs from
every other in content, so a swap or a mix of two rows always changes something.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from hypothesis import strategies as st

from conformance.clipcompat import clip
from conformance.encoders import CLIP_MEAN, CLIP_STD, EncoderKind
from conformance.tokenizer import EOT, EOT_TEXT, SOT, decoded
from conformance.tolerances import limits
from conformance.variants import Variant

# CLIP's preprocessing constants: images are fed normalised, as `clip.load`'s transform leaves them.
MEAN, STD = CLIP_MEAN, CLIP_STD
_MEAN = np.array(MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.array(STD, dtype=np.float32).reshape(3, 1, 1)

PROMPTS = (
    "a diagram",
    "a dog",
    "a photo of a cat",
    "a red sports car parked on a wet street at night",
    "an aerial view of a city",
    "two people playing chess in a park on a sunny afternoon",
    "a bowl of soup",
    "a handwritten note",
    "a close-up photograph of a bee collecting pollen from a purple flower",
    "snow",
)
_STYLES = (
    "a photo",
    "a drawing",
    "a painting",
    "a blurry photo",
    "a sketch",
    "a close-up",
    "a render",
    "a cartoon",
    "a black and white photo",
    "a low resolution photo",
)
_ADJECTIVES = (
    "small",
    "large",
    "red",
    "green",
    "old",
    "shiny",
    "wooden",
    "striped",
    "broken",
    "sleeping",
    "wet",
    "golden",
    "tiny",
    "happy",
    "dusty",
    "frozen",
    "plastic",
    "glowing",
    "hairy",
    "folded",
)
_SUBJECTS = (
    "dog",
    "cat",
    "car",
    "bicycle",
    "tree",
    "house",
    "bird",
    "boat",
    "chair",
    "lamp",
    "horse",
    "cup",
    "guitar",
    "mountain",
    "bridge",
    "robot",
    "flower",
    "train",
    "book",
    "clock",
    "shoe",
    "fish",
    "airplane",
    "pizza",
    "violin",
    "tractor",
    "owl",
    "kettle",
    "castle",
    "umbrella",
)
_GENERATED = len(_STYLES) * len(_ADJECTIVES) * len(_SUBJECTS)

_LONG = " ".join(["a very long caption that keeps going"] * 20)
_WORDS = ("a", "photo", "of", "the", "dog", "on", "red", "grass")  # one token each


def _words(count: int) -> str:
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(count))


EDGE_TEXTS: dict[str, list[str]] = {
    "empty": [""],
    "full-context": [_LONG],  # truncated to the whole context, so EOT sits in the last position
    "mixed-lengths": ["", "a", "a photo of a dog", _LONG, "an aerial view of a city at dusk"],
    # A user's text containing the EOT marker: two EOT ids; the contract is that the first one wins.
    "eot-in-text": [f"a photo of a dog{EOT_TEXT} and a cat", EOT_TEXT, f"two{EOT_TEXT}{EOT_TEXT} markers"],
    # "a" is one token: SOT + 74 + EOT = 76 ids (one pad left), SOT + 75 + EOT = 77 (no pad).
    "76-tokens": [" ".join(["a"] * 74)],
    "77-tokens": [" ".join(["a"] * 75)],
    "over-context": [" ".join(["a"] * 200)],  # truncated: EOT replaces the 77th id
    # EOT at positions 17, 32, 46, 60 and 73: the middle of the context, which prompts rarely reach.
    "mid-lengths": [_words(n) for n in (16, 31, 45, 59, 72)],
    # The vocabulary's upper part (ids up to 49405): a pruned or clamped embedding table shows only here.
    "rare-tokens": [decoded(range(36000, 49406, 311)), decoded(range(20000, 36000, 333))],
}

DRAWN_BATCH_MAX = 48  # Hypothesis-drawn batch sizes (within the cost cap): compared row by row


def prompt(index: int) -> str:
    """Item `index` of the text inputs: the ten natural prompts, then distinct generated ones."""
    if index < len(PROMPTS):
        return PROMPTS[index]
    n = index - len(PROMPTS)
    style, adjective, subject = (
        n % len(_STYLES),
        (n // len(_STYLES)) % len(_ADJECTIVES),
        (n // (len(_STYLES) * len(_ADJECTIVES))) % len(_SUBJECTS),
    )
    text = f"{_STYLES[style]} of a {_ADJECTIVES[adjective]} {_SUBJECTS[subject]}"
    return text if n < _GENERATED else f"{text}, number {n // _GENERATED}"


def prompts(batch: int, offset: int = 0) -> list[str]:
    return [prompt(offset + i) for i in range(batch)]


def _image_item(resolution: int, index: int) -> np.ndarray:
    """A [3, R, R] picture in [0, 1]: a coloured gradient, a grating, a few shapes, a little noise, each
    drawn from the item's own seed, so no two items look alike."""
    rng = np.random.default_rng([20251127, index])
    y, x = np.mgrid[0:resolution, 0:resolution].astype(np.float32) / resolution
    angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 12)
    along = x * np.cos(angle) + y * np.sin(angle)
    low, high = rng.uniform(0, 1, (3, 1, 1)), rng.uniform(0, 1, (3, 1, 1))
    pixels = low + (high - low) * along[None] + 0.15 * np.sin(2 * np.pi * freq * along + rng.uniform(0, 6))[None]
    for _ in range(rng.integers(2, 5)):
        cx, cy, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
        if rng.random() < 0.5:
            mask = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
        else:
            mask = (np.abs(x - cx) < radius) & (np.abs(y - cy) < radius * rng.uniform(0.3, 1))
        pixels = np.where(mask[None], rng.uniform(0, 1, (3, 1, 1)), pixels)
    pixels = pixels + rng.normal(0, 0.03, pixels.shape)
    return np.clip(pixels, 0, 1).astype(np.float32)


@lru_cache(maxsize=128)  # the checks ask for the same items again and again (every batch size, every graph)
def _normalised_item(resolution: int, index: int) -> np.ndarray:
    item = ((_image_item(resolution, index) - _MEAN) / _STD).astype(np.float32)
    item.setflags(write=False)
    return item


def images(variant: Variant, batch: int, offset: int = 0) -> np.ndarray:
    """Items offset .. offset+batch-1, normalised as CLIP's preprocessing leaves them: [batch, 3, R, R]."""
    r = variant.image_resolution
    return np.stack([_normalised_item(r, offset + i) for i in range(batch)])


def tokens(texts: list[str], variant: Variant) -> np.ndarray:
    """Token ids exactly as the user's `clip.tokenize` makes them (int32 on current torch), truncating."""
    return clip.tokenize(texts, context_length=variant.context_length, truncate=True).numpy()


def batch_for(variant: Variant, encoder: EncoderKind, batch: int, offset: int = 0) -> np.ndarray:
    """Items offset .. offset+batch-1 for the encoder: images, or the tokens of distinct prompts."""
    if encoder == EncoderKind.IMAGE:
        return images(variant, batch, offset)
    return tokens(prompts(batch, offset), variant)


def extreme_images(variant: Variant) -> np.ndarray:
    """Valid images at the ends of the range: all black, all white, a one-pixel black-and-white checkerboard
    (the largest patch contrast) and saturated red, normalised as CLIP's preprocessing leaves them."""
    r = variant.image_resolution
    y, x = np.mgrid[0:r, 0:r]
    checker = ((x + y) % 2).astype(np.float32)
    red = np.zeros((3, r, r), np.float32)
    red[0] = 1
    pixels = [np.zeros((3, r, r), np.float32), np.ones((3, r, r), np.float32), np.stack([checker] * 3), red]
    return np.stack([((p - _MEAN) / _STD).astype(np.float32) for p in pixels])


def extreme_tokens(variant: Variant) -> np.ndarray:
    """Valid texts at the ends of the range: the whole context of one frequent token, of the vocabulary's last
    (rarest-merged) ordinary id, and of its first; then a whole context of a real caption."""
    n = variant.context_length
    rows = [[SOT, *([token] * (n - 2)), EOT] for token in (320, EOT - 2, 256)]
    return np.concatenate([np.asarray(rows, dtype=np.int32), tokens([_LONG], variant)])


def extreme_inputs(variant: Variant, encoder: EncoderKind) -> np.ndarray:
    return extreme_images(variant) if encoder == EncoderKind.IMAGE else extreme_tokens(variant)


def example_batch(variant: Variant, encoder: EncoderKind, batch: int) -> torch.Tensor:
    return torch.from_numpy(batch_for(variant, encoder, batch))


def gflops_per_item(variant: Variant, encoder: EncoderKind) -> float:
    """The registry's cost of one image, or of one 77-token text (both text graphs alike)."""
    return variant.image_gflops if encoder == EncoderKind.IMAGE else variant.text_gflops


def max_batch(variant: Variant, encoder: EncoderKind) -> int:
    """The largest batch the value checks run for this encoder: `limits.toml`'s [batch] compute cap."""
    cap = limits()
    return max(cap.batch_min, int(cap.batch_gflops // gflops_per_item(variant, encoder)))


def latency_batches(variant: Variant, encoder: EncoderKind, wanted: list[int]) -> list[int]:
    """The wanted timed batch sizes, each capped by `limits.toml`'s [latency] compute cap."""
    cap = limits()
    largest = max(cap.latency_min, int(cap.latency_gflops // gflops_per_item(variant, encoder)))
    return sorted({min(size, largest) for size in wanted})


def swept_up_to(variant: Variant, encoder: EncoderKind) -> int:
    """The top of the every-size sweep: `limits.toml`'s sweep_max, or the cost cap below it (never below 3, so an
    odd size above the traced 2 runs even on the costliest towers)."""
    return max(3, min(limits().sweep_max, max_batch(variant, encoder)))


def release_sizes(batch_max: int) -> list[int]:
    """--batch-max N: the release sizes (16, 32, 33, 64) that are at most N, and N."""
    return sorted({size for size in limits().batch_release if size <= batch_max} | {batch_max})


def batch_sizes(variant: Variant, encoder: EncoderKind, batch_max: int | None = None) -> list[int]:
    """Every size 1 .. swept_up_to, the `also` sizes the cost cap allows; with --batch-max N, past the cap, every
    size up to min(N, sweep_max) (the sweep the cap cut short) and the release sizes up to N."""
    cap = max_batch(variant, encoder)
    sizes = set(range(1, swept_up_to(variant, encoder) + 1)) | {n for n in limits().batch_also if n <= cap}
    if batch_max:
        sizes |= set(range(1, min(batch_max, limits().sweep_max) + 1)) | set(release_sizes(batch_max))
    return sorted(sizes)


def drawn_batch_range(variant: Variant, encoder: EncoderKind) -> tuple[int, int] | None:
    """The sizes Hypothesis may draw: above the sweep, within the cost cap (None where the sweep reaches it)."""
    low, high = swept_up_to(variant, encoder) + 1, min(DRAWN_BATCH_MAX, max_batch(variant, encoder))
    return (low, high) if low <= high else None


def batch_size_strategy(variant: Variant, encoder: EncoderKind) -> st.SearchStrategy[int]:
    span = drawn_batch_range(variant, encoder) or (1, 1)  # the drawn check skips before drawing from (1, 1)
    return st.integers(min_value=span[0], max_value=span[1])


def text_strategy() -> st.SearchStrategy[str]:
    """Arbitrary user text, including unicode, whitespace and long strings that need truncation."""
    return st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=400)


# Parity and zero-shot use the same items, other than the batch checks' (which start at item 0).
PARITY_ITEMS = 1000
TEXTS = 8  # the prompts of parity and zero-shot
PARITY_EDGE_CASES = ("mixed-lengths", "mid-lengths", "rare-tokens")
SINGLES = 3  # batch-1 outputs of the batch checks' first items, compared with torch too


def parity_batch(variant: Variant, encoder: EncoderKind, static_batch: int | None = None) -> int:
    """How many items parity compares with torch: 4 (within the cost cap), and never fewer than a static graph's
    batch, so every slot of a static batch is compared with torch (padding repeats an item, hiding the rest)."""
    return max(min(4, max_batch(variant, encoder)), static_batch or 0)


def parity_inputs(variant: Variant, encoder: EncoderKind, batch: int) -> list[np.ndarray]:
    """Images: `batch` items. Texts: the prompts zero-shot ranks, and three edge-text cases, each as the very
    array the zero-shot and projection checks feed, so their outputs and references are computed once."""
    if encoder == EncoderKind.IMAGE:
        return [images(variant, batch, offset=PARITY_ITEMS)]
    ranked = tokens(prompts(TEXTS, offset=PARITY_ITEMS), variant)
    return [ranked, *(tokens(EDGE_TEXTS[case], variant) for case in PARITY_EDGE_CASES)]
