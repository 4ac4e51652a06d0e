"""Reading an ONNX graph's structure without loading its weights."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import onnx

from conformance.artifact import Artifact, ArtifactError


@dataclass(frozen=True)
class TensorSignature:
    name: str
    elem_type: str  # numpy spelling: float32, int32, ...
    dims: tuple[int | str | None, ...]  # int = fixed, str = symbolic (dim_param), None = unknown


def load_structure(artifact: Artifact) -> onnx.ModelProto:
    """The graph without its external data, parsed once for the checks that read it one after another
    (validity, then the contract); treat it as read-only."""
    path = artifact.onnx_path
    try:
        stat = path.stat()
        return _parsed(path, stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise ArtifactError(f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None


@lru_cache(maxsize=1)  # a graph with inline weights is a few hundred MB parsed: keep only the last one
def _parsed(path: Path, mtime_ns: int, size: int) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors for truncated files are opaque
        raise ArtifactError(f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None


def _dims(value: onnx.ValueInfoProto) -> tuple[int | str | None, ...]:
    shape = value.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim)


def _signature(value: onnx.ValueInfoProto) -> TensorSignature:
    elem = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
    return TensorSignature(value.name, elem, _dims(value))


def graph_inputs(model: onnx.ModelProto) -> list[TensorSignature]:
    initializers = {init.name for init in model.graph.initializer}
    return [_signature(v) for v in model.graph.input if v.name not in initializers]


def graph_outputs(model: onnx.ModelProto) -> list[TensorSignature]:
    return [_signature(v) for v in model.graph.output]


def default_opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None
