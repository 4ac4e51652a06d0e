"""The three exportable encoders, wrapped around an unmodified CLIP model, and the host-side text contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from conformance.axes import EncoderKind
from conformance.variants import Variant

# `clip.model.CLIP`. Typed Any: torch types every attribute reached through `Module.__getattr__` as
# `Tensor | Module`, so `model.encode_image(...)` would not type-check.
ClipModel = Any

# clip's `preprocess` normalisation (torchvision Normalize after ToTensor's /255): what the reference's pixels mean
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

INPUT_NAME = {EncoderKind.IMAGE: "image", EncoderKind.TEXT_SPLIT: "text", EncoderKind.TEXT_FULL: "text"}
OUTPUT_NAME = "output"


class _Wrapper(torch.nn.Module):
    def __init__(self, model: ClipModel) -> None:
        super().__init__()
        self.model: ClipModel = model
        # A new module defaults to train mode, and the TorchScript exporter restores the mode it found after
        # export: a wrapper left in train mode would flip the wrapped CLIP too, and with it the RN BatchNorm
        # layers, which then normalise by batch statistics and update their running ones.
        self.eval()


class ImageEncoder(_Wrapper):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(image)


class TextSplitEncoder(_Wrapper):
    """`encode_text` up to `ln_final`: [batch, context, width]. The seed removes the last line; we stop before it."""

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.token_embedding(text).type(m.dtype)
        x = x + m.positional_embedding.type(m.dtype)
        x = x.permute(1, 0, 2)
        x = m.transformer(x)
        x = x.permute(1, 0, 2)
        return m.ln_final(x).type(m.dtype)


class TextFullEncoder(_Wrapper):
    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(text)


class UnprojectedImageEncoder(_Wrapper):
    """A ViT's pooled token before the projection: `ln_post` of the class token (transformers' CLIPVisionModel's
    pooler_output, which Optimum's vision-tower export gives). A reference only: no layout of the suite exports it."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        visual = self.model.visual
        if not hasattr(visual, "ln_post"):
            raise ValueError("a ResNet tower has no unprojected pooled token (its attention pool projects)")
        pooled: list[torch.Tensor] = []
        hook = visual.ln_post.register_forward_hook(lambda _m, _i, out: pooled.append(out))
        try:
            visual(image.type(self.model.dtype))
        finally:
            hook.remove()
        return pooled[-1]


_WRAPPERS: dict[EncoderKind, type[_Wrapper]] = {
    EncoderKind.IMAGE: ImageEncoder,
    EncoderKind.TEXT_SPLIT: TextSplitEncoder,
    EncoderKind.TEXT_FULL: TextFullEncoder,
}


# What a layout's graph may give that no suite export does (GraphBinding.projected false): the reference's key.
UNPROJECTED = "image-unprojected"


def wrap(model: ClipModel, kind: EncoderKind | str) -> torch.nn.Module:
    return _WRAPPERS[EncoderKind(kind)](model)


def reference_module(model: ClipModel, kind: EncoderKind | str) -> torch.nn.Module:
    """The module a reference runs: an encoder's wrapper, or the unprojected image tower."""
    return UnprojectedImageEncoder(model) if kind == UNPROJECTED else wrap(model, kind)


def expected_dims(variant: Variant, encoder: EncoderKind) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Non-batch dims of the input and of the output."""
    if encoder == EncoderKind.IMAGE:
        r = variant.image_resolution
        return (3, r, r), (variant.embed_dim,)
    if encoder == EncoderKind.TEXT_SPLIT:
        return (variant.context_length,), (variant.context_length, variant.transformer_width)
    return (variant.context_length,), (variant.embed_dim,)


def projection_filename(variant: Variant) -> str:
    """The seed's `text_projection_512_512.npy`, named from the variant's real shape."""
    width, embed = variant.projection_shape
    return f"text_projection_{width}_{embed}.npy"


def text_projection(model: ClipModel) -> np.ndarray:
    return model.text_projection.detach().cpu().numpy()


def project_text(hidden: np.ndarray, tokens: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """The runtime contract for `text-split` graphs: text embeddings from the graph's hidden states.

    `hidden` is the graph output [batch, context, width], `tokens` the int32 or int64 token ids the graph
    was fed [batch, context], `projection` the saved `.npy` [width, embed]. The EOT token has the highest
    id in the vocabulary, so its position is the argmax of each row of tokens; its hidden state is
    multiplied by the projection, as `CLIP.encode_text` does in-graph.
    """
    if hidden.ndim != 3 or tokens.ndim != 2 or hidden.shape[:2] != tokens.shape:
        raise ValueError(f"hidden {hidden.shape} and tokens {tokens.shape} must be [B, T, W] and [B, T]")
    if hidden.shape[2] != projection.shape[0]:
        raise ValueError(f"hidden width {hidden.shape[2]} does not match projection {projection.shape}")
    eot = tokens.argmax(axis=-1)
    return hidden[np.arange(hidden.shape[0]), eot] @ projection
