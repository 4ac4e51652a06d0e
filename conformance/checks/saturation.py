"""int8_saturation: integer weights that x86 int8 kernels without VNNI would saturate, whatever CPU runs the check.

On x86 without VNNI (AVX2, and AVX-512 without avx512_vnni) onnxruntime's and oneDNN's u8 x s8 kernels multiply
with vpmaddubsw, which adds each pair of products in 16 bits, saturating. Two u8 activations times two
full-range int8 weights reach 2 * 255 * 128 = 65280, past int16's 32767, so the result depends on the CPU: an int8
bundle validated on a VNNI machine loses accuracy on an AVX2 server (measured on a Zen 3: ViT-B/32 image min
cosine 0.989 against 0.9993 on a Zen 4). onnxruntime runs S8S8 QDQ graphs as U8S8 on x86, and NNCF writes s8 or
u8 activations depending on calibration, so the rule reads every int8 weight, whatever activation type the graph
declares. The integers are the stored values the kernel multiplies (the zero point is applied afterwards).
uint8 weights run through U8U8 kernels, which widen to 16 bits before multiplying: they cannot saturate so.
The rule (its bounds, reason and source) is conformance/isa.toml's [int8_saturation].
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from conformance.artifact import Artifact
from conformance.case import Precision
from conformance.graph import all_nodes
from conformance.isa import SaturationRule, saturation_rule
from conformance.results import CheckResult, error_line, failed, skipped, verdict

CHECK = "int8_saturation"
SHOWN = 6
# Operator -> the inputs that may hold its weight (a constant there is one): integer operators take the
# integers directly, float operators take them through a DequantizeLinear (QDQ). A matrix product's constant
# may sit on either side.
INTEGER_WEIGHT_INPUT = {
    "MatMulInteger": (0, 1),
    "ConvInteger": (1,),
    "QLinearMatMul": (0, 3),
    "QLinearConv": (3,),
    "MatMulIntegerToFloat": (0, 1),
    "DynamicQuantizeMatMul": (1,),
    "QGemm": (0, 3),
    "QAttention": (1,),  # com.microsoft: onnxruntime's transformer optimiser fuses quantised attention into it
    "DynamicQuantizeLSTM": (1, 2),
}
# (A float MatMul's A side is left out: onnxruntime keeps a dequantised constant there as float work.)
FLOAT_WEIGHT_INPUT = {
    "MatMul": (1,),
    "Conv": (1,),
    "ConvTranspose": (1,),
    "Gemm": (0, 1),
    "FusedMatMul": (1,),
    "FusedConv": (1,),
}
EIGHT_BIT: dict[int, type[np.integer]] = {onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8}
# A DequantizeLinear's output may reach its MatMul through these (NNCF and the QDQ tools insert them).
PASS_THROUGH = {"Transpose", "Reshape", "Identity", "Unsqueeze", "Squeeze", "Flatten"}


@dataclass(frozen=True)
class Weight:
    node: str  # the operator's name and type, as a problem names it
    tensor: str
    values: np.ndarray | None  # None: 8-bit, but its integers cannot be known from the graph (`unknown` says why)
    unknown: str = ""


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.type == attribute.GRAPH else list(attribute.graphs):
                yield from _graphs(sub)


def _constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Initializers (of the main graph and of every subgraph) and Constant node values, by name."""
    found = {t.name: t for graph in _graphs(model.graph) for t in graph.initializer}
    for node in all_nodes(model):
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.type == attribute.TENSOR:
                    found[node.output[0]] = attribute.t
    return found


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {output: node for node in all_nodes(model) for output in node.output}


def _through(name: str, producers: dict[str, onnx.NodeProto]) -> str:
    """The tensor a name reaches back to through value-preserving reshapes and transposes (a runtime folds them
    into the weight, so its integers are the same)."""
    node = producers.get(name)
    while node is not None and node.op_type in PASS_THROUGH and node.input:
        name = node.input[0]
        node = producers.get(name)
    return name


def _dequantised_source(name: str, producers: dict[str, onnx.NodeProto]) -> str | None:
    """The integer tensor a float weight input was dequantised from, through pass-through operators."""
    node = producers.get(_through(name, producers))
    return node.input[0] if node is not None and node.op_type == "DequantizeLinear" else None


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _quantised_at_load(
    node: onnx.NodeProto, constants: dict[str, onnx.TensorProto], producers: dict[str, onnx.NodeProto], folder: Path
) -> np.ndarray | None:
    """A QuantizeLinear of constant float weights, which a runtime folds once at load: round(w / scale) plus the
    zero point, saturated to its type (in float32, as onnxruntime computes it), are the integers its kernel then
    multiplies. None where the input is not a constant (an activation, not a weight)."""
    given = [constants.get(_through(name, producers)) if name else None for name in node.input[:3]]
    stored, step, point = [*given, None, None, None][:3]
    if stored is None or step is None:
        return None
    if len(node.input) > 2 and node.input[2] and point is None:
        raise ValueError("its zero point is computed at run time, so its integers cannot be known")
    if _attribute(node, "block_size", 0):
        raise ValueError("blocked quantisation (block_size) is not read by this rule")
    dtype = EIGHT_BIT.get(point.data_type if point is not None else _attribute(node, "output_dtype", 2))
    if dtype is None:
        return None  # another integer width: not what this rule is about
    weights, scale = (numpy_helper.to_array(t, base_dir=str(folder)).astype(np.float32) for t in (stored, step))
    zero = numpy_helper.to_array(point, base_dir=str(folder)).astype(np.float32) if point is not None else 0.0
    if np.ndim(scale) == 1 and weights.ndim > 1:  # per-axis: along `axis` (default 1)
        shape = [1] * weights.ndim
        shape[_attribute(node, "axis", 1) % weights.ndim] = -1
        scale, zero = scale.reshape(shape), np.reshape(zero, shape) if np.ndim(zero) else zero
    info = np.iinfo(dtype)
    return np.clip(np.round(weights / scale) + zero, info.min, info.max).astype(dtype)


def _integers(
    name: str, constants: dict[str, onnx.TensorProto], producers: dict[str, onnx.NodeProto], folder: Path
) -> np.ndarray | None:
    """The 8-bit integers behind a tensor name: a stored constant, or constant weights quantised at load, either
    behind reshapes or transposes."""
    source = _through(name, producers)
    tensor = constants.get(source)
    if tensor is not None:
        return numpy_helper.to_array(tensor, base_dir=str(folder)) if tensor.data_type in EIGHT_BIT else None
    node = producers.get(source)
    is_quantise = node is not None and node.op_type == "QuantizeLinear"
    return _quantised_at_load(node, constants, producers, folder) if node is not None and is_quantise else None


def int8_weights(model: onnx.ModelProto, folder: Path) -> Iterator[Weight]:
    """Every 8-bit weight (int8 or uint8) a matrix operator multiplies, as its kernel sees it (external data read
    from `folder`)."""
    constants, producers = _constants(model), _producers(model)
    for node in all_nodes(model):
        label = f"{node.name or node.output[0]!r} ({node.op_type})"
        names: list[str] = []
        if node.op_type in INTEGER_WEIGHT_INPUT:
            names = [node.input[i] for i in INTEGER_WEIGHT_INPUT[node.op_type] if i < len(node.input)]
        elif node.op_type in FLOAT_WEIGHT_INPUT:
            indices = FLOAT_WEIGHT_INPUT[node.op_type]
            sources = [_dequantised_source(node.input[i], producers) for i in indices if i < len(node.input)]
            names = [s for s in sources if s]
        for name in names:
            try:
                values = _integers(name, constants, producers, folder)
            except ValueError as exc:
                yield Weight(label, name, None, str(exc))
                continue
            if values is not None:
                yield Weight(label, name, values)


WEIGHT_ONLY = (
    "does not apply to a weight-only 4-bit graph (MatMulNBits, MatMulBnb4): its weights dequantise to float and "
    "multiply in float or, at MatMulNBits' accuracy_level 4, in int8 at |w| <= 15, far inside the bounds where a "
    "u8 x s8 pair sum saturates"
)


def check_int8_saturation(
    artifact: Artifact, deploy_isa: frozenset[str] = frozenset(), rule: SaturationRule | None = None
) -> CheckResult:
    """Fails when an int8 weight leaves [weight_min, weight_max], unless the graph records a runtime option that
    avoids the saturating kernels, or the run (or bundle) declares deployment CPUs that have VNNI or AMX."""
    rule = rule or saturation_rule()
    if artifact.case.precision in (Precision.INT4, Precision.NF4):
        return skipped(CHECK, WEIGHT_ONLY)
    try:
        model = onnx.load(str(artifact.onnx_path), load_external_data=False)
        weights = list(int8_weights(model, artifact.folder))
    except Exception as exc:  # noqa: BLE001 - a graph or weight file the check cannot read fails it
        return failed(CHECK, f"could not read the int8 weights: {error_line(exc)}")
    bounds = f"[{rule.weight_min}, {rule.weight_max}]"
    unknown = [f"{w.node} weight {w.tensor!r}: {w.unknown}" for w in weights if w.values is None]
    if unknown:  # an integer weight this rule cannot read is not one it may pass
        return failed(CHECK, f"{len(unknown)} 8-bit weights cannot be checked: {'; '.join(unknown[:SHOWN])}")
    unsigned = sum(w.values is not None and w.values.dtype == np.uint8 for w in weights)
    outside = []
    for weight in weights:
        if weight.values is None or weight.values.dtype != np.int8:
            continue
        count = int(((weight.values < rule.weight_min) | (weight.values > rule.weight_max)).sum())
        if count:
            span = f"[{int(weight.values.min())}, {int(weight.values.max())}]"
            outside.append(f"{weight.node} weight {weight.tensor!r} spans {span}: {count} of {weight.values.size}")
    figures: dict[str, object] = {
        "int8_weight_tensors": len(weights) - unsigned,
        "uint8_weight_tensors": unsigned,
        "outside_range": len(outside),
        "range": bounds,
        "rule": rule.reason,
        "source": rule.source,
    }
    if not weights:
        return failed(CHECK, "no 8-bit weight found: an int8 graph whose matrix weights are not 8-bit", **figures)
    if not outside:
        signed = f"{len(weights) - unsigned} int8 weight tensors within {bounds}"
        return verdict(CHECK, [], figures, f"{signed}; {unsigned} uint8 (U8U8 kernels widen before multiplying)")
    options = artifact.runtime_options
    # onnxruntime's option: OpenVINO or a compiler would ignore it, so it makes nothing safe there.
    on_ort = artifact.case.target.runtime == "onnxruntime"
    safe = {k: v for k, v in rule.safe_runtime_options.items() if on_ort and options.get(k) == v}
    accepted = sorted(deploy_isa & rule.accepting_isa)
    figures.update(runtime_options=options, deploy_isa=sorted(deploy_isa), examples=outside[:SHOWN])
    where = f"{len(outside)} of {len(weights) - unsigned} int8 weight tensors leave {bounds}"
    if safe:
        setting = ", ".join(f"{k}={v}" for k, v in safe.items())
        return verdict(
            CHECK,
            [],
            figures,
            f"{where}; safe only under {setting}, which the graph records and the suite set: every deployment "
            "must set it too, with graph optimisation at ORT_ENABLE_EXTENDED or higher (below that the weights stay "
            "s8 and saturate)",
        )
    if accepted:
        return verdict(
            CHECK,
            [],
            figures,
            f"{where}; risk accepted: declared for CPUs with {', '.join(accepted)} "
            "(deploy_isa), where it cannot saturate; on other x86 CPUs it would",
        )
    shown = "; ".join(outside[:SHOWN]) + (f"; and {len(outside) - SHOWN} more" if len(outside) > SHOWN else "")
    return failed(
        CHECK,
        f"{where} ({rule.reason}; source: {rule.source}). {shown}. Fix: quantise with 7-bit weights "
        "(onnxruntime reduce_range=True, NNCF overflow_fix=ENABLE), or declare the deployment CPUs "
        "(--deploy-isa, manifest deploy_isa)",
        **figures,
    )
