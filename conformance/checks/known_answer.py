"""Known answers: results published by openai/CLIP itself, reproduced through the ONNX graphs, so the torch
reference cannot drift along with the export (both are rebuilt by the same torch and clip)."""

from __future__ import annotations

from importlib import resources

import numpy as np

from conformance.artifact import Artifact
from conformance.checks.parity import similarity
from conformance.checks.projection import load_projection
from conformance.clipcompat import clip
from conformance.encoders import ClipModel, project_text
from conformance.inputs import tokens
from conformance.results import CheckResult, error_line, failed, skipped, verdict
from conformance.runtime import run_onnx

CHECK = "known_answer"
# openai/CLIP's README: CLIP.png (its own figure, MIT) with the official ViT-B/32 weights and `preprocess`.
README_LABELS = ("a diagram", "a dog", "a cat")
README_PROBS = (0.9927937, 0.00421068, 0.00299572)
README_VARIANT = "ViT-B/32"
# openai's own test (tests/test_consistency.py) allows atol 0.01 + rtol 0.1; this is 10x tighter, with no
# rtol, which still leaves room for the README's figures coming from an fp16 CUDA run.
ATOL = 1e-3


def clip_png() -> np.ndarray:
    """The README's image through CLIP's own `preprocess` (bicubic resize, centre crop, normalise)."""
    from PIL import Image

    with resources.files("conformance").joinpath("data/CLIP.png").open("rb") as handle:
        image = Image.open(handle).convert("RGB")
        return clip.clip._transform(224)(image).unsqueeze(0).numpy()


def check_known_answer(image: Artifact, text_split: Artifact, model: ClipModel) -> CheckResult:
    """Zero-shot probabilities for the README's image and labels, from the ONNX graphs and `project_text`,
    equal the published ones. Needs the official weights: without them the answer would be faked, so skip."""
    variant, provenance = image.variant, image.provenance
    if variant.name != README_VARIANT:
        return skipped(CHECK, f"openai publishes known answers for {README_VARIANT} only")
    if provenance.kind != "official":
        return skipped(
            CHECK,
            f"needs the official {README_VARIANT} checkpoint (sha256 {variant.sha256}); this "
            f"run has {provenance.describe()}: pass --weights=PATH to it",
        )
    ids = tokens(list(README_LABELS), variant)
    try:
        text = project_text(run_onnx(text_split, ids), ids, load_projection(text_split))
        logits = float(model.logit_scale.detach().exp()) * similarity(run_onnx(image, clip_png()), text)
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK, f"onnx side failed: {error_line(exc)}")
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    worst = float(np.abs(probs[0] - np.array(README_PROBS)).max())
    figures = {
        "labels": list(README_LABELS),
        "probs": probs[0].tolist(),
        "published": list(README_PROBS),
        "max_abs_err": worst,
        "atol": ATOL,
    }
    problems = (
        []
        if worst <= ATOL
        else [
            f"probabilities {np.round(probs[0], 6).tolist()} differ from openai's "
            f"published {list(README_PROBS)} by {worst:.2g} (atol {ATOL})"
        ]
    )
    return verdict(CHECK, problems, figures, "openai's published probabilities reproduced")
