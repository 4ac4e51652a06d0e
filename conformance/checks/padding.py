"""A host tokenizer that pads otherwise than its layout assumes, judged by what it does to the embeddings.

The ids up to the first EOT are the text; what follows is padding, which CLIP's causal attention keeps from the
pooled EOT token. A folder whose tokenizer pads with another id (or masks otherwise) than its layout feeds is
therefore not wrong in itself: the text graph is run both ways, fed as the layout assumes and as the folder's own
tokenizer pads, and only a difference in its embeddings beyond the parity budget is a failure (a graph that pools
the last EOT, or reads the padding, is). Other ids before the first EOT are never this: they fail outright.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.artifact import Artifact
from conformance.numerics import Tolerance, compare
from conformance.results import error_line
from conformance.runtime import coerce_input, session


@dataclass(frozen=True)
class PaddingEffect:
    """How the text graph's embeddings moved when fed the folder's padding instead of the layout's."""

    problems: list[str]
    figures: dict[str, object]


def padding_effect(
    text: Artifact, ours: np.ndarray, theirs: np.ndarray, mask: np.ndarray | None, tol: Tolerance
) -> PaddingEffect:
    """`ours`: clip.tokenize's ids of the texts whose padding differs; `theirs` and `mask`: the folder tokenizer's
    ids and attention mask for them (77 wide; no mask: the layout's). A graph with a symbolic batch is fed them
    together, padded to the longest as its host pads a batch (the shorter ones then carry padding, whatever the
    layout's sequence axis); one fixed at a batch (immich's 1) is fed its batch at a time, at its fixed width."""
    binding = text.binding
    assert binding is not None, "a layout's text graph"
    sess = session(text)
    types = {i.name: i.type for i in sess.get_inputs()}
    step = text.case.static_batch or len(ours)

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {n: coerce_input(a, types[n], n) for n, a in feeds.items() if n in types}
        return np.asarray(sess.run([text.output_name], feeds)[0])

    layout_fed, host_fed = [], []
    try:
        for start in range(0, len(ours), step):
            rows = slice(start, start + step)
            assumed = binding.feeds(ours[rows], text.variant.image_resolution)
            width = assumed[binding.inputs["tokens"]].shape[1]  # the host's width (its context, or the longest)
            host = dict(assumed) | {binding.inputs["tokens"]: theirs[rows, :width].astype(np.int64)}
            if "mask" in binding.inputs and mask is not None:
                host[binding.inputs["mask"]] = mask[rows, :width].astype(np.int64)
            layout_fed.append(run(assumed))
            host_fed.append(run(host))
    except Exception as exc:  # noqa: BLE001 - a padding id the graph cannot take (past its vocabulary) is the finding
        return PaddingEffect([f"the text graph cannot take the folder's padding: {error_line(exc)}"], {})
    comparison = compare(
        np.concatenate(host_fed), np.concatenate(layout_fed), tol, "fed as the folder's tokenizer pads",
        reference="the layout's feed",
    )  # fmt: skip
    return PaddingEffect(comparison.problems, {"texts_padded_otherwise": len(ours), **comparison.figures})
