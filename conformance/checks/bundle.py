"""Bundle integrity: the manifest, every file's size and sha256, and the recorded contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from conformance import layouts
from conformance.artifact import ArtifactError
from conformance.bundle import rules
from conformance.bundle.manifest import Bundle, BundleError, open_bundle
from conformance.checks.validity import external_data_problems
from conformance.encoders import EncoderKind
from conformance.folders import identify
from conformance.folders.inventory import inventory, repeats
from conformance.graph import graph_inputs, graph_outputs, load_path
from conformance.layouts import Layout
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


def check_layout_files(folder: Path, layout: Layout) -> CheckResult:
    """Another tool's folder has no manifest to hold it to; the file rules that need none still apply: every graph
    the layout names is a readable ONNX file, and its external data lies inside the folder, whole. The graphs of
    the layout's companions present (transformers.js's combined graph beside its split ones) are held to the same
    rules, and to their own layout's inputs and outputs."""
    root = folder.resolve()
    read_by = layouts.readers(folder, layout)
    problems = [f"{c.name}'s {p}" for c in read_by[1:] for p in identify.graph_problems(folder, c)]
    graphs = [f for reader in read_by for f in reader.present(folder)]  # fp32 graphs and compiled siblings
    for name in graphs:
        path = folder / name
        try:
            model = load_path(path)
        except ArtifactError as exc:
            problems.append(f"{name}: not a readable ONNX graph ({exc})")
            continue
        if not model.graph.input and not model.graph.output:  # zero bytes parse as an empty model
            problems.append(f"{name}: an empty ONNX graph (no inputs, no outputs; {path.stat().st_size} bytes)")
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                try:
                    inside = (path.parent / entry.value).resolve().is_relative_to(root)
                except (ValueError, OSError):  # a location no file system accepts (a NUL byte, ...)
                    inside = False
                if entry.key == "location" and not inside:
                    problems.append(f"{name}: tensor {tensor.name!r} reads {entry.value!r}, outside the folder")
        problems += [f"{name}: {p}" for p in external_data_problems(model, path.parent)]
    split = any(g.encoder == EncoderKind.TEXT_SPLIT and g.file in graphs for g in layout.graphs)
    if layout.projection and split:  # the host's side file: without it the text graph gives no embedding
        try:
            np.load(folder / layout.projection, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            problems.append(f"{layout.projection}: the text projection the host applies is unusable ({exc})")
    repeated = {f: r for reader in read_by for f, r in repeats(folder, reader).items()}  # hashed once: noted, and
    files = inventory(folder, read_by, repeated)  # mislabelled ones fail; every file: what it was read as, or why not
    # graphs in the folder that no check reads (a sibling the layout does not know): said, not judged
    unchecked = [f for f, what in files.items() if f.endswith(".onnx") and what.startswith("not read")]
    figures: dict[str, Any] = {"bundle": str(folder), "layout": layout.name, "producer": layout.producer}
    figures["companions"] = [c.name for c in read_by[1:]]
    figures["graphs"] = graphs
    figures["not_checked"] = unchecked
    figures["absent"] = absent = [f for reader in read_by for f in reader.absent(folder)]  # checked with what it holds
    figures["files"] = files
    problems += [
        f"{file} is byte-identical to {earlier}, which the layout reads as another target: one is mislabelled"
        for file, (earlier, same) in repeated.items()
        if not same
    ]
    note = f"; absent (checks that need them skip, naming them): {', '.join(absent)}" if absent else ""
    note += f"; not laid out, so not checked: {', '.join(unchecked)}" if unchecked else ""
    return verdict(
        CHECK,
        list(dict.fromkeys(problems)),
        figures,
        f"layout {' and '.join(r.name for r in read_by)}: graphs and external data whole{note}",
    )


def check_bundle_integrity(folder: Path, weights: Path | None = None, layout: str | None = None) -> CheckResult:
    """Fails on: no manifest, unreadable JSON or another schema; a missing, truncated, modified or unlisted
    file; a graph reading a file outside the bundle or not listed; manifest claims (exporter, opset,
    precision, token dtype, variant, official weights, tokenizer, preprocessing) that the graphs or the
    registry contradict; synthetic weights of another scheme; `weights` that are not the bundle's."""
    try:
        found = identify.detect(folder, layout) if folder.is_dir() else layouts.SUITE
    except layouts.LayoutError as exc:
        return failed(CHECK, str(exc))
    if found != layouts.SUITE:
        return check_layout_files(folder, layouts.get(found))
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
