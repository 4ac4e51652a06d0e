"""Running an Artifact in OpenVINO on the CPU: the `openvino*` targets read our ONNX directly, no conversion."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from conformance.artifact import Artifact
from conformance.case import Precision, Target
from conformance.sessions import SessionStore

# The inference precision each target asks OpenVINO's CPU plugin for. openvino-int8's graph carries its own
# int8 (NNCF's QuantizeLinear/DequantizeLinear pairs); what is left between them runs in f32.
HINTS: dict[Target, str] = {Target.OPENVINO: "f32", Target.OPENVINO_BF16: "bf16", Target.OPENVINO_INT8: "f32"}


@cache
def core() -> Any:
    import openvino as ov

    return ov.Core()


def cpu_supports(hint: str) -> bool:
    """bf16 needs AVX512_BF16 or AMX; without it OpenVINO would silently run f32 under a bf16 name."""
    if hint == "f32":
        return True
    return hint.upper() in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compile_graph(artifact: Artifact, threads: int, hint: str | None = None) -> Any:
    config = {
        "INFERENCE_PRECISION_HINT": hint or HINTS[artifact.case.target],
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core().compile_model(core().read_model(str(artifact.onnx_path)), "CPU", config)
    # What the case claims, not what was asked: a bf16 target compiled at f32 (by a fallback, or by a wrong
    # hint) would pass the bf16 budget easily while shipping nothing it claims.
    wanted = "bf16" if artifact.case.precision == Precision.BF16 else "f32"
    applied = type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
    if applied != wanted:
        raise RuntimeError(f"OpenVINO compiled {artifact.case.id} at {applied}, not {wanted}")
    return compiled


def type_name(value: Any) -> str:
    """OpenVINO answers an element type (`f32`, `bf16`) as an object; its name is what a record wants."""
    return str(value.to_string()) if hasattr(value, "to_string") else str(value)


COMPILED: SessionStore[Any] = SessionStore(compile_graph)


def declared_type(artifact: Artifact, threads: int) -> str:
    """The input's element type in onnxruntime's spelling (tensor(float), tensor(int32), ...)."""
    element = COMPILED.get(artifact, threads).inputs[0].get_element_type().to_dtype()
    return {np.float32: "tensor(float)", np.int32: "tensor(int32)", np.int64: "tensor(int64)"}.get(
        element.type, f"tensor({element.name})"
    )


def run_openvino(artifact: Artifact, feed: np.ndarray, threads: int) -> np.ndarray:
    compiled = COMPILED.get(artifact, threads)
    return np.asarray(compiled(feed)[compiled.outputs[0]])
