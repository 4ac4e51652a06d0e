"""The seed's split-projection contract: the saved `.npy`, the host-side helper, and the token dtype."""

from __future__ import annotations

import numpy as np
import torch

from conformance import inputs
from conformance.artifact import Artifact
from conformance.encoders import EncoderKind, project_text, text_projection
from conformance.graph import graph_inputs, load_structure
from conformance.numerics import Tolerance, error_figures, tolerance_problems
from conformance.results import CheckResult, error_line, failed, verdict
from conformance.runtime import InputContractError, run_onnx, run_torch
from conformance.variants import Variant

CHECK_FILE = "projection_file"
CHECK_ROUNDTRIP = "projection_roundtrip"
CHECK_TOKENS = "token_dtype"
CHECK_SPLIT_FULL = "split_vs_full"


def load_projection(artifact: Artifact) -> np.ndarray:
    path = artifact.projection_path
    if path is None:
        raise FileNotFoundError(f"{artifact.label} records no projection file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{path}: {type(exc).__name__}: {exc}") from None


def check_projection_file(artifact: Artifact, model: torch.nn.Module, variant: Variant) -> CheckResult:
    """The `.npy` has shape (text width, embed dim), the model's dtype, and equals `text_projection` exactly."""
    try:
        saved = load_projection(artifact)
    except FileNotFoundError as exc:
        return failed(CHECK_FILE, f"projection file unusable: {exc}")
    expected = text_projection(model)
    figures = {"file": artifact.projection_file, "shape": list(saved.shape), "dtype": saved.dtype.name,
               "expected_shape": list(variant.projection_shape)}
    problems = []
    if saved.shape != variant.projection_shape:
        problems.append(f"{artifact.projection_file} has shape {saved.shape}, expected {variant.projection_shape}")
    if saved.dtype != expected.dtype:
        problems.append(f"{artifact.projection_file} has dtype {saved.dtype}, the model has {expected.dtype}")
    if not problems and not np.array_equal(saved, expected):
        figures["max_abs_diff"] = float(np.abs(saved - expected).max())
        problems.append(f"{artifact.projection_file} differs from model.text_projection "
                        f"(max abs diff {figures['max_abs_diff']:.3g}): transposed, or from other weights?")
    return verdict(CHECK_FILE, problems, figures)


def check_projection_roundtrip(artifact: Artifact, model: torch.nn.Module, variant: Variant, texts: list[str],
                               tol: Tolerance) -> CheckResult:
    """`project_text(onnx hidden states, tokens, .npy)` reproduces torch `encode_text`."""
    tokens = inputs.tokens(texts, variant)
    try:
        embeddings = project_text(run_onnx(artifact, tokens), tokens, load_projection(artifact))
    except Exception as exc:  # noqa: BLE001 - a wrong-shaped .npy or a failing graph is the finding
        return failed(CHECK_ROUNDTRIP, error_line(exc), texts=len(texts))
    expected = run_torch(model, EncoderKind.TEXT_FULL, tokens)
    figures = {"texts": len(texts), "eot_positions": sorted({int(i) for i in tokens.argmax(-1)}),
               **error_figures(embeddings, expected)}
    return verdict(CHECK_ROUNDTRIP, tolerance_problems(figures, embeddings, expected, tol, "projected vs torch"),
                   figures)


def check_token_dtype(artifact: Artifact, variant: Variant) -> CheckResult:
    """The graph's token dtype is recorded; int32 and int64 ids give identical outputs; floats are refused."""
    try:
        declared = graph_inputs(load_structure(artifact))[0].elem_type
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK_TOKENS, error_line(exc))
    tokens = inputs.tokens(inputs.prompts(3), variant)
    figures = {"graph_dtype": declared, "recorded_dtype": artifact.token_dtype, "tokenizer_dtype": tokens.dtype.name}
    problems = []
    if declared != artifact.token_dtype:
        problems.append(f"graph takes {declared} tokens but the artifact records {artifact.token_dtype}")
    try:
        same = np.array_equal(run_onnx(artifact, tokens.astype(np.int32)), run_onnx(artifact, tokens.astype(np.int64)))
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK_TOKENS, f"onnxruntime failed: {error_line(exc)}",
                      **figures)
    if not same:
        problems.append("int32 and int64 token ids give different outputs")
    try:
        run_onnx(artifact, tokens.astype(np.float32))
        problems.append("float tokens were accepted without a clear error")
    except InputContractError as exc:
        figures["wrong_dtype_message"] = str(exc)
    return verdict(CHECK_TOKENS, problems, figures)


def check_split_matches_full(full: Artifact, split: Artifact, variant: Variant, tol: Tolerance) -> CheckResult:
    """`text-full`'s output equals `text-split` + the host-side projection on the same tokens."""
    tokens = inputs.tokens(inputs.prompts(4) + inputs.EDGE_TEXTS["mixed-lengths"], variant)
    try:
        from_split = project_text(run_onnx(split, tokens), tokens, load_projection(split))
        from_full = run_onnx(full, tokens)
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK_SPLIT_FULL, error_line(exc))
    figures = error_figures(from_full, from_split)
    return verdict(CHECK_SPLIT_FULL, tolerance_problems(figures, from_full, from_split, tol, "full vs split"), figures)
