"""How a layout's graph takes the suite's canonical inputs and gives one embedding: its text rules and feeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.encoders import CLIP_MEAN, CLIP_STD, EncoderKind

EOT_TOKEN = 49407  # <|endoftext|>, the largest id of CLIP's vocabulary
PIXELS = ("float-nchw", "uint8-nhwc")  # what an image graph takes: normalised floats, or the image's own bytes
HOST_READS = ("name", "first", "only")  # how a host picks the embedding among a graph's outputs
ANY_OUTPUT = "*"  # with host_reads "only": whatever the one output is named


@dataclass(frozen=True)
class TextRules:
    dtype: str  # the token ids' dtype the layout's text graph takes
    pad_token: int  # what fills the context after the first EOT (clip.tokenize: 0; HF's openai config: 49407)
    mask: str  # how the attention mask is built, or "none" (no mask input)
    pooling: str  # which position the text graph pools: the argmax of the ids, or the first EOT
    context: int | None = None  # the host's sequence length, where it feeds fewer than CLIP's 77 (Rockchip's zoo: 20)


@dataclass(frozen=True)
class GraphBinding:
    """One embedding a layout's graph gives: which file, which output, and how the suite's canonical inputs
    (float32 images [N, 3, R, R]; `clip.tokenize` ids, 0-padded) are fed to it."""

    layout: str
    encoder: EncoderKind
    file: str
    output: str
    normalized: bool  # the output is L2-normalised (the reference is normalised the same way)
    inputs: dict[str, str]  # role (pixels, tokens, mask) -> input name
    text: TextRules
    batch: int | None  # a batch the producer fixes (None: a symbolic batch axis)
    # the host pads a batch to its longest text (the contract's sequence axis is "symbolic": transformers'
    # tokenizers), so the ids are fed that wide, as they will be; a batch holding a full-context text is fed at 77
    to_longest: bool = False
    projected: bool = True  # false: the pooled token before the projection (Optimum's clip_vision_model export)
    # "uint8-nhwc": the resized, cropped image's bytes, [N, R, R, 3], normalised inside the graph (immich's
    # fuse_visual_input); the reference normalises the same bytes as clip's preprocess does
    pixels: str = "float-nchw"
    # how the host picks the embedding among the graph's outputs: by its name ("name"), as the first output whatever
    # follows ("first": fastembed runs with no output names and takes [0]), or as the only one ("only":
    # clip-as-service unpacks `(embedding,) = session.run(None, ...)`, so a second output breaks it); with "only",
    # `output` may be "*", any name (the folder's graph names it: `folders.layout` reads it)
    host_reads: str = "name"

    @property
    def input_name(self) -> str:
        return self.inputs["pixels" if self.encoder == EncoderKind.IMAGE else "tokens"]

    def fitted(self, array: np.ndarray) -> np.ndarray:
        """The suite's canonical inputs as this graph can take them, so that the reference sees what the graph sees.
        Images fed as bytes: each pixel on the byte grid (clip's preprocess gives k/255, normalised; other values
        are rounded to the nearest byte and clipped to 0..255). `clip.tokenize` ids: as they fit the host's sequence
        length, still `tokens`' width (0-padded): a text longer than the context ends in the EOT at its last
        position, as a tokenizer truncates (clip's model on those ids equals it on the shorter context: its mask
        is causal)."""
        if self.encoder != EncoderKind.IMAGE:
            return self._fitted_ids(array)
        if self.pixels == "float-nchw":
            return array
        return ((_bytes(array).astype(np.float32) / 255 - _MEAN) / _STD).astype(np.float32)

    def _fitted_ids(self, tokens: np.ndarray) -> np.ndarray:
        context = self.text.context
        if context is None or context >= tokens.shape[1]:
            return tokens
        fitted = np.zeros_like(tokens)
        fitted[:, :context] = tokens[:, :context]
        cut = (tokens[:, context:] != 0).any(axis=1)
        fitted[cut, context - 1] = EOT_TOKEN
        return fitted

    def host_tokens(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`clip.tokenize` ids as this layout's host feeds them: the same ids (a text holding `<|endoftext|>` keeps
        what follows it, as a tokenizer does), the layout's padding token where clip pads with 0, and the
        attention mask a tokenizer builds (1 through the last real token). A graph that pools where the mask
        ends, not at the first EOT, then differs from the reference on such texts."""
        positions = np.arange(tokens.shape[1])[None, :]
        nonzero = tokens != 0
        last = np.where(nonzero.any(axis=1), tokens.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1), 0)
        mask = (positions <= last[:, None]).astype(np.int64)
        return np.where(mask == 1, tokens, self.text.pad_token).astype(tokens.dtype), mask

    def feeds(self, array: np.ndarray, resolution: int) -> dict[str, np.ndarray]:
        """Every input the graph takes, by name: `array` on this embedding's input, and for a graph that holds
        both towers, one neutral item of the other (a black image, an empty text), whose outputs are ignored."""
        if self.encoder == EncoderKind.IMAGE:
            pixels = _bytes(array).transpose(0, 2, 3, 1) if self.pixels == "uint8-nhwc" else array
            tokens = np.array([[EOT_TOKEN - 1, EOT_TOKEN] + [0] * 75], dtype=np.int64)
        else:
            pixels, tokens = np.zeros((1, 3, resolution, resolution), np.float32), array
        host, mask = self.host_tokens(self._fitted_ids(tokens))
        if self.text.context is not None:  # the host feeds its own sequence length
            host, mask = host[:, : self.text.context], mask[:, : self.text.context]
        if self.to_longest:  # the host's padding="longest": as wide as the batch's longest text (the mask's end)
            width = int(mask.sum(axis=1).max()) if mask.size else host.shape[1]
            host, mask = host[:, : max(width, 1)], mask[:, : max(width, 1)]
        by_role = {"pixels": pixels, "tokens": host, "mask": mask}
        return {name: by_role[role] for role, name in self.inputs.items()}


def dtype_kind(dtype: str) -> str:
    """float or integer: what a host feeds (pixels, ids); the dtype itself for anything else (bool, string)."""
    return "float" if "float" in dtype else "integer" if dtype.startswith(("int", "uint")) else dtype


def to_longest(contract: dict[str, Any], tokens: str | None) -> bool:
    """Whether the graph's ids input has a symbolic sequence axis: its host then pads a batch to its longest text."""
    declared = contract.get("inputs", {})
    spec: list[Any] = (declared.get(tokens) or declared.get(f"{tokens}?") or []) if tokens else []
    return len(spec) > 2 and spec[2] == "symbolic"


_MEAN = np.array(CLIP_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.array(CLIP_STD, dtype=np.float32).reshape(1, 3, 1, 1)


def _bytes(images: np.ndarray) -> np.ndarray:
    """Normalised float images [N, 3, R, R] back to the bytes they were made from (nearest, clipped)."""
    return np.clip(np.rint((images * _STD + _MEAN) * 255), 0, 255).astype(np.uint8)
