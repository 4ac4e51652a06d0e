"""Numerical parity with PyTorch, and zero-shot ranking agreement between ONNX and torch embeddings."""

from __future__ import annotations

import numpy as np

from conformance import inputs, value_inputs
from conformance.artifact import Artifact
from conformance.checks.batch import single_outputs
from conformance.encoders import ClipModel, EncoderKind, project_text
from conformance.inputs import SINGLES, TEXTS
from conformance.numerics import Tolerance, compare, nonfinite_problem
from conformance.outputs import onnx_output, reference_output, torch_output
from conformance.results import CheckResult, error_line, failed, skipped, verdict
from conformance.value_inputs import zero_shot_images, zero_shot_tokens

CHECK = "parity"
CHECK_ZERO_SHOT = "zero_shot_agreement"


def compared_inputs(artifact: Artifact, batch: int) -> list[np.ndarray]:
    """Parity's inputs for this graph (also source_agreement's): value_inputs.compared_inputs."""
    return value_inputs.compared_inputs(artifact.variant, artifact.encoder, batch, artifact.binding is not None)


def check_parity(artifact: Artifact, model: ClipModel, tol: Tolerance, batch: int = 4) -> CheckResult:
    """The ONNX output matches the torch wrapper that was exported, on the same inputs."""
    variant = artifact.variant
    arrays = compared_inputs(artifact, batch)
    try:
        actual = np.concatenate([onnx_output(artifact, x) for x in arrays])
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK, f"onnxruntime failed: {error_line(exc)}")
    expected = np.concatenate([reference_output(artifact, model, x) for x in arrays])
    comparison = compare(actual, expected, tol, "onnx vs torch")
    figures = {"batch": len(actual), **comparison.figures, "tolerance": tol.to_dict()}
    # The batch checks compare every batch size with the graph's own batch-1 outputs; those are compared
    # with torch here, so a graph right only at the batch size above cannot pass.
    try:
        singles = single_outputs(artifact, SINGLES)
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK, f"onnxruntime failed at batch 1: {error_line(exc)}", **figures)
    expected = reference_output(artifact, model, inputs.batch_for(variant, artifact.encoder, SINGLES))
    at_one = compare(singles, expected, tol, "onnx at batch 1 vs torch")
    figures["batch1_max_abs_err"] = at_one.figures.get("max_abs_err")
    figures["batch1_max_err_over_row_scale"] = at_one.figures.get("max_err_over_row_scale")
    figures["batch1_min_cosine"] = at_one.figures.get("min_cosine")
    return verdict(CHECK, comparison.problems + at_one.problems, figures)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def similarity(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    return _normalise(image_embeddings.astype(np.float64)) @ _normalise(text_embeddings.astype(np.float64)).T


def ranking_disagreements(onnx_sim: np.ndarray, torch_sim: np.ndarray, tie: float) -> list[str]:
    """Rows whose text ranking differs, ignoring swaps of texts that torch itself scores within `tie`."""
    problems = []
    for row, (o, t) in enumerate(zip(onnx_sim, torch_sim, strict=True)):
        order_o, order_t = np.argsort(-o, kind="stable"), np.argsort(-t, kind="stable")
        if np.array_equal(order_o, order_t):
            continue
        if np.allclose(t[order_o], t[order_t], atol=tie, rtol=0):
            continue
        problems.append(f"image {row}: onnx ranks texts {order_o.tolist()}, torch {order_t.tolist()}")
    return problems


def top1_margins(torch_sim: np.ndarray) -> np.ndarray:
    """Per image, how far torch's best text leads its second: a ranking that close may flip under any error."""
    ordered = np.sort(torch_sim, axis=1)
    return ordered[:, -1] - ordered[:, -2] if torch_sim.shape[1] > 1 else np.full(len(torch_sim), np.inf)


def check_zero_shot_agreement(
    image: Artifact,
    text_split: Artifact,
    model: ClipModel,
    tol: Tolerance,
    n_images: int = 4,
    n_texts: int = TEXTS,
) -> CheckResult:
    """The image x text similarity matrix from the ONNX graphs (via the split projection, for a split text graph)
    ranks as torch's.
    `tol.atol` is the target's similarity budget: no similarity may move by more, and two texts may swap
    places only where torch scores them within twice the budget (the most such an error can swap). So top-1
    must agree for every image whose fp32 top-1 margin exceeds that; the report shows each margin."""
    split = text_split.encoder == EncoderKind.TEXT_SPLIT  # else a graph that gives the text embeddings itself
    if split and (text_split.projection_path is None or not text_split.projection_path.is_file()):
        return failed(CHECK_ZERO_SHOT, f"{text_split.label} has no projection .npy")
    variant = image.variant
    images = zero_shot_images(variant)[:n_images]
    tokens = zero_shot_tokens(variant, n_texts)
    try:
        onnx_text = onnx_output(text_split, tokens)
        if split:
            onnx_text = project_text(onnx_text, tokens, np.load(text_split.projection_path))  # type: ignore[arg-type]
        onnx_sim = similarity(onnx_output(image, images), onnx_text)
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK_ZERO_SHOT, f"onnx side failed: {error_line(exc)}")
    torch_sim = similarity(
        torch_output(model, EncoderKind.IMAGE, image.binding.fitted(images) if image.binding else images),
        torch_output(model, EncoderKind.TEXT_FULL, text_split.binding.fitted(tokens) if text_split.binding else tokens),
    )
    nonfinite = [
        p
        for p in (
            nonfinite_problem(onnx_sim, "onnx similarity matrix"),
            nonfinite_problem(torch_sim, "torch similarity matrix (a reference problem)"),
        )
        if p
    ]
    if nonfinite:
        return failed(CHECK_ZERO_SHOT, "; ".join(nonfinite), images=n_images, texts=n_texts)
    return _agreement(onnx_sim, torch_sim, tol)


def _agreement(onnx_sim: np.ndarray, torch_sim: np.ndarray, tol: Tolerance) -> CheckResult:
    error = float(np.abs(onnx_sim - torch_sim).max())
    margins = top1_margins(torch_sim)
    decided = margins > 2 * tol.atol
    agree = onnx_sim.argmax(1) == torch_sim.argmax(1)
    figures = {
        "images": len(onnx_sim),
        "texts": onnx_sim.shape[1],
        "max_similarity_err": error,
        "similarity_budget": tol.atol,
        "budget_reason": tol.reason,
        "top1_margins": [round(float(m), 6) for m in margins],
        "decided_images": int(decided.sum()),
        "top1_agreement": float(agree.mean()),
        "top1_agreement_decided": float(agree[decided].mean()) if decided.any() else None,
    }
    problems = []
    if error > tol.atol:
        problems.append(f"a similarity moved by {error:.3g}, over the budget {tol.atol:g} ({tol.reason})")
    problems += ranking_disagreements(onnx_sim, torch_sim, tie=2 * tol.atol)
    return verdict(CHECK_ZERO_SHOT, problems, figures, f"rankings agree (max similarity error {error:.2g})")


CHECK_SOURCE = "source_agreement"


def check_source_agreement(artifact: Artifact, source: Artifact | None, tol: Tolerance, batch: int = 4) -> CheckResult:
    """A compiled graph (another tool's `_fp16` / `_quantized` sibling, or a compile target) against the fp32 graph
    it was made from, on parity's inputs, within the target's parity budget. It needs no weights: a sibling that
    lost its accuracy fails even where no reference can be rebuilt, and where one can, it tells a compile fault
    from an export fault."""
    if source is None:
        return skipped(
            CHECK_SOURCE, "no fp32 graph beside it to compare with (a release bundle ships the compiled one)"
        )
    arrays = compared_inputs(artifact, batch)
    try:
        actual = np.concatenate([onnx_output(artifact, x) for x in arrays])
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK_SOURCE, f"onnxruntime failed on the compiled graph: {error_line(exc)}")
    try:
        expected = np.concatenate([onnx_output(source, x) for x in arrays])
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK_SOURCE, f"onnxruntime failed on its fp32 graph {source.label}: {error_line(exc)}")
    what = f"{artifact.label} vs {source.label} (if that graph's own parity fails, the fault is there)"
    comparison = compare(actual, expected, tol, what, "the fp32 graph")
    figures = {"batch": len(actual), "source": source.label, **comparison.figures, "tolerance": tol.to_dict()}
    return verdict(CHECK_SOURCE, comparison.problems, figures)
