"""The seed's split-projection contract: the saved `.npy`, the host-side helper, and the token dtype."""

from __future__ import annotations

import numpy as np

from conformance import inputs
from conformance.artifact import Artifact
from conformance.encoders import ClipModel, EncoderKind, project_text, text_projection
from conformance.numerics import Tolerance, compare
from conformance.outputs import onnx_output, torch_output
from conformance.results import CheckResult, error_line, failed, verdict
from conformance.runtime import coerce_input, session
from conformance.variants import Variant

CHECK_FILE = "projection_file"
CHECK_ROUNDTRIP = "projection_roundtrip"
CHECK_TOKENS = "token_dtype"
CHECK_SPLIT_FULL = "split_matches_full"
_ONNX_DTYPES = {"tensor(int32)": "int32", "tensor(int64)": "int64"}
SPLIT_FULL_CASES = (
    "mixed-lengths",
    "eot-in-text",
    "76-tokens",
    "77-tokens",
    "over-context",
    "mid-lengths",
    "rare-tokens",
)


def load_projection(artifact: Artifact) -> np.ndarray:
    path = artifact.projection_path
    if path is None:
        raise FileNotFoundError(f"{artifact.label} records no projection file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{path}: {type(exc).__name__}: {exc}") from None


def check_projection_file(artifact: Artifact, model: ClipModel) -> CheckResult:
    """The `.npy` has shape (text width, embed dim), the model's dtype, and equals `text_projection` exactly."""
    try:
        saved = load_projection(artifact)
    except FileNotFoundError as exc:
        return failed(CHECK_FILE, f"projection file unusable: {exc}")
    expected, variant = text_projection(model), artifact.variant
    figures: dict[str, object] = {
        "file": artifact.projection_file,
        "shape": list(saved.shape),
        "dtype": saved.dtype.name,
        "expected_shape": list(variant.projection_shape),
    }
    problems = []
    if saved.shape != variant.projection_shape:
        problems.append(f"{artifact.projection_file} has shape {saved.shape}, expected {variant.projection_shape}")
    if saved.dtype != expected.dtype:
        problems.append(f"{artifact.projection_file} has dtype {saved.dtype}, the model has {expected.dtype}")
    if not problems and not np.array_equal(saved, expected):
        diff = figures["max_abs_diff"] = float(np.abs(saved - expected).max())
        problems.append(
            f"{artifact.projection_file} differs from model.text_projection "
            f"(max abs diff {diff:.3g}): transposed, or from other weights?"
        )
    return verdict(CHECK_FILE, problems, figures)


def check_projection_roundtrip(artifact: Artifact, model: ClipModel, texts: list[str], tol: Tolerance) -> CheckResult:
    """`project_text(onnx hidden states, tokens, .npy)` reproduces torch `encode_text`."""
    tokens = inputs.tokens(texts, artifact.variant)
    try:
        embeddings = project_text(onnx_output(artifact, tokens), tokens, load_projection(artifact))
    except Exception as exc:  # noqa: BLE001 - a wrong-shaped .npy or a failing graph is the finding
        return failed(CHECK_ROUNDTRIP, error_line(exc), texts=len(texts))
    comparison = compare(embeddings, torch_output(model, EncoderKind.TEXT_FULL, tokens), tol, "projected vs torch")
    figures = {"texts": len(texts), "eot_positions": sorted({int(i) for i in tokens.argmax(-1)}), **comparison.figures}
    return verdict(CHECK_ROUNDTRIP, comparison.problems, figures)


def check_token_dtype(artifact: Artifact, expected: str) -> CheckResult:
    """The token dtype is a contract (`--token-dtype`, int32 by default, what `clip.tokenize` returns and NPU
    toolchains need): the graph declares exactly it, the artifact records it, and a bare
    `InferenceSession.run` accepts ids of that dtype fed raw, with no cast on the way."""
    try:
        sess = session(artifact)
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK_TOKENS, f"onnxruntime cannot load the graph: {error_line(exc)}")
    binding = artifact.binding  # another tool's graph: its token input by name, its dtype from its layout
    name = binding.inputs["tokens"] if binding else sess.get_inputs()[0].name
    found = {i.name: i.type for i in sess.get_inputs()}
    if name not in found:
        return failed(CHECK_TOKENS, f"the graph has no token input {name!r} (its inputs: {list(found)})")
    declared = _ONNX_DTYPES.get(found[name], found[name])
    recorded = binding.text.dtype if binding else artifact.token_dtype
    tokens = inputs.tokens(inputs.prompts(artifact.case.static_batch or 3), artifact.variant).astype(expected)
    figures = {
        "graph_dtype": declared,
        "recorded_dtype": recorded,
        "contract_dtype": expected,
        "fed_dtype": tokens.dtype.name,
    }
    problems = []
    if declared != expected:
        problems.append(f"graph takes {declared} tokens, the contract is {expected} (--token-dtype)")
    if recorded != declared:
        problems.append(f"graph takes {declared} tokens but the artifact records {recorded}")
    feeds = binding.feeds(tokens, artifact.variant.image_resolution) if binding else {name: tokens}
    # Raw means the ids: the layout's other inputs (a mask, a neutral image) go in the graph's own dtypes.
    feeds = {n: a if n == name else coerce_input(a, found[n], n) for n, a in feeds.items() if n in found}
    try:
        out = sess.run([artifact.output_name], feeds)[0]
        figures["output_shape"] = list(out.shape)
    except Exception as exc:  # noqa: BLE001 - the refusal is the finding
        problems.append(f"the graph refuses {expected} token ids fed raw: {error_line(exc)}")
    return verdict(CHECK_TOKENS, problems, figures, f"{expected} ids accepted raw")


def _split_vs_full_inputs(variant: Variant) -> list[np.ndarray]:
    """The token arrays the batch and projection checks already ran: the prompts of the largest fixed batch
    and each edge-text case, so the text-split outputs are shared (`outputs.onnx_output`)."""
    largest = max(inputs.batch_sizes(variant, EncoderKind.TEXT_SPLIT))
    return [
        inputs.batch_for(variant, EncoderKind.TEXT_SPLIT, largest),
        *(inputs.tokens(inputs.EDGE_TEXTS[case], variant) for case in SPLIT_FULL_CASES),
    ]


def check_split_matches_full(full: Artifact, split: Artifact, tol: Tolerance) -> CheckResult:
    """`text-full`'s output equals `text-split` + the host-side projection on the same tokens."""
    arrays = _split_vs_full_inputs(full.variant)
    try:
        projection = load_projection(split)
        from_split = np.concatenate([project_text(onnx_output(split, t), t, projection) for t in arrays])
        from_full = np.concatenate([onnx_output(full, t) for t in arrays])
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK_SPLIT_FULL, error_line(exc))
    comparison = compare(from_full, from_split, tol, "full vs split", reference="text-split + project_text")
    return verdict(CHECK_SPLIT_FULL, comparison.problems, {"texts": len(from_full), **comparison.figures})
