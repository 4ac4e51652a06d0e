"""The variant registry: the single source of truth for every CLIP architecture the suite knows."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from typing import Any

ALL = "all"


class UnknownVariantError(ValueError):
    """A variant name that the registry does not hold."""


@dataclass(frozen=True)
class Variant:
    name: str
    checkpoint_file: str | None
    sha256: str | None
    embed_dim: int
    image_resolution: int
    vision_layers: int | tuple[int, int, int, int]
    vision_width: int
    vision_patch_size: int | None
    context_length: int
    vocab_size: int
    transformer_width: int
    transformer_heads: int
    transformer_layers: int
    image_params_m: float | None
    text_params_m: float | None
    image_gflops: float
    text_gflops: float
    synthetic_only: bool = False

    @property
    def is_vit(self) -> bool:
        return self.vision_patch_size is not None

    @property
    def slug(self) -> str:
        """A file- and test-ID-safe spelling of the name: `ViT-B/32` -> `ViT-B-32`."""
        return self.name.replace("/", "-").replace("@", "-")

    @property
    def projection_shape(self) -> tuple[int, int]:
        return (self.transformer_width, self.embed_dim)

    def clip_hyperparameters(self) -> dict[str, Any]:
        """Keyword arguments for `clip.model.CLIP`, which rebuild the exact architecture."""
        return {
            "embed_dim": self.embed_dim,
            "image_resolution": self.image_resolution,
            "vision_layers": self.vision_layers,
            "vision_width": self.vision_width,
            "vision_patch_size": self.vision_patch_size,
            "context_length": self.context_length,
            "vocab_size": self.vocab_size,
            "transformer_width": self.transformer_width,
            "transformer_heads": self.transformer_heads,
            "transformer_layers": self.transformer_layers,
        }


def _optional_int(text: str) -> int | None:
    return int(text) if text else None


def _vision_layers(text: str) -> int | tuple[int, int, int, int]:
    if "-" in text:
        a, b, c, d = (int(part) for part in text.split("-"))
        return (a, b, c, d)
    return int(text)


def _variant_from_row(row: dict[str, str]) -> Variant:
    return Variant(
        name=row["variant"],
        checkpoint_file=row["checkpoint_file"],
        sha256=row["sha256"],
        embed_dim=int(row["embed_dim"]),
        image_resolution=int(row["image_resolution"]),
        vision_layers=_vision_layers(row["vision_layers"]),
        vision_width=int(row["vision_width"]),
        vision_patch_size=_optional_int(row["vision_patch_size"]),
        context_length=int(row["context_length"]),
        vocab_size=int(row["vocab_size"]),
        transformer_width=int(row["transformer_width"]),
        transformer_heads=int(row["transformer_heads"]),
        transformer_layers=int(row["transformer_layers"]),
        image_params_m=float(row["image_params_M"]),
        text_params_m=float(row["text_params_M"]),
        image_gflops=float(row["image_gflops"]),
        text_gflops=float(row["text_gflops"]),
    )


def _load_official() -> tuple[Variant, ...]:
    text = resources.files("conformance").joinpath("data/variants.csv").read_text(encoding="utf-8")
    return tuple(_variant_from_row(row) for row in csv.DictReader(text.splitlines()))


# Tiny architectures for the self-tests: real CLIP code paths, exported in seconds.
# Widths are multiples of 64 because `clip.model.build_model` infers heads as width // 64. Their GFLOPs
# were counted with torch.utils.flop_counter (which gives 8.73 for ViT-B/32's image, against 8.82 published).
_TINY = (
    Variant(
        name="tiny-vit",
        checkpoint_file=None,
        sha256=None,
        embed_dim=96,
        image_resolution=32,
        vision_layers=2,
        vision_width=128,
        vision_patch_size=8,
        context_length=77,
        vocab_size=49408,
        transformer_width=64,
        transformer_heads=1,
        transformer_layers=2,
        image_params_m=None,
        text_params_m=None,
        image_gflops=0.0142,
        text_gflops=0.0152,
        synthetic_only=True,
    ),
    Variant(
        name="tiny-rn",
        checkpoint_file=None,
        sha256=None,
        embed_dim=64,
        image_resolution=64,
        vision_layers=(1, 1, 1, 1),
        vision_width=8,
        vision_patch_size=None,
        context_length=77,
        vocab_size=49408,
        transformer_width=64,
        transformer_heads=1,
        transformer_layers=1,
        image_params_m=None,
        text_params_m=None,
        image_gflops=0.0093,
        text_gflops=0.0076,
        synthetic_only=True,
    ),
)

OFFICIAL: tuple[Variant, ...] = _load_official()
REGISTRY: dict[str, Variant] = {v.name: v for v in (*OFFICIAL, *_TINY)}


def official_names() -> list[str]:
    return [v.name for v in OFFICIAL]


def get(name: str) -> Variant:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownVariantError(
            f"unknown variant {name!r}; valid names: {', '.join(official_names())} (or {ALL!r})"
        ) from None


def resolve(names: list[str]) -> list[Variant]:
    """Expand `all` and de-duplicate, keeping the order given."""
    expanded: list[str] = []
    for name in names:
        expanded.extend(official_names() if name == ALL else [name])
    return [get(name) for name in dict.fromkeys(expanded)]
