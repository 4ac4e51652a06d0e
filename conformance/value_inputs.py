"""The inputs the value checks feed one graph, in one place: parity (and source_agreement), its batch-1 singles,
zero-shot and the extremes.

A graph whose outputs must be computed ahead of its checks, elsewhere, answers exactly these: RKNN's simulator
(which runs only in the process that built the graph, compile/rknn.py) and an emulated CPU (a qemu-user worker,
conformance/emulation/). The checks themselves build their inputs through the same functions, so the two sets
cannot drift apart.
"""

from __future__ import annotations

import hashlib

import numpy as np

from conformance import inputs
from conformance.encoders import EncoderKind
from conformance.inputs import PARITY_ITEMS, SINGLES, TEXTS, parity_inputs
from conformance.variants import Variant

# Another tool's text embeddings also take the edge texts that tell the first EOT from others (two EOTs, exactly
# 76 and 77 tokens, over-long, empty): no projection round-trip checks their pooling.
LAYOUT_EDGE_CASES = ("eot-in-text", "76-tokens", "77-tokens", "over-context", "empty")


def compared_inputs(variant: Variant, encoder: EncoderKind, batch: int, foreign: bool = False) -> list[np.ndarray]:
    """Parity's inputs for a graph (also source_agreement's); `foreign`: another tool's graph (a layout)."""
    arrays = parity_inputs(variant, encoder, batch)
    if foreign and encoder != EncoderKind.IMAGE:
        arrays += [inputs.tokens(inputs.EDGE_TEXTS[case], variant) for case in LAYOUT_EDGE_CASES]
    return arrays


def singles(variant: Variant, encoder: EncoderKind, count: int = SINGLES) -> list[np.ndarray]:
    """Items 0 .. count-1, each as a batch of one: the batch checks' reference, which parity compares with torch."""
    return [inputs.batch_for(variant, encoder, 1, offset=item) for item in range(count)]


def zero_shot_images(variant: Variant) -> np.ndarray:
    return inputs.images(variant, min(4, inputs.max_batch(variant, EncoderKind.IMAGE)), offset=PARITY_ITEMS)


def zero_shot_tokens(variant: Variant, n_texts: int = TEXTS) -> np.ndarray:
    return inputs.tokens(inputs.prompts(n_texts, offset=PARITY_ITEMS), variant)


def value_inputs(variant: Variant, encoder: EncoderKind, batch: int, foreign: bool = False) -> list[np.ndarray]:
    """Every input parity, its singles, source_agreement, zero-shot and the extremes feed this graph, each once."""
    arrays = compared_inputs(variant, encoder, batch, foreign) + singles(variant, encoder)
    arrays.append(zero_shot_images(variant) if encoder == EncoderKind.IMAGE else zero_shot_tokens(variant))
    arrays.append(inputs.extreme_inputs(variant, encoder))
    return list({input_key(a): a for a in arrays}.values())


def input_key(array: np.ndarray) -> str:
    """An input's identity (dtype, shape and bytes): how recorded outputs are looked up."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:24]
