"""Bundle integrity: the manifest, every file's size and sha256, and the recorded contracts."""

from __future__ import annotations

from pathlib import Path

from conformance.bundle import rules
from conformance.bundle.manifest import Bundle, BundleError, open_bundle
from conformance.encoders import EncoderKind
from conformance.graph import graph_inputs, graph_outputs
from conformance.results import CheckResult, failed, verdict

CHECK = "bundle_integrity"


def _graph_vs_manifest(bundle: Bundle, graphs: rules.Graphs) -> list[str]:
    problems = []
    for key, model in graphs.items():
        entry = bundle.manifest["graphs"][key]
        actual = ([s.name, s.elem_type, list(s.dims)] for s in [*graph_inputs(model), *graph_outputs(model)])
        recorded = ([s["name"], s["dtype"], s["shape"]] for s in [*entry["inputs"], *entry["outputs"]])
        if list(actual) != list(recorded):
            problems.append(f"{entry['file']}: the graph's inputs/outputs differ from the manifest's record")
    return problems


def check_bundle_integrity(folder: Path, weights: Path | None = None) -> CheckResult:
    """Fails on: no manifest, unreadable JSON or another schema; a missing, truncated, modified or unlisted
    file; a graph reading a file outside the bundle or not listed; manifest claims (exporter, opset,
    precision, token dtype, variant, official weights, tokenizer, preprocessing) that the graphs or the
    registry contradict; synthetic weights of another scheme; `weights` that are not the bundle's."""
    try:
        bundle = open_bundle(folder)
    except BundleError as exc:
        return failed(CHECK, str(exc))
    figures = {
        "bundle": str(folder),
        "variant": bundle.variant.name,
        "exporter": bundle.manifest["exporter"],
        "opset": bundle.manifest["opset"],
        "files": len(bundle.manifest["files"]),
        "provenance": bundle.manifest["provenance"],
    }
    problems = rules.file_problems(bundle) + rules.contract_problems(bundle)
    if not problems:
        graphs, problems = rules.load_graphs(bundle)
        problems += rules.external_data_problems(bundle, graphs) + _graph_vs_manifest(bundle, graphs)
        problems += rules.claims_vs_graphs_problems(bundle, graphs)
    problems += rules.provenance_problems(bundle) + rules.weights_problems(bundle, weights)
    problems += rules.record_problems(bundle)
    if EncoderKind.IMAGE not in bundle.encoders() or EncoderKind.TEXT_SPLIT not in bundle.encoders():
        problems.append("a bundle holds an image graph and a split text graph")
    return verdict(CHECK, problems, figures, f"{figures['files']} files verified by sha256")
