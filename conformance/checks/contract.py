"""The input/output contract: names, dtypes, ranks, a symbolic batch axis (or, for a static profile, the fixed
batch the case names), and the variant's other dims."""

from __future__ import annotations

from conformance.artifact import Artifact, ArtifactError
from conformance.encoders import EncoderKind, expected_dims
from conformance.export import TOKEN_DTYPES
from conformance.graph import TensorSignature, graph_inputs, graph_outputs, load_structure
from conformance.results import CheckResult, failed, verdict

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
