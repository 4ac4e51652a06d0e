"""`fp16`: fp16 weights and compute with fp32 inputs and outputs, under an explicit policy.

- LayerNormalization stays fp32: its variance sums squares, which overflow fp16 (65504) once activations
  pass ~256 (TensorRT#2564).
- Softmax stays fp32: it sums exponentials over 77 tokens (or 50 patches), where fp16's 11-bit mantissa
  loses the small probabilities.
- Mask constants are made finite first: every non-finite float constant (the causal mask's -inf) becomes
  fp16's lowest finite value, -65504. A row can then never be all -inf (NaN after softmax), and the graph
  carries the values NPU toolchains would rewrite it to anyway; exp(-65504 - max) is 0 in fp32 and fp16 alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from conformance.case import Case
from conformance.graph import save_graph

FP16_LOWEST = -65504.0


def _finite_tensor(tensor: onnx.TensorProto, bound: float) -> bool:
    """Rewrite a float tensor's non-finite values to +-bound in place; True if it had any."""
    if tensor.data_type != onnx.TensorProto.FLOAT:
        return False
    values = numpy_helper.to_array(tensor)
    if np.isfinite(values).all():
        return False
    fixed = np.nan_to_num(values, nan=0.0, posinf=bound, neginf=-bound).astype(np.float32)
    tensor.CopyFrom(numpy_helper.from_array(fixed, tensor.name))
    return True


def make_constants_finite(model: onnx.ModelProto, bound: float) -> list[str]:
    """Every initializer and Constant node value made finite; returns the names of those rewritten."""
    rewritten = [t.name for t in model.graph.initializer if _finite_tensor(t, bound)]
    for node in model.graph.node:
        if node.op_type != "Constant":
            continue
        for attribute in node.attribute:
            if attribute.name == "value" and _finite_tensor(attribute.t, bound):
                rewritten.append(node.output[0])
    return rewritten


def build_fp16(source: Path, out: Path, case: Case, settings: Mapping[str, Any]) -> dict[str, Any]:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = onnx.load(str(source))
    rewritten = make_constants_finite(model, -FP16_LOWEST) if settings["finite_mask"] else []
    keep = list(settings["keep_fp32"])
    converted = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, *keep], disable_shape_infer=False
    )
    # With keep_io_types the converter appends the input casts after their consumers: onnxruntime loads that,
    # but onnx.checker (and stricter compilers) refuse a graph that is not topologically sorted.
    OnnxModel(converted).topological_sort()
    # It also leaves value_info entries with their fp32 types on tensors that are fp16 now; strict shape
    # inference (onnx.checker's full check) refuses the contradiction. They are hints: drop them.
    del converted.graph.value_info[:]
    save_graph(converted, out)
    kept = Counter(node.op_type for node in converted.graph.node if node.op_type in keep)
    return {"kept_fp32": dict(sorted(kept.items())), "constants_made_finite": rewritten}
