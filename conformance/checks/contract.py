"""The input/output contract: names, dtypes, ranks, a symbolic batch axis (or, for a static profile, the fixed
batch the case names), and the variant's other dims."""

from __future__ import annotations

import json
from typing import Any

from conformance.artifact import Artifact, ArtifactError
from conformance.axes import TOKEN_DTYPES
from conformance.encoders import EncoderKind, expected_dims
from conformance.graph import TensorSignature, graph_inputs, graph_outputs, load_structure
from conformance.layouts import GraphBinding, Layout
from conformance.results import CheckResult, failed, verdict
from conformance.variants import Variant

CHECK = "io_contract"


def _tensor_problems(
    sig: TensorSignature,
    role: str,
    name: str,
    dtypes: tuple[str, ...],
    rest: tuple[int, ...],
    static_batch: int | None = None,
) -> list[str]:
    problems = []
    if sig.name != name:
        problems.append(f"{role} is named {sig.name!r}, expected {name!r}")
    if sig.elem_type not in dtypes:
        problems.append(f"{role} {sig.name!r} has dtype {sig.elem_type}, expected {' or '.join(dtypes)}")
    if len(sig.dims) != len(rest) + 1:
        return [*problems, f"{role} {sig.name!r} has rank {len(sig.dims)} {sig.dims}, expected {len(rest) + 1}"]
    if static_batch is not None:
        if sig.dims[0] != static_batch:
            problems.append(
                f"{role} {sig.name!r} has batch dimension {sig.dims[0]!r}; this static graph was made for a "
                f"fixed batch of {static_batch}"
            )
    elif not isinstance(sig.dims[0], str):
        problems.append(
            f"{role} {sig.name!r} has a fixed batch dimension {sig.dims[0]!r}; it must be symbolic "
            "(the batch size was baked in at export time)"
        )
    if tuple(sig.dims[1:]) != rest:
        problems.append(f"{role} {sig.name!r} has dims {sig.dims[1:]}, expected {rest}")
    return problems


def check_io_contract(artifact: Artifact) -> CheckResult:
    try:
        model = load_structure(artifact)
    except ArtifactError as exc:
        return failed(CHECK, str(exc))
    inputs, outputs = graph_inputs(model), graph_outputs(model)
    figures = {"inputs": [vars(s) for s in inputs], "outputs": [vars(s) for s in outputs]}
    if len(inputs) != 1 or len(outputs) != 1:
        return failed(CHECK, f"expected one input and one output, found {len(inputs)} and {len(outputs)}", **figures)
    in_rest, out_rest = expected_dims(artifact.variant, artifact.encoder)
    in_types = ("float32",) if artifact.encoder == EncoderKind.IMAGE else TOKEN_DTYPES
    batch = artifact.case.static_batch
    problems = _tensor_problems(inputs[0], "input", artifact.input_name, in_types, in_rest, batch)
    problems += _tensor_problems(outputs[0], "output", artifact.output_name, ("float32",), out_rest, batch)
    if artifact.token_dtype and inputs[0].elem_type in TOKEN_DTYPES and inputs[0].elem_type != artifact.token_dtype:
        problems.append(f"graph takes {inputs[0].elem_type} tokens, the artifact records {artifact.token_dtype}")
    return verdict(CHECK, problems, figures)


def _expected_dim(spec: object, variant: Variant) -> object:
    named = {
        "resolution": variant.image_resolution,
        "context": variant.context_length,
        "embed": variant.embed_dim,
        "width": variant.transformer_width,
        "vision_width": variant.vision_width,  # a ViT's token width (Optimum's vision tower alone gives it)
    }
    if variant.vision_patch_size:  # a ViT's patches and class token (a ResNet has none: the name stays unmatched)
        named["image_tokens"] = (variant.image_resolution // variant.vision_patch_size) ** 2 + 1
    return named.get(spec, spec) if isinstance(spec, str) else spec


def _layout_tensor_problems(sig: TensorSignature, spec: list[Any], variant: Variant, batch: int | None) -> list[str]:
    dtype, *dims = spec
    problems = [] if sig.elem_type == dtype else [f"{sig.name!r} has dtype {sig.elem_type}, the layout's is {dtype}"]
    if len(sig.dims) != len(dims):
        return [*problems, f"{sig.name!r} has rank {len(sig.dims)} {sig.dims}, the layout's is {len(dims)} {dims}"]
    for axis, (actual, want) in enumerate(zip(sig.dims, dims, strict=True)):
        loose = isinstance(want, str) and want.endswith("?")  # "name?": symbolic, or the variant's value
        want = want[:-1] if loose else want
        want = int(want) if isinstance(want, str) and want.isdigit() else want
        expected = _expected_dim(want, variant)
        symbolic = isinstance(actual, str) or actual is None  # a named or an unknown dimension: any size runs
        if want == "batch":  # symbolic; or, where the producer fixes one (immich: 1), that size
            if not (symbolic or (batch is not None and actual == batch)):
                allowed = "symbolic" if batch is None else f"symbolic or {batch}"
                problems.append(
                    f"{sig.name!r} has a fixed batch dimension {actual!r} (axis {axis}); the layout's is {allowed} "
                    "(the batch size was baked in at export time)"
                )
            continue
        if want == "any" or actual == expected or (loose and symbolic) or (want == "symbolic" and symbolic):
            continue
        if want == "symbolic":  # a sequence axis the host pads to its batch's longest text (transformers' tokenizers)
            problems.append(f"{sig.name!r} has a fixed {actual!r} on axis {axis}; the layout's is symbolic")
            continue
        problems.append(f"{sig.name!r} has {actual!r} on axis {axis}, the layout's contract is {want} = {expected}")
    return problems


def check_layout_contract(artifact: Artifact, layout: Layout) -> CheckResult:
    """Another tool's graph against its layout's own contract: every input and output by name, dtype and dims
    (a symbolic batch unless the producer fixes one, and the variant's resolution, context and embedding)."""
    try:
        model = load_structure(artifact)
    except ArtifactError as exc:
        return failed(CHECK, str(exc))
    contract = layout.contract[layout.binding(artifact.encoder).file]  # a compiled sibling: its fp32 graph's
    found = {"inputs": graph_inputs(model), "outputs": graph_outputs(model)}
    figures: dict[str, Any] = {"layout": layout.name, **{k: [vars(s) for s in v] for k, v in found.items()}}
    problems = []
    for role, signatures in found.items():
        # "name?": a tensor the producer's users may remove (the zoo's attention_mask: its docs say how)
        declared = contract.get(role, {})
        want = {name.removesuffix("?"): spec for name, spec in declared.items()}
        required = {name for name in declared if not name.endswith("?")}
        names = [sig.name for sig in signatures]
        # a host that takes the first output ignores the others: outputs after it the layout does not name are fine
        extra_ok = role == "outputs" and layout.binding(artifact.encoder).host_reads == "first"
        if not required <= set(names) or not (extra_ok or set(names) <= set(want)):
            problems.append(f"{role} are {names}, the layout {layout.name} has {list(declared)}")
        for sig in signatures:
            if sig.name in want:
                problems += _layout_tensor_problems(sig, want[sig.name], artifact.variant, layout.batch)
    problems += _host_read_problems(layout.binding(artifact.encoder), [sig.name for sig in found["outputs"]])
    problems += _config_problems(artifact, layout, figures)
    return verdict(CHECK, problems, figures, f"the {layout.name} contract holds")


def _host_read_problems(binding: GraphBinding, outputs: list[str]) -> list[str]:
    """Where the host takes the embedding by position, the graph's outputs in the order and number it needs."""
    if binding.host_reads == "first" and outputs and outputs[0] != binding.output:
        return [f"the first output is {outputs[0]!r}: the host takes the first output as the embedding "
                f"({binding.output!r})"]  # fmt: skip
    if binding.host_reads == "only" and len(outputs) != 1:
        return [f"the graph gives {len(outputs)} outputs ({', '.join(outputs)}): the host unpacks exactly one"]
    return []


def _config_problems(artifact: Artifact, layout: Layout, figures: dict[str, Any]) -> list[str]:
    """What the folder's config file says of the architecture, against the variant the run names."""
    path = artifact.folder / layout.config["file"] if layout.config else None
    if path is None or not path.is_file():
        figures["config"] = "none in the folder: the variant is taken from --variant"
        return []
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{path.name} is unreadable: {type(exc).__name__}"]
    problems = []
    for keys, field in layout.config["keys"].items():
        value: Any = config
        for key in keys.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        want = getattr(artifact.variant, field)
        if value is not None and value != want:
            problems.append(f"{path.name} says {keys} = {value!r}; {artifact.variant.name} has {field} = {want!r}")
    figures["config"] = str(path.name)
    return problems
