"""Realised precision: the graph's weights are stored in the precision its case claims, whatever it is stamped.

A compile target's budget is looser than fp32's; without this check, an fp32 graph with a broken weight that
claimed int8 (in its manifest and its metadata stamp alike) would be judged by the int8 budget."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx

from conformance.artifact import Artifact, ArtifactError
from conformance.case import Precision, Target
from conformance.graph import load_structure
from conformance.results import CheckResult, failed, verdict

CHECK = "realised_precision"
MIN_SHARE = 0.9  # of the weights that the claimed precision covers (fp32 weights kept by policy stay below 10%)
FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
MATRIX_OPS = {"MatMul", "Gemm", "Conv"}
# onnxruntime's weight-only 4-bit MatMuls (B packs two weights a byte), by the precision each realises
FOUR_BIT_OPS = {Precision.INT4: "MatMulNBits", Precision.NF4: "MatMulBnb4"}


def _elements(tensor: onnx.TensorProto) -> int:
    return int(np.prod(tensor.dims, dtype=np.int64))


def stored_tensors(model: onnx.ModelProto) -> list[tuple[str, onnx.TensorProto]]:
    """(name, tensor) of every weight the graph stores: its initializers, and the values of its Constant nodes
    (the TorchScript exporter, as other tools call it, can leave every weight in one)."""
    constants = [
        (node.output[0], attribute.t)
        for node in model.graph.node
        if node.op_type == "Constant"
        for attribute in node.attribute
        if attribute.name == "value"
    ]
    return [(t.name, t) for t in model.graph.initializer] + constants


def stored_elements(model: onnx.ModelProto) -> Counter[str]:
    """Stored weight elements by storage type name (FLOAT, FLOAT16, INT8, ...), read from the graph's
    structure alone (external data is never loaded)."""
    counts: Counter[str] = Counter()
    for _, tensor in stored_tensors(model):
        counts[onnx.TensorProto.DataType.Name(tensor.data_type)] += _elements(tensor)
    return counts


def fp32_matrix_weights(model: onnx.ModelProto, types: frozenset[int] = frozenset({onnx.TensorProto.FLOAT})) -> int:
    """Elements of fp32 weights (or of `types`) that a MatMul, Gemm or Conv multiplies by directly: unquantised."""
    fp32 = {name: _elements(t) for name, t in stored_tensors(model) if t.data_type in types}
    used = {name for node in model.graph.node if node.op_type in MATRIX_OPS for name in node.input[1:2]}
    return sum(fp32[name] for name in used if name in fp32)


def _four_bit_nodes(model: onnx.ModelProto, ops: set[str]) -> list[onnx.NodeProto]:
    """The MatMulNBits (at bits 4, its default: 8 is a weight-only 8-bit graph) and MatMulBnb4 nodes among `ops`."""
    bits = {n.name: next((a.i for a in n.attribute if a.name == "bits"), 4) for n in model.graph.node}
    return [n for n in model.graph.node if n.op_type in ops and len(n.input) > 1 and bits[n.name] == 4]


def packed_four_bit(model: onnx.ModelProto, ops: set[str] | None = None) -> int:
    """Bytes of 4-bit weights that MatMulNBits and MatMulBnb4 (or just `ops`) unpack (two weights a byte)."""
    stored = {name: _elements(t) for name, t in stored_tensors(model) if t.data_type == onnx.TensorProto.UINT8}
    used = {n.input[1] for n in _four_bit_nodes(model, ops or set(FOUR_BIT_OPS.values()))}
    return sum(stored.get(name, 0) for name in used)


def _scale_types(model: onnx.ModelProto) -> set[str]:
    """The storage types of MatMulNBits' block scales (q4: float; q4f16: float16, with the compute)."""
    types = {name: onnx.TensorProto.DataType.Name(t.data_type) for name, t in stored_tensors(model)}
    return {types.get(n.input[2], "?") for n in _four_bit_nodes(model, {"MatMulNBits"}) if len(n.input) > 2}


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def check_realised_precision(artifact: Artifact) -> CheckResult:
    try:
        model = load_structure(artifact)
    except ArtifactError as exc:
        return failed(CHECK, str(exc))
    stored = stored_elements(model)
    floats = sum(stored[onnx.TensorProto.DataType.Name(t)] for t in FLOATS)
    packed = packed_four_bit(model)
    eight_bit = stored["INT8"] + stored["UINT8"] - packed  # 4-bit weights are stored packed in uint8
    left = fp32_matrix_weights(model)
    claimed = artifact.case.precision
    figures = {"claimed": str(claimed), "stored_elements": dict(stored), "fp32_matrix_weights": left}
    figures["four_bit_weights"] = 2 * packed
    problems = []
    four = 2 * packed + stored["INT4"] + stored["UINT4"]  # packed by onnxruntime's ops, or QDQ int4 tensors
    if claimed == Precision.FP32 and (stored["FLOAT16"] or stored["BFLOAT16"] or eight_bit or four):
        problems.append(
            f"claims fp32 but stores {stored['FLOAT16'] + stored['BFLOAT16']} 16-bit, {eight_bit} 8-bit and "
            f"{four} 4-bit weight elements"
        )
    elif claimed == Precision.FP16:
        share = figures["fp16_share"] = _share(stored["FLOAT16"], floats)
        if share < MIN_SHARE:
            problems.append(f"claims fp16 but only {share:.0%} of its float weights are fp16")
    elif claimed == Precision.INT8:
        share = figures["int8_share"] = _share(eight_bit, eight_bit + left)
        if share < MIN_SHARE:
            problems.append(
                f"claims int8 but only {share:.0%} of its matrix weights are 8-bit ({left} fp32 elements that "
                "MatMul, Gemm or Conv use directly)" + (f"; {2 * packed} weights are 4-bit" if packed else "")
            )
    elif claimed in FOUR_BIT_OPS:
        op, floating = FOUR_BIT_OPS[claimed], fp32_matrix_weights(model, frozenset(FLOATS))  # q4f16: fp16 others
        own = 2 * packed_four_bit(model, {op})
        share = figures["four_bit_share"] = _share(own, 2 * packed + floating)
        if share < MIN_SHARE:
            problems.append(
                f"claims {claimed} (weight-only 4-bit, {op}) but only {share:.0%} of its matrix weights are {op} "
                f"weights ({2 * packed - own} are another 4-bit op's; {floating} float elements that MatMul, Gemm "
                "or Conv use directly)"
            )
        scales, wanted = _scale_types(model), "FLOAT16" if artifact.case.target == Target.Q4F16 else "FLOAT"
        if claimed == Precision.INT4 and scales and scales != {wanted}:
            problems.append(f"claims {artifact.case.target}, whose MatMulNBits scales are {wanted}; they are {scales}")
    return verdict(CHECK, problems, figures, f"weights stored as {claimed} claims")
