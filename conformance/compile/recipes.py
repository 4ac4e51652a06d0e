"""The compile targets, one recipe each: the single table `--target`, the cache, bundles and the report read."""

from __future__ import annotations

from dataclasses import replace

from conformance.case import Target
from conformance.compile.fp16 import build_fp16
from conformance.compile.int8 import build_int8_dynamic, build_int8_static, calibration_inputs
from conformance.compile.openvino import bf16_unsupported, build_openvino, build_openvino_int8
from conformance.compile.ort_opt import build_ort_opt
from conformance.compile.recipe import Recipe
from conformance.compile.rknn import build_rknn, rknn_missing, rknn_version

RECIPES: dict[Target, Recipe] = {
    recipe.target: recipe
    for recipe in (
        Recipe(
            Target.ORT_OPT,
            version=2,  # 2: fusions after ORT's basic optimisations (TorchScript exports fused no SkipLayerNorm)
            tool="onnxruntime",
            summary="onnxruntime.transformers fusions (model type clip, after ORT's basic optimisations), then "
            "the offline optimiser at ORT_ENABLE_EXTENDED: portable across CPUs, unlike ALL's layout transforms",
            build=build_ort_opt,
            settings={"model_type": "clip", "fusion_opt_level": 1, "level": "ORT_ENABLE_EXTENDED"},
            domains=frozenset({"com.microsoft"}),
        ),
        Recipe(
            Target.FP16,
            version=3,  # 2: nodes sorted topologically after conversion; 3: stale value_info dropped
            tool="onnxruntime",
            summary="onnxruntime.transformers.float16, fp32 inputs and outputs; LayerNormalization and Softmax "
            "kept fp32; non-finite mask constants made -65504 first",
            build=build_fp16,
            settings={"keep_fp32": ["LayerNormalization", "Softmax"], "finite_mask": True},
        ),
        Recipe(
            Target.INT8_DYNAMIC,
            # 2: 7-bit weights (reduce_range), so x86 CPUs without VNNI cannot saturate them (isa.toml)
            version=2,
            tool="onnxruntime",
            summary="quantize_dynamic: 7-bit int8 per-channel weights (reduce_range: exact on x86 with or without "
            "VNNI), uint8 run-time activations (U8S8 QOperator) on MatMul and Gemm; everything else fp32",
            build=build_int8_dynamic,
            settings={
                "op_types": ["MatMul", "Gemm"],
                "per_channel": True,
                "weight_type": "QInt8",
                "reduce_range": True,
            },
        ),
        Recipe(
            Target.INT8_STATIC,
            version=2,  # 2: 7-bit weights (reduce_range); onnxruntime runs S8S8 QDQ as U8S8 on x86
            tool="onnxruntime",
            summary="quantize_static: QDQ S8S8, 7-bit per-channel weights (reduce_range: onnxruntime runs S8S8 as "
            "U8S8 on x86, exact with or without VNNI), MinMax calibration on the suite's deterministic inputs; "
            "MatMul, Gemm and Conv only, LayerNorm, Softmax and residual Adds fp32",
            build=build_int8_static,
            settings={
                "op_types": ["MatMul", "Gemm", "Conv"],
                "per_channel": True,
                "weight_type": "QInt8",
                "activation_type": "QInt8",
                "reduce_range": True,
                "calibration_items": 16,
                "calibration_batch": 8,
            },
            calibration=calibration_inputs,
            min_opset=13,  # per-channel QuantizeLinear / DequantizeLinear (the `axis` attribute)
        ),
        Recipe(
            Target.OPENVINO,
            version=1,
            tool="openvino",
            summary="the fp32 export, read by OpenVINO directly and compiled for its CPU plugin at the f32 "
            "inference precision hint",
            build=build_openvino,
            settings={"device": "CPU", "hint": "f32"},
        ),
        Recipe(
            Target.OPENVINO_BF16,
            version=1,
            tool="openvino",
            summary="the fp32 export compiled by OpenVINO's CPU plugin at the bf16 inference precision hint "
            "(only on a CPU with bf16: elsewhere the hint would fall back to f32 under a bf16 name)",
            build=build_openvino,
            settings={"device": "CPU", "hint": "bf16"},
            precondition=bf16_unsupported,
        ),
        Recipe(
            Target.OPENVINO_INT8,
            version=2,  # 2: overflow_fix enable (7-bit weights everywhere, not only the first layer)
            tool="nncf",
            summary="NNCF post-training quantisation of the ONNX graph (QDQ, model type transformer, preset "
            "performance, SmoothQuant off, overflow_fix on every layer: 7-bit weights that CPUs without VNNI cannot "
            "saturate), calibrated on the suite's deterministic inputs; run by OpenVINO's CPU plugin",
            build=build_openvino_int8,
            settings={
                "device": "CPU",
                "hint": "f32",
                "preset": "performance",
                "smooth_quant": False,
                "overflow_fix": "enable",
                "calibration_items": 16,
            },
            calibration=calibration_inputs,
            min_opset=13,
        ),
        Recipe(
            Target.RKNN,
            version=1,
            tool="rknn-toolkit2",
            summary="rknn-toolkit2 builds the npu-static graph for the NPU in fp16 (no quantisation) and runs "
            "it in its x86 simulator, in its own environment (python -m conformance toolchain install rknn)",
            build=build_rknn,
            settings={"platform": "rk3588", "do_quantization": False},
            max_opset=19,  # load_onnx: "Unsupport onnx opset 20, need <= 19!"
            precondition=rknn_missing,
            version_of_tool=rknn_version,
            sources=("conformance.toolchains.simulate", "conformance.toolchains.rknn_worker"),
        ),
    )
}


def recipe_for(target: Target, rknn_platform: str | None = None) -> Recipe:
    """The target's recipe; rknn's built for `rknn_platform` (--rknn-platform: the SoC, part of its settings and so
    of its cache key) where one is given."""
    recipe = RECIPES[target]
    if target == Target.RKNN and rknn_platform is not None:
        return replace(recipe, settings={**recipe.settings, "platform": rknn_platform})
    return recipe


# The operator domains beyond ONNX's that a 4-bit graph of another tool uses: onnxruntime's contrib operators
# (MatMulNBits, MatMulBnb4), which its quantisers write and only onnxruntime runs.
ELSEWHERE_DOMAINS = frozenset({"com.microsoft"})


def allowed_domains(target: Target) -> frozenset[str]:
    """Operator domains beyond ONNX's that the target's graphs may use: its recipe's (none for an export)."""
    if target.elsewhere:
        return ELSEWHERE_DOMAINS
    return recipe_for(target).domains if target.compiled else frozenset()
