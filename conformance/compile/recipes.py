"""The compile targets, one recipe each: the single table `--target`, the cache, bundles and the report read."""

from __future__ import annotations

from conformance.case import Target
from conformance.compile.fp16 import build_fp16
from conformance.compile.int8 import build_int8_dynamic, build_int8_static, calibration_inputs
from conformance.compile.ort_opt import build_ort_opt
from conformance.compile.recipe import Recipe

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
            version=1,
            tool="onnxruntime",
            summary="quantize_dynamic: int8 per-channel weights, uint8 run-time activations (U8S8 QOperator) "
            "on MatMul and Gemm; everything else fp32",
            build=build_int8_dynamic,
            settings={"op_types": ["MatMul", "Gemm"], "per_channel": True, "weight_type": "QInt8"},
        ),
        Recipe(
            Target.INT8_STATIC,
            version=1,
            tool="onnxruntime",
            summary="quantize_static: QDQ S8S8, per-channel weights, MinMax calibration on the suite's "
            "deterministic inputs; MatMul, Gemm and Conv only, LayerNorm, Softmax and residual Adds fp32",
            build=build_int8_static,
            settings={
                "op_types": ["MatMul", "Gemm", "Conv"],
                "per_channel": True,
                "weight_type": "QInt8",
                "activation_type": "QInt8",
                "calibration_items": 16,
                "calibration_batch": 8,
            },
            calibration=calibration_inputs,
            min_opset=13,  # per-channel QuantizeLinear / DequantizeLinear (the `axis` attribute)
        ),
    )
}


def recipe_for(target: Target) -> Recipe:
    return RECIPES[target]
