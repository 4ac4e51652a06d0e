"""Bundle integrity: the manifest, every file's size and sha256, and the recorded contracts."""

from __future__ import annotations

from pathlib import Path

from conformance.artifact import ArtifactError
from conformance.bundle import Bundle, BundleError, contract_problems, file_problems, open_bundle
from conformance.encoders import EncoderKind
from conformance.graph import graph_inputs, graph_outputs, load_structure
from conformance.results import CheckResult, failed, verdict

CHECK = "bundle_integrity"


def _graph_vs_manifest(bundle: Bundle) -> list[str]:
    problems = []
    for kind in bundle.encoders():
        artifact = bundle.artifact(kind)
        entry = bundle.manifest["graphs"][str(kind)]
        try:
            model = load_structure(artifact)
        except ArtifactError as exc:
            problems.append(str(exc))
            continue
        actual = ([s.name, s.elem_type, list(s.dims)] for s in [*graph_inputs(model), *graph_outputs(model)])
        recorded = ([s["name"], s["dtype"], s["shape"]] for s in [*entry["inputs"], *entry["outputs"]])
        if list(actual) != list(recorded):
            problems.append(f"{artifact.onnx_file}: the graph's inputs/outputs differ from the manifest's record")
    return problems


def check_bundle_integrity(folder: Path) -> CheckResult:
    """Fails on: no manifest, unreadable JSON or another schema, a missing/truncated/modified file, a
    variant whose shapes the graphs don't have, a projection of the wrong shape."""
    try:
        bundle = open_bundle(folder)
    except BundleError as exc:
        return failed(CHECK, str(exc))
    figures = {"bundle": str(folder), "variant": bundle.variant.name, "exporter": bundle.manifest["exporter"],
               "opset": bundle.manifest["opset"], "files": len(bundle.manifest["files"]),
               "provenance": bundle.manifest["provenance"]}
    problems = file_problems(bundle) + contract_problems(bundle)
    if not problems:
        problems = _graph_vs_manifest(bundle)
    if EncoderKind.IMAGE not in bundle.encoders() or EncoderKind.TEXT_SPLIT not in bundle.encoders():
        problems.append("a bundle holds an image graph and a split text graph")
    return verdict(CHECK, problems, figures, f"{figures['files']} files verified by sha256")
