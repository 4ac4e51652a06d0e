"""How a layout's graph takes the suite's canonical inputs and gives one embedding: its text rules and feeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.encoders import EncoderKind

EOT_TOKEN = 49407  # <|endoftext|>, the largest id of CLIP's vocabulary


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

    @property
    def input_name(self) -> str:
        return self.inputs["pixels" if self.encoder == EncoderKind.IMAGE else "tokens"]

    def fitted(self, tokens: np.ndarray) -> np.ndarray:
        """`clip.tokenize` ids as they fit the host's sequence length, still `tokens`' width (0-padded), so that the
        reference sees what the graph sees: a text longer than the context ends in the EOT at its last position, as
        a tokenizer truncates (clip's model on those ids equals it on the shorter context: its mask is causal)."""
        context = self.text.context
        if context is None or context >= tokens.shape[1] or self.encoder == EncoderKind.IMAGE:
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
            pixels, tokens = array, np.array([[EOT_TOKEN - 1, EOT_TOKEN] + [0] * 75], dtype=np.int64)
        else:
            pixels, tokens = np.zeros((1, 3, resolution, resolution), np.float32), array
        host, mask = self.host_tokens(self.fitted(tokens))
        if self.text.context is not None:  # the host feeds its own sequence length
            host, mask = host[:, : self.text.context], mask[:, : self.text.context]
        if self.to_longest:  # the host's padding="longest": as wide as the batch's longest text (the mask's end)
            width = int(mask.sum(axis=1).max()) if mask.size else host.shape[1]
            host, mask = host[:, : max(width, 1)], mask[:, : max(width, 1)]
        by_role = {"pixels": pixels, "tokens": host, "mask": mask}
        return {name: by_role[role] for role, name in self.inputs.items()}
