"""The int8 canary: one MatMulInteger whose exact answer a CPU without VNNI cannot give.

uint8 activations of 255 times int8 weights of 127, summed over 64: exact, 2,072,640. x86 u8 x s8 kernels without
VNNI (vpmaddubsw, or SSSE3's pmaddubsw) add each pair of products in 16 bits first, and 2 x 255 x 127 = 64,770
saturates at 32,767: 32 pairs give 1,048,544. The probe runs it in the guest, so an emulated CPU is shown to do
int8 the way the CPU it claims to be does (`int8_saturates` in emulation.toml), not just to report its CPUID bits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

K, N = 64, 16
ACTIVATION, WEIGHT = 255, 127
EXACT = K * ACTIVATION * WEIGHT
SATURATED = (K // 2) * 32767
IR_VERSION = 8  # onnxruntime 1.20 reads IR <= 10; onnx.helper would stamp onnx's newest


def write_canary(path: Path) -> Path:
    # Imported here: this package is also read as pytest parses --emulate-cpu (conformance/parsing.py), where onnx's
    # import (0.7 s of ml_dtypes) would be paid by every run.
    import onnx
    from onnx import TensorProto, helper

    weights = helper.make_tensor("w", TensorProto.INT8, [K, N], np.full(K * N, WEIGHT, np.int8).tobytes(), raw=True)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])],
        "int8_canary",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, K])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, N])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=IR_VERSION)
    onnx.save(model, str(path))
    return path


def canary_input() -> np.ndarray:
    return np.full((1, K), ACTIVATION, np.uint8)
