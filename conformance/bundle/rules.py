"""What makes a bundle trustworthy: each rule returns one-line problems, empty when the bundle obeys it.

A manifest is data anyone can edit, so nothing in it is taken on trust: every file is hashed, every
file the graphs read is listed, the manifest's claims are compared with the graphs themselves, and the
weights it claims are compared with the registry and with `--weights`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from conformance import synthetic
from conformance.artifact import ArtifactError
from conformance.bundle.manifest import GRAPH_FILES, MANIFEST, Bundle
from conformance.compile.recipe import recipe_stamp
from conformance.encoders import EncoderKind, expected_dims, projection_filename
from conformance.graph import default_opset, graph_inputs, graph_metadata, load_structure
from conformance.inputs import MEAN, STD
from conformance.profiles.rules import load_profile
from conformance.tokenizer import preprocessing_record, tokenizer_problems
from conformance.weights import WeightsError, find_checkpoint, sha256_of


def _listed(bundle: Bundle) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in bundle.manifest["files"]}


def file_problems(bundle: Bundle) -> list[str]:
    """Every listed file exists with its size and sha256; every file a graph entry names is listed; the
    folder holds nothing else."""
    problems = []
    listed = _listed(bundle)
    for name, entry in listed.items():
        path = bundle.folder / name
        if PurePosixPath(name).name != name or name in ("", ".", ".."):
            problems.append(f"{name}: a listed file must be a plain name inside the bundle folder")
        elif path.is_symlink():
            problems.append(f"{name}: a symbolic link; a bundle holds its files, not links to elsewhere")
        elif not path.is_file():
            problems.append(f"{name}: named in the manifest but missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"{name}: {path.stat().st_size} bytes, the manifest says {entry['size']} (truncated?)")
        elif sha256_of(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 differs from the manifest (modified after export)")
    for graph in bundle.manifest["graphs"].values():
        for name in [graph.get("file"), *graph.get("files", []), graph.get("projection", {}).get("file")]:
            if name and name not in listed:
                problems.append(f"{name}: used by the {graph.get('encoder')} graph but not listed with a hash")
    for path in sorted(bundle.folder.iterdir()):
        if path.name != MANIFEST and path.name not in listed:
            problems.append(f"{path.name}: in the bundle folder but not listed in the manifest")
    return problems + naming_problems(bundle)


def naming_problems(bundle: Bundle) -> list[str]:
    """Users load `image.onnx`, `text.onnx` and `text_projection_{width}_{embed}.npy` by name, so those names
    are the graphs and the projection the manifest describes, and no listed file goes unused: a manifest
    cannot point the checks at one file while another ships under the name users open."""
    problems, used = [], set()
    for key, graph in bundle.manifest["graphs"].items():
        try:
            expected = GRAPH_FILES[EncoderKind(key)]
        except (KeyError, ValueError):
            problems.append(f"manifest graph {key!r}: a bundle holds image and text-split graphs only")
            continue
        names = [graph.get("file"), *graph.get("files", [])]
        if graph.get("file") != expected or not set(names) <= {expected, f"{expected}.data"}:
            problems.append(
                f"the {key} graph must be {expected} (external data in {expected}.data), "
                f"the manifest names {sorted({n for n in names if n})}"
            )
        projection = graph.get("projection", {}).get("file")
        if key == str(EncoderKind.TEXT_SPLIT) and projection != projection_filename(bundle.variant):
            problems.append(
                f"the projection must be {projection_filename(bundle.variant)}, the manifest names {projection!r}"
            )
        used |= {n for n in [*names, projection] if n}
    problems += [f"{name}: listed in the manifest but used by no graph" for name in sorted(set(_listed(bundle)) - used)]
    return problems


def _location_problem(location: str, graph: dict[str, Any], listed: dict[str, Any]) -> str | None:
    plain = PurePosixPath(location).name == location and PureWindowsPath(location).name == location
    if not plain or location in ("", ".", ".."):
        return f"{graph['file']}: external data location {location!r} points outside the bundle folder"
    if location not in listed or location not in graph.get("files", []):
        return f"{graph['file']}: external data location {location!r} is not a file listed for this graph"
    return None


Graphs = dict[str, onnx.ModelProto]  # manifest graph key -> the graph's structure, without its weights


def load_graphs(bundle: Bundle) -> tuple[Graphs, list[str]]:
    """Each graph read once (structure only), for the rules below to share; and the ones that cannot be read."""
    graphs: Graphs = {}
    problems = []
    for key in bundle.manifest["graphs"]:
        try:
            graphs[key] = load_structure(bundle.artifact(EncoderKind(key)))
        except ArtifactError as exc:
            problems.append(str(exc))
    return graphs, problems


def external_data_problems(bundle: Bundle, graphs: Graphs) -> list[str]:
    """Every external-data `location` inside each graph is a listed file of that graph, in the bundle folder."""
    problems: set[str] = set()
    listed = _listed(bundle)
    for key, model in graphs.items():
        graph = bundle.manifest["graphs"][key]
        for tensor in model.graph.initializer:
            if uses_external_data(tensor):
                problem = _location_problem(ExternalDataInfo(tensor).location, graph, listed)
                if problem:
                    problems.add(problem)
    return sorted(problems)


def contract_problems(bundle: Bundle) -> list[str]:
    """The manifest's recorded contract matches the variant it names, and the projection shape too."""
    problems = []
    for key, graph in bundle.manifest["graphs"].items():
        try:
            encoder = EncoderKind(graph["encoder"])
            in_rest, out_rest = expected_dims(bundle.variant, encoder)
            in_shape, out_shape = graph["inputs"][0]["shape"][1:], graph["outputs"][0]["shape"][1:]
        except (KeyError, IndexError, ValueError) as exc:
            problems.append(f"manifest graph {key!r} is malformed: {type(exc).__name__}: {exc}")
            continue
        if tuple(in_shape) != in_rest or tuple(out_shape) != out_rest:
            problems.append(
                f"{graph['file']}: manifest shapes {in_shape} -> {out_shape} are not those of "
                f"{bundle.variant.name} ({list(in_rest)} -> {list(out_rest)})"
            )
        projection = graph.get("projection")
        if projection and tuple(projection["shape"]) != bundle.variant.projection_shape:
            problems.append(
                f"{projection['file']}: manifest shape {projection['shape']} is not "
                f"{bundle.variant.name}'s {list(bundle.variant.projection_shape)}"
            )
    return problems


def _recipe_claim(graph: dict[str, Any]) -> str | None:
    """What the manifest says built the graph, in the form compile_to stamps: target/version/settings digest."""
    compiled = graph.get("compile")
    if not isinstance(compiled, dict):
        return None
    settings = compiled.get("settings")
    return recipe_stamp(
        str(compiled.get("recipe")), compiled.get("version"), settings if isinstance(settings, dict) else {}
    )


def claims_vs_graphs_problems(bundle: Bundle, graphs: Graphs) -> list[str]:
    """exporter, opset, variant, encoder, precision, target, profile, compile recipe and token dtype, as the
    manifest says, are what each graph records about itself (metadata stamped at export or compile, its opset
    import, its input dtype)."""
    problems = []
    m = bundle.manifest
    for key, model in graphs.items():
        graph = m["graphs"][key]
        stamped = graph_metadata(model)
        if not stamped:
            problems.append(f"{graph['file']}: carries no clip_conformance metadata (not made by this suite's export)")
            continue
        claims = {
            "exporter": m["exporter"],
            "variant": m["variant"],
            "encoder": key,
            **{axis: graph.get(axis) for axis in ("precision", "target", "profile")},
            "recipe": _recipe_claim(graph),
            "static_batch": str(graph["static_batch"]) if graph.get("static_batch") is not None else None,
        }
        problems += [
            f"{graph['file']}: manifest says {name} {claim!r}, the graph was made with {stamped.get(name)!r}"
            for name, claim in claims.items()
            if stamped.get(name) != claim
        ]
        problems += _static_profile_problems(graph, stamped)
        if default_opset(model) != m["opset"]:
            problems.append(
                f"{graph['file']}: manifest says opset {m['opset']!r}, the graph imports opset {default_opset(model)}"
            )
        declared = graph_inputs(model)[0].elem_type if graph_inputs(model) else None
        if key != str(EncoderKind.IMAGE) and graph.get("token_dtype") != declared:
            problems.append(
                f"{graph['file']}: manifest says token_dtype {graph.get('token_dtype')!r}, the graph takes {declared}"
            )
    return problems


def _static_profile_problems(graph: dict[str, Any], stamped: dict[str, str]) -> list[str]:
    """A static graph's record: the profile rules it was made under are this suite's (by sha256), and the mask
    value the manifest claims is the one stamped into the graph at export."""
    record = graph.get("static_profile")
    if graph.get("static_batch") is None:
        return [] if record is None else [f"{graph['file']}: a static_profile record on a graph with no static batch"]
    if not isinstance(record, dict):
        return [f"{graph['file']}: a static graph without its static_profile record (rules, rules_sha256, mask_value)"]
    try:
        rules = load_profile(str(record.get("rules")))
    except ValueError as exc:
        return [f"{graph['file']}: {exc}"]
    problems = []
    if record.get("rules_sha256") != rules.sha256:
        problems.append(
            f"{graph['file']}: made under {rules.name} rules with sha256 {str(record.get('rules_sha256'))[:12]}, "
            f"this suite's are {rules.sha256[:12]}: validate with the suite that made it, or export again"
        )
    if str(record.get("mask_value")) != stamped.get("mask_value"):
        problems.append(
            f"{graph['file']}: manifest says mask_value {record.get('mask_value')!r}, the graph was made with "
            f"{stamped.get('mask_value')!r}"
        )
    return problems


def provenance_problems(bundle: Bundle) -> list[str]:
    """An `official` claim carries the registry's sha256; synthetic weights are of the scheme this suite builds."""
    recorded = bundle.provenance
    if recorded.kind == "official" and recorded.sha256 != bundle.variant.sha256:
        return [
            f"manifest claims official {bundle.variant.name} weights with sha256 {recorded.sha256}, but the "
            f"registry's official checkpoint has {bundle.variant.sha256}"
        ]
    if recorded.kind == "synthetic" and recorded.scheme != synthetic.SCHEME:
        return [
            f"bundle was exported from synthetic weights of scheme {recorded.scheme or 'synthetic/1'!r}; this "
            f"suite builds {synthetic.SCHEME!r} and will not rebuild other weights: export the bundle again"
        ]
    if recorded.kind not in ("official", "unverified-file", "synthetic"):
        return [f"manifest provenance kind {recorded.kind!r} is not official, unverified-file or synthetic"]
    return []


def weights_problems(bundle: Bundle, weights_path: Path | None) -> list[str]:
    """`--weights` is never ignored: the checkpoint given must be the one the bundle was exported from. The
    realistic accident is a bundle exported without weights, then validated "against the checkpoint"."""
    if weights_path is None:
        return []
    try:
        path = find_checkpoint(bundle.variant, weights_path)
    except WeightsError as exc:
        return [str(exc)]
    if path is None:
        return [
            f"--weights={weights_path} holds no {bundle.variant.checkpoint_file or 'checkpoint'} for "
            f"{bundle.variant.name}"
        ]
    recorded, digest = bundle.provenance, sha256_of(path)
    if recorded.kind == "synthetic":
        return [
            f"--weights={path} was given, but {bundle.name} was exported from synthetic weights "
            f"(seed {recorded.seed}), not from that checkpoint"
        ]
    if digest != recorded.sha256:
        return [f"--weights={path} has sha256 {digest}, but {bundle.name} was exported from {recorded.sha256}"]
    return []


def record_problems(bundle: Bundle) -> list[str]:
    """The tokenizer and image preprocessing the graphs were made for are recorded, and are this suite's."""
    problems = tokenizer_problems(bundle.manifest.get("tokenizer"), bundle.variant.context_length)
    expected = preprocessing_record(bundle.variant.image_resolution, MEAN, STD)
    if bundle.manifest.get("preprocessing") != expected:
        problems.append(
            f"manifest preprocessing {bundle.manifest.get('preprocessing')!r} is not "
            f"{bundle.variant.name}'s {expected!r}"
        )
    return problems
