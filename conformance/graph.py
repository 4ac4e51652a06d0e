"""Reading an ONNX graph's structure without loading its weights."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import onnx

from conformance.artifact import Artifact, ArtifactError

METADATA_PREFIX = "clip_conformance."
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
WEIGHTS_FILE_SUFFIX = ".data"


@dataclass(frozen=True)
class TensorSignature:
    name: str
    elem_type: str  # numpy spelling: float32, int32, ...
    dims: tuple[int | str | None, ...]  # int = fixed, str = symbolic (dim_param), None = unknown


def load_structure(artifact: Artifact) -> onnx.ModelProto:
    """The graph without its external data, parsed once for the checks that read it one after another
    (validity, then the contract); treat it as read-only."""
    return load_path(artifact.onnx_path)


def load_path(path: Path) -> onnx.ModelProto:
    """`load_structure` for a graph file no Artifact describes yet (another tool's folder, read to make one)."""
    try:
        stat = path.stat()
        return _parsed(path, stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise ArtifactError(f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None


@lru_cache(maxsize=2)  # a graph with inline weights is a few hundred MB parsed: keep the last two (a compiled sibling
# and the fp32 graph source_agreement holds it to)
def _parsed(path: Path, mtime_ns: int, size: int) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors for truncated files are opaque
        raise ArtifactError(f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None


def _dims(value: onnx.ValueInfoProto) -> tuple[int | str | None, ...]:
    shape = value.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim)


def _signature(value: onnx.ValueInfoProto) -> TensorSignature:
    code = value.type.tensor_type.elem_type  # 0: a value declared without a type (the contract names it so)
    elem = onnx.helper.tensor_dtype_to_np_dtype(code).name if code else "undefined"
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


def stamp_metadata(path: Path, values: dict[str, str]) -> None:
    """Record what made the graph inside it (`metadata_props`), so a manifest can be checked against the graph
    itself. Weights stay where they are: external-data references are kept, no tensor data is loaded."""
    model = onnx.load(str(path), load_external_data=False)
    kept = [p for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.add(key=METADATA_PREFIX + key, value=value)
    onnx.save_model(model, str(path))


def graph_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {
        p.key.removeprefix(METADATA_PREFIX): p.value for p in model.metadata_props if p.key.startswith(METADATA_PREFIX)
    }


def files_of(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != "artifact.json"}


def save_graph(model: onnx.ModelProto, path: Path) -> list[str]:
    """Save with every tensor over 1 KB in one `<name>.data` file beside it (the dynamo exporter's layout, and
    the only one that works past protobuf's 2 GB); returns the files written."""
    data = path.name + WEIGHTS_FILE_SUFFIX
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data, size_threshold=1024
    )
    return [path.name, data] if (path.parent / data).is_file() else [path.name]


def copy_graph(source: Path, out: Path) -> None:
    """A graph and its external data (`<name>.data`, which the graph names by file name) under a new name."""
    shutil.copyfile(source, out)
    data = source.with_name(source.name + WEIGHTS_FILE_SUFFIX)
    if data.is_file():
        shutil.copyfile(data, out.with_name(data.name))


def all_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node: the main graph's, those in subgraphs (If, Loop, Scan bodies) and in model-local functions."""

    def walk(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
        for node in nodes:
            yield node
            for attribute in node.attribute:
                for graph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                    yield from walk(graph.node)

    yield from walk(model.graph.node)
    for function in model.functions:
        yield from walk(function.node)
