"""`openvino`, `openvino-bf16` and `openvino-int8`: OpenVINO reads our ONNX directly and compiles it for the CPU.

- `openvino` and `openvino-bf16` ship the fp32 export unchanged: the precision is the CPU plugin's inference
  precision hint (f32, bf16), applied when OpenVINO compiles it. The build compiles once, so a graph OpenVINO
  cannot read fails here with its own words, and records how long that took.
- `openvino-int8` is NNCF's post-training quantisation of the ONNX graph (its ONNX backend: QuantizeLinear /
  DequantizeLinear pairs that OpenVINO runs as int8), model type transformer (NNCF keeps LayerNorm, Softmax and
  the residual adds in floating point for it), calibrated on the suite's deterministic inputs (hashed into the
  cache key, as int8-static's).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from conformance.case import Case, Target
from conformance.compile.int8 import calibration_inputs
from conformance.encoders import INPUT_NAME
from conformance.graph import copy_graph, save_graph


def _compile_once(path: Path, hint: str) -> dict[str, Any]:
    from conformance.openvino_runtime import core, type_name

    started = time.perf_counter()
    compiled = core().compile_model(core().read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    seconds = time.perf_counter() - started
    return {
        "device": "CPU",
        "inference_precision": type_name(compiled.get_property("INFERENCE_PRECISION_HINT")),
        "cpu_capabilities": list(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
        "compile_seconds": round(seconds, 2),
    }


def build_openvino(source: Path, out: Path, case: Case, settings: Mapping[str, Any]) -> dict[str, Any]:
    copy_graph(source, out)
    return _compile_once(out, str(settings["hint"]))


def output_casts_to_identity(model: onnx.ModelProto) -> int:
    """NNCF 3.4's ONNX preprocessing drops no-op Casts and, when one produces a graph output, fails with a
    KeyError on the output's name (our TorchScript text graphs end in CLIP's `.type(self.dtype)`, a float-to-float
    Cast). The same no-op as an Identity survives it; returns how many were rewritten."""
    types = {v.name: v.type.tensor_type.elem_type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.input})
    outputs = {o.name for o in model.graph.output}
    rewritten = 0
    for node in model.graph.node:
        cast_to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and node.output[0] in outputs and types.get(node.input[0]) == cast_to:
            node.op_type = "Identity"
            del node.attribute[:]
            rewritten += 1
    return rewritten


def build_openvino_int8(source: Path, out: Path, case: Case, settings: Mapping[str, Any]) -> dict[str, Any]:
    import nncf

    assert case.encoder is not None
    items = calibration_inputs(case, settings)
    name = INPUT_NAME[case.encoder]
    dataset = nncf.Dataset([items[i : i + 1] for i in range(len(items))], lambda item: {name: item})
    model = onnx.load(str(source))
    output_casts_to_identity(model)
    # SmoothQuant (on by default for transformers) moved min cosine from 0.9992 to 0.9987 on ViT-B/32 text-split
    # here, and to 0.95 on text-full's edge texts: off.
    advanced: dict[str, object] = {}
    if "overflow_fix" in settings:
        advanced["overflow_fix"] = nncf.OverflowFix(settings["overflow_fix"])
    if not settings["smooth_quant"]:
        advanced["smooth_quant_alphas"] = nncf.AdvancedSmoothQuantParameters(matmul=-1, convolution=-1)
    quantised = nncf.quantize(
        model,
        dataset,
        model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset(settings["preset"]),
        subset_size=len(items),
        advanced_parameters=nncf.AdvancedQuantizationParameters(**advanced),
    )
    save_graph(quantised, out)
    ops = Counter(node.op_type for node in quantised.graph.node)
    found = _compile_once(out, str(settings["hint"]))
    kept = {op: ops[op] for op in ("LayerNormalization", "Softmax", "Add") if ops[op]}
    quantised_nodes = {op: ops[op] for op in ("QuantizeLinear", "DequantizeLinear")}
    return {**found, "quantised_nodes": quantised_nodes, "kept_fp32": kept}


def bf16_unsupported(case: Case) -> str | None:
    from conformance.openvino_runtime import cpu_supports

    if case.target == Target.OPENVINO_BF16 and not cpu_supports("bf16"):
        return "this CPU has no bf16 (OpenVINO's OPTIMIZATION_CAPABILITIES lacks BF16): openvino-bf16 would run f32"
    return None
