"""finite_constants: no NaN, no infinity and nothing beyond the profile's bound among a static graph's constants.

An NPU computes in fp16: a constant above 65504 becomes infinity there, and a `-inf` mask is rewritten by the
compiler (RKNN: to -10000) whether we meant it or not. The mask policy (conformance/profiles/mask.py) makes it
finite on purpose; this check holds every graph to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import uses_external_data

from conformance.artifact import Artifact, ArtifactError
from conformance.graph import all_nodes, load_structure
from conformance.profiles.fold import FLOAT_TYPES, ValueType, compile_time_view, label, named
from conformance.profiles.rules import ProfileRules
from conformance.results import CheckResult, failed, first_line, verdict

CHECK_FINITE = "finite_constants"
CHUNK = 1 << 22  # elements scanned at a time
FLOAT_NAMES = frozenset({"float32", "float16", "float64", "bfloat16"})
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}

# --- finite_constants --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scan:
    nan: int = 0
    neg_inf: int = 0
    pos_inf: int = 0
    over: int = 0  # finite, but beyond the bound
    largest: float = 0.0  # finite magnitude


def _scan(array: np.ndarray, bound: float) -> _Scan:
    """NaN, inf and out-of-bound counts, a chunk at a time (a weight can be 100 MB)."""
    flat = array.reshape(-1)
    nan = neg_inf = pos_inf = over = 0
    largest = 0.0
    for start in range(0, flat.size, CHUNK):
        chunk = flat[start : start + CHUNK].astype(np.float64)
        finite = np.isfinite(chunk)
        nan, neg_inf = nan + int(np.isnan(chunk).sum()), neg_inf + int(np.isneginf(chunk).sum())
        pos_inf += int(np.isposinf(chunk).sum())
        magnitude = np.abs(chunk[finite])
        if magnitude.size:
            over += int((magnitude > bound).sum())
            largest = max(largest, float(magnitude.max()))
    return _Scan(nan, neg_inf, pos_inf, over, largest)


Constant = tuple[str, str, onnx.TensorProto | np.ndarray]  # where, the value's name in the graph, the value


def _constant_tensors(model: onnx.ModelProto) -> Iterator[Constant]:
    """Every float constant: initializers, Constant node values, ConstantOfShape fill values."""
    for tensor in model.graph.initializer:
        if tensor.data_type in FLOAT_TYPES:
            yield f"initializer {tensor.name!r}", tensor.name, tensor
    for node in all_nodes(model):
        if node.op_type not in ("Constant", "ConstantOfShape"):
            continue
        for attribute in node.attribute:
            where, output = f"{label(node)} attribute {attribute.name}", node.output[0]
            if attribute.type == attribute.TENSOR and attribute.t.data_type in FLOAT_TYPES:
                yield where, output, attribute.t
            elif attribute.type == attribute.FLOAT:
                yield where, output, np.array([attribute.f], dtype=np.float32)
            elif attribute.type == attribute.FLOATS:
                yield where, output, np.array(attribute.floats, dtype=np.float32)


def _consumers(model: onnx.ModelProto) -> dict[str, list[str]]:
    users: dict[str, list[str]] = defaultdict(list)
    for node in all_nodes(model):
        for name in node.input:
            users[name].append(label(node))
    return users


def _finite_problem(where: str, scan: _Scan, used_by: list[str], rules: ProfileRules) -> str | None:
    parts = [
        f"{count} {what}"
        for count, what in ((scan.nan, "NaN"), (scan.neg_inf, "-inf"), (scan.pos_inf, "+inf"))
        if count
    ]
    if scan.over:
        parts.append(f"{scan.over} values beyond +-{rules.constant_bound:g} (largest {scan.largest:g})")
    if not parts:
        return None
    users = f", used by {named(used_by)}" if used_by else ""
    return f"{where} holds {', '.join(parts)}{users}: {rules.constants_rule.describe()}"


def _sparse_problems(model: onnx.ModelProto, rules: ProfileRules) -> list[str]:
    """Sparse constants hold values a dense scan would not see, and NPU compilers take dense tensors."""
    names = [t.values.name for t in model.graph.sparse_initializer]
    names += [label(n) for n in all_nodes(model) if any(a.name == "sparse_value" for a in n.attribute)]
    return (
        [f"sparse constants ({named(names)}): not scanned, and not what an NPU takes; store them dense"]
        if names
        else []
    )


def computed_constants(artifact: Artifact, model: onnx.ModelProto) -> tuple[dict[str, np.ndarray], str | None]:
    """The float values a compiler computes at compile time and feeds to run-time work (a mask made by a Div
    of stored constants, say): evaluated in onnxruntime, which computes only what the requested outputs need.
    A static graph's inputs are fed zeros; nothing computed at compile time reads them."""
    view = compile_time_view(artifact)
    stored = {t.name for t in model.graph.initializer}
    stored |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    wanted = [
        name
        for node in model.graph.node
        if view.folded(node) and node.op_type != "Constant"
        for name in node.output
        if name and name not in stored and view.values.get(name, ValueType("", None)).dtype in FLOAT_NAMES
    ]
    folded = {name: view.known[name] for name in wanted if name in view.known}
    rest = [name for name in wanted if name not in view.known]  # too large for the fold to have evaluated
    if not rest:
        return folded, None
    try:
        return {**folded, **_evaluate_outputs(artifact, rest)}, None
    except Exception as exc:  # noqa: BLE001 - a value that cannot be computed cannot be vouched for
        why = f"{type(exc).__name__}: {first_line(exc)}"
        return folded, f"computed constants ({named(rest)}) cannot be evaluated, so cannot be vouched for: {why}"


def _evaluate_outputs(artifact: Artifact, names: list[str]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    full = onnx.load(str(artifact.onnx_path), load_external_data=True)
    full.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in names)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    session = ort.InferenceSession(full.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {
        i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], dtype=_ORT_DTYPES.get(i.type, np.float32))
        for i in session.get_inputs()
    }
    return dict(zip(names, session.run(names, feeds), strict=True))


def check_finite_constants(artifact: Artifact, rules: ProfileRules) -> CheckResult:
    """Every float constant finite and within the profile's bound (fp16's largest finite value): an NPU computes
    in fp16, where anything larger is inf. Values are read a tensor at a time, external data included."""
    try:
        model = load_structure(artifact)
    except ArtifactError as exc:
        return failed(CHECK_FINITE, str(exc))
    users = _consumers(model)
    problems: list[str] = []
    tensors = elements = 0
    largest = 0.0
    for where, name, tensor in _constant_tensors(model):
        try:
            array = tensor if isinstance(tensor, np.ndarray) else numpy_helper.to_array(tensor, str(artifact.folder))
        except (OSError, ValueError) as exc:
            problems.append(f"{where} cannot be read: {type(exc).__name__}: {first_line(exc)}")
            continue
        scan = _scan(array, rules.constant_bound)
        tensors, elements, largest = tensors + 1, elements + array.size, max(largest, scan.largest)
        problem = _finite_problem(where, scan, users.get(name, []), rules)
        if problem:
            problems.append(problem)
    problems += _sparse_problems(model, rules)
    computed, problem = computed_constants(artifact, model)
    problems += [problem] if problem else []
    for name, array in computed.items():
        scan = _scan(array, rules.constant_bound)
        tensors, elements, largest = tensors + 1, elements + array.size, max(largest, scan.largest)
        problem = _finite_problem(f"computed constant {name!r}", scan, users.get(name, []), rules)
        problems += [problem] if problem else []
    external = any(uses_external_data(t) for t in model.graph.initializer)
    figures = {
        "float_constants": tensors,
        "computed_constants": len(computed),
        "elements": elements,
        "largest_magnitude": largest,
        "external": external,
    }
    return verdict(CHECK_FINITE, problems, figures, f"{tensors} float constants finite, |x| <= {largest:g}")
