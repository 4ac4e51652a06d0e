"""`int8-dynamic` and `int8-static`: onnxruntime's quantiser, on MatMul and Gemm (and Conv, statically) only.

- Dynamic: weights are quantised per output channel to int8 ahead of time; activations are quantised at run
  time by DynamicQuantizeLinear, whose only output type is uint8, so it is U8S8 in the QOperator form
  (DynamicQuantizeLinear + MatMulInteger). onnxruntime has no QDQ form of dynamic quantisation. The scale is
  computed over the whole activation tensor, so a row's output depends on the rest of its batch.
- Static: QDQ, S8S8 (onnxruntime's recommended default on x86 with VNNI), per-channel weights, activation
  ranges by MinMax on the suite's deterministic calibration inputs (hashed into the cache key).
- Both write 7-bit weights (`reduce_range`: int8 values in [-64, 64]). On x86 without VNNI the u8 x s8 kernels
  add pairs of products in 16 bits (vpmaddubsw); full-range weights saturate there, so a graph validated on a
  VNNI CPU lost accuracy on an AVX2 one (ViT-B/32 image min cosine 0.989 on a Zen 3). With 7-bit weights every
  product pair fits, the integer arithmetic is exact on any x86, and the outputs do not depend on the CPU.
  Measured on a VNNI CPU, the cost is accuracy, not speed (docs/targets.md, "int8 on any CPU"); the alternatives, U8U8
  weights or onnxruntime's `session.x64quantprecision`, keep 8 bits but ran 1.6x slower there.
- Both keep LayerNormalization, Softmax, the residual Adds, GELU and every other non-matrix operator in fp32:
  they are a few percent of the FLOPs, and quantising them is what zeroes features (optimum-quanto#216).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from conformance import inputs
from conformance.case import Case
from conformance.encoders import INPUT_NAME
from conformance.graph import save_graph

CALIBRATION_ITEMS = 5000  # far from the items every check feeds (0.., 1000..), so no check tests its own calibration
QUANTISED_OPS = {"MatMulInteger", "ConvInteger", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def calibration_inputs(case: Case, settings: Mapping[str, Any]) -> np.ndarray:
    assert case.encoder is not None
    return inputs.batch_for(case.variant, case.encoder, int(settings["calibration_items"]), CALIBRATION_ITEMS)


def _summary(path: Path) -> dict[str, Any]:
    """What was quantised, and which sensitive nodes were kept in fp32 (by operator, with their count)."""
    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(node.op_type for node in model.graph.node)
    return {
        "quantised_nodes": {op: n for op, n in sorted(ops.items()) if op in QUANTISED_OPS},
        "kept_fp32": {op: ops[op] for op in ("LayerNormalization", "Softmax", "Add") if ops[op]},
    }


def _count(path: Path, ops: tuple[str, ...]) -> int:
    return sum(node.op_type in ops for node in onnx.load(str(path), load_external_data=False).graph.node)


def _quantise_into(out: Path, quantise: Callable[[Path], object]) -> None:
    """Run `quantise(path)` into a scratch folder, then save its graph as `out` in the suite's layout: the
    quantiser names its external data as it likes, and scratch files must not become artifact files."""
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantising-") as scratch:
        quantised = Path(scratch) / "int8.onnx"
        quantise(quantised)
        save_graph(onnx.load(str(quantised)), out)


def build_int8_dynamic(source: Path, out: Path, case: Case, settings: Mapping[str, Any]) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = tuple(settings["op_types"])
    _quantise_into(
        out,
        lambda quantised: quantize_dynamic(
            str(source),
            str(quantised),
            op_types_to_quantize=list(ops),
            per_channel=bool(settings["per_channel"]),
            weight_type=QuantType[str(settings["weight_type"])],
            reduce_range=bool(settings.get("reduce_range", False)),
            use_external_data_format=True,
        ),
    )
    return {**_summary(out), "fp32_matmuls_left": _count(out, ops)}


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: one batch at a time, then None."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self._feeds = iter([{name: batch} for batch in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # the MinMax calibrator reads once; kept for the protocol
        pass


def build_int8_static(source: Path, out: Path, case: Case, settings: Mapping[str, Any]) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    assert case.encoder is not None
    data = calibration_inputs(case, settings)
    declared = onnx.load(str(source), load_external_data=False).graph.input[0].type.tensor_type.elem_type
    data = data.astype(onnx.helper.tensor_dtype_to_np_dtype(declared))  # int32 tokens for an int64 graph
    size = int(settings["calibration_batch"])
    batches = [data[i : i + size] for i in range(0, len(data), size)]
    reader = _Reader(INPUT_NAME[case.encoder], batches)
    _quantise_into(
        out,
        lambda quantised: quantize_static(
            str(source),
            str(quantised),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(settings["op_types"]),
            per_channel=bool(settings["per_channel"]),
            activation_type=QuantType[str(settings["activation_type"])],
            weight_type=QuantType[str(settings["weight_type"])],
            calibrate_method=CalibrationMethod.MinMax,
            reduce_range=bool(settings.get("reduce_range", False)),
            use_external_data_format=True,
            extra_options=dict(settings.get("extra_options", {})),
        ),
    )
    return {**_summary(out), "calibration_items": len(data)}
