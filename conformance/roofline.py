"""An honest matmul peak: the best of several GEMM implementations at this run's thread count, beside the
theoretical figure. One implementation alone is not a peak: torch's sgemm goes through MKL, which is slow on
AMD CPUs, and a "roofline fraction" of 1.31 came out of it once."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper

from conformance.runtime import threads
from conformance.versions import cpu_flags, cpu_mhz

SIZE = 2048
REPEATS = 5
PROBE_IR_VERSION = 8  # opset 17's IR (onnx 1.12): read by onnxruntime 1.12 and later


def _best_seconds(call: Callable[[], object], repeats: int = REPEATS) -> float:
    call()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def matmul_model(size: int, seed: int = 0) -> onnx.ModelProto:
    """One MatMul of an [size, size] input by an [size, size] weight: the whole graph is the GEMM."""
    weight = np.random.default_rng(seed).standard_normal((size, size), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", size])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", size])],
        [numpy_helper.from_array(weight, "w")],
    )
    # An IR version every onnxruntime that pyproject.toml allows reads: make_model stamps onnx's newest (IR 14
    # with onnx 1.23), which onnxruntime 1.30 refuses.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=PROBE_IR_VERSION)


def ort_session(model: onnx.ModelProto, threads_: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads_
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.force_spinning_stop", "1")  # as the suite's sessions
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _gflops(size: int, seconds: float) -> float:
    return 2 * size**3 / seconds / 1e9


@cache
def matmul_peaks(size: int = SIZE) -> dict[str, float]:
    """GFLOP/s of an fp32 [size x size] @ [size x size] in torch (MKL or OpenBLAS), numpy (its BLAS) and
    onnxruntime (MLAS), each at its best of a few repeats."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    session = ort_session(matmul_model(size), threads())
    return {
        "torch": _gflops(size, _best_seconds(lambda: torch.mm(ta, tb))),
        "numpy": _gflops(size, _best_seconds(lambda: a @ b)),
        "onnxruntime": _gflops(size, _best_seconds(lambda: session.run(None, {"x": a}))),
    }


def theoretical_gflops(cores: int) -> float | None:
    """cores x clock x 2 FMA pipes x fp32 lanes of the widest vector ISA x 2 flops per FMA; None where the
    clock cannot be read. An upper bound: AMD Zen 4 runs AVX-512 as two 256-bit halves (half this)."""
    mhz, flags = cpu_mhz(), cpu_flags()
    if mhz is None:
        return None
    lanes = 16 if "avx512f" in flags else 8 if "fma" in flags else 4
    return cores * mhz / 1e3 * 2 * lanes * 2


def roofline(achieved_gflops: float) -> dict[str, Any]:
    peaks = matmul_peaks()
    peak = max(peaks.values())
    return {
        "matmul_peaks_gflops": peaks,
        "matmul_peak_gflops": peak,
        "matmul_peak_by": max(peaks, key=peaks.__getitem__),
        "theoretical_gflops": theoretical_gflops(threads()),
        "roofline_fraction": achieved_gflops / peak,
    }
