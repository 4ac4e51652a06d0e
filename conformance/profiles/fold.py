"""The compile-time view of a static graph: what an NPU compiler knows before it maps anything to the device.

"Known at compile time": an initializer, a `Constant` node, the `Shape` of a tensor whose shape is fully static,
and any node all of whose inputs are known at compile time. The TorchScript exporter leaves such chains in the
graph (torch's multi-head attention reads `q.size()` to split heads and to scale by 1/sqrt(head_dim)), so
`compile_time_view` folds them the way the compilers do: evaluating the small ones with onnx's reference
evaluator, then inferring shapes again, until nothing changes. Weights are never loaded for it: they stand in
as graph inputs of their type and shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from conformance.artifact import Artifact, ArtifactError
from conformance.graph import STANDARD_DOMAINS, load_structure
from conformance.results import CheckResult, failed, first_line

FOLD_LIMIT = 4096  # elements: the largest constant the fold evaluates (shape tensors and scales are far smaller)
MAX_ROUNDS = 32  # of folding then inferring; each round reaches one more link of a Shape chain
NAMED = 3  # nodes named per problem; the rest are counted
_NONDETERMINISTIC = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
)
FLOAT_TYPES = frozenset(
    {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
)

Dims = tuple[int | str | None, ...]


@dataclass(frozen=True)
class ValueType:
    dtype: str  # numpy spelling: float32, int64, ...
    dims: Dims | None  # None: no shape inferred; int fixed, str symbolic, None unknown


@dataclass(frozen=True)
class CompileTimeView:
    """The graph as a compiler sees it once it has folded what it can: which values are known at compile
    time, and every value's inferred type and shape."""

    model: onnx.ModelProto  # the structure as loaded (read-only)
    constant: frozenset[str]  # value names known at compile time
    graph_inputs: frozenset[str]
    values: dict[str, ValueType]
    rounds: int
    known: dict[str, np.ndarray]  # the values the fold evaluated (constants of up to FOLD_LIMIT elements)

    def folded(self, node: onnx.NodeProto) -> bool:
        """Whether every output of `node` is known at compile time (a compiler folds the node away)."""
        outputs = [name for name in node.output if name]
        return bool(outputs) and all(name in self.constant for name in outputs)


def label(node: onnx.NodeProto) -> str:
    return f"node {node.name or '<unnamed, output ' + repr(node.output[0]) + '>'} ({node.op_type})"


def named(items: list[str]) -> str:
    """The first NAMED items and a count of the rest."""
    more = f" and {len(items) - NAMED} more" if len(items) > NAMED else ""
    return ", ".join(items[:NAMED]) + more


# --- the compile-time view -------------------------------------------------------------------------------


def _elements(dims: Iterable[int]) -> int:
    return math.prod(int(d) for d in dims)


def _small_initializer_values(model: onnx.ModelProto, folder: Path) -> dict[str, np.ndarray]:
    return {
        tensor.name: numpy_helper.to_array(tensor, base_dir=str(folder))
        for tensor in model.graph.initializer
        if _elements(tensor.dims) <= FOLD_LIMIT
    }


def _light_model(model: onnx.ModelProto, known: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The graph with every folded node replaced by a Constant of its value and every large initializer
    turned into a graph input of its type and shape: all shape inference needs, without the weights."""
    graph = onnx.GraphProto(name=model.graph.name)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    declared = {value.name for value in graph.input}
    for tensor in model.graph.initializer:
        if tensor.name in known:
            graph.initializer.append(numpy_helper.from_array(known[tensor.name], tensor.name))
        elif tensor.name not in declared:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
    for node in model.graph.node:
        outputs = [name for name in node.output if name]
        if node.op_type != "Constant" and outputs and all(name in known for name in outputs):
            graph.node.extend(
                onnx.helper.make_node("Constant", [], [name], value=numpy_helper.from_array(known[name], name))
                for name in outputs
            )
        else:
            graph.node.append(node)
    light = onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    light.functions.extend(model.functions)
    return light


def value_type(value: onnx.ValueInfoProto) -> ValueType:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "undefined"
    if not tensor.HasField("shape"):
        return ValueType(dtype, None)
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
    return ValueType(dtype, dims)


def _infer(light: onnx.ModelProto) -> dict[str, ValueType]:
    inferred = onnx.shape_inference.infer_shapes(light, data_prop=True)
    graph = inferred.graph
    values = {value.name: value_type(value) for value in [*graph.input, *graph.value_info, *graph.output]}
    values.update({tensor.name: _tensor_type(tensor) for tensor in graph.initializer})
    return values


def _tensor_type(tensor: onnx.TensorProto) -> ValueType:
    return ValueType(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).name, tuple(tensor.dims))


def _static(value: ValueType | None) -> bool:
    return value is not None and value.dims is not None and all(isinstance(d, int) for d in value.dims)


def _small(value: ValueType | None) -> bool:
    """Whether a value's inferred shape is static and small enough to evaluate."""
    if not _static(value) or value is None or value.dims is None:
        return False
    return math.prod(d for d in value.dims if isinstance(d, int)) <= FOLD_LIMIT


def _shape_value(node: onnx.NodeProto, value: ValueType) -> np.ndarray:
    """What a Shape node returns for a statically shaped input (its start and end attributes applied)."""
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    dims = np.array(value.dims, dtype=np.int64)
    return dims[attributes.get("start", 0) : attributes.get("end", len(dims))]


def _constant_node(node: onnx.NodeProto, constant: set[str], values: dict[str, ValueType]) -> bool:
    if node.op_type == "Constant":
        return True
    if node.op_type == "Shape":
        return _static(values.get(node.input[0])) or node.input[0] in constant
    if node.op_type in _NONDETERMINISTIC or any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
        return False
    inputs = [name for name in node.input if name]
    return bool(inputs) and all(name in constant for name in inputs) and node.domain in STANDARD_DOMAINS


def _evaluate(node: onnx.NodeProto, known: dict[str, np.ndarray], values: dict[str, ValueType]) -> None:
    """Add the node's outputs to `known` when its inputs are known and its outputs small."""
    outputs = [name for name in node.output if name]
    if node.op_type == "Shape" and _static(values.get(node.input[0])):
        known[node.output[0]] = _shape_value(node, values[node.input[0]])
        return
    if not all(_small(values.get(name)) for name in outputs):
        return
    if not all(name in known for name in node.input if name):
        return
    try:
        results = ReferenceEvaluator(node).run(None, {name: known[name] for name in node.input if name})
    except Exception:  # noqa: BLE001 - an op the reference evaluator lacks stays unevaluated, still constant
        return
    for name, result in zip(node.output, results, strict=False):
        if name and np.asarray(result).size <= FOLD_LIMIT:
            known[name] = np.asarray(result)


def _fold_round(
    model: onnx.ModelProto, constant: set[str], known: dict[str, np.ndarray], values: dict[str, ValueType]
) -> bool:
    """One pass in graph order; True if anything new became known."""
    before = (len(constant), len(known))
    for node in model.graph.node:
        if _constant_node(node, constant, values):
            constant.update(name for name in node.output if name)
            _evaluate(node, known, values)
    return (len(constant), len(known)) != before


def _view(model: onnx.ModelProto, folder: Path) -> CompileTimeView:
    constant = {tensor.name for tensor in model.graph.initializer}
    known = _small_initializer_values(model, folder)
    values = _infer(_light_model(model, known))
    rounds = 1
    while rounds < MAX_ROUNDS and _fold_round(model, constant, known, values):
        values = _infer(_light_model(model, known))
        rounds += 1
    inputs = frozenset(value.name for value in model.graph.input) - {t.name for t in model.graph.initializer}
    return CompileTimeView(model, frozenset(constant), inputs, values, rounds, known)


_LAST: tuple[tuple[Path, int, int], CompileTimeView] | None = None


def compile_time_view(artifact: Artifact) -> CompileTimeView:
    """The folded view of the artifact's graph, made once for the checks that read it one after another."""
    global _LAST
    model = load_structure(artifact)
    stat = artifact.onnx_path.stat()
    key = (artifact.onnx_path, stat.st_mtime_ns, stat.st_size)
    if _LAST is None or _LAST[0] != key:
        _LAST = (key, _view(model, artifact.folder))
    return _LAST[1]


def view_or_failure(artifact: Artifact, check: str) -> CompileTimeView | CheckResult:
    try:
        return compile_time_view(artifact)
    except ArtifactError as exc:
        return failed(check, str(exc))
    except Exception as exc:  # noqa: BLE001 - shape inference and decoding errors are reported as text
        return failed(check, f"cannot infer the graph's shapes: {type(exc).__name__}: {first_line(exc)}")


def grouped(found: dict[tuple[str, str], list[str]]) -> list[str]:
    """One problem per (what, why), naming its first nodes: a dynamic graph breaks one rule many times."""
    return [f"{what} ({named(nodes)}): {why}" for (what, why), nodes in found.items()]
