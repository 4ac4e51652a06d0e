"""Slowed copies of a graph, for the latency self-tests: the same outputs, a chosen amount of extra work."""

from __future__ import annotations

from pathlib import Path

from conformance.artifact import Artifact
from tests.support.graph_edits import rewire_output
from tests.support.helpers import copy_artifact

ROWS_PER_ITEM = 64  # the chain works on 64 rows per input item: compute-bound GEMMs, not cache-bound GEMVs


def _chain(source: str, output: str, width: int, repeats: int) -> tuple[list, list]:
    """Nodes and weights of `repeats` [64 B, width] x [width, width] matmuls fed from `source`, reduced to one
    number in `output`. Each input is first reduced to its mean, so the extra weights stay small."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((1, ROWS_PER_ITEM * width)).astype(np.float32), "slow_w_in"),
        numpy_helper.from_array((rng.standard_normal((width, width)) * width**-0.5).astype(np.float32), "slow_w"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "slow_axes"),
        numpy_helper.from_array(np.array([-1, width], dtype=np.int64), "slow_rows"),
    ]
    nodes = [
        helper.make_node("Flatten", [source], ["slow_flat"], axis=1),
        helper.make_node("Cast", ["slow_flat"], ["slow_float"], to=onnx.TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["slow_float", "slow_axes"], ["slow_mean"], keepdims=1),
        helper.make_node("MatMul", ["slow_mean", "slow_w_in"], ["slow_wide"]),
        helper.make_node("Reshape", ["slow_wide", "slow_rows"], ["slow_0"]),
    ]
    nodes += [helper.make_node("MatMul", [f"slow_{i}", "slow_w"], [f"slow_{i + 1}"]) for i in range(repeats)]
    nodes.append(helper.make_node("ReduceSum", [f"slow_{repeats}"], [output], keepdims=0))
    return nodes, weights


def slow_down(artifact: Artifact, folder: Path, width: int = 512, repeats: int = 24) -> Artifact:
    """A copy whose graph adds an expensive subgraph that changes nothing: output + 0 * f(input).

    ORT cannot fold it away (0 * x is not 0 for NaN/inf), so every run pays the chain's matmuls per item.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    slowed = copy_artifact(artifact, folder)
    model = onnx.load(str(slowed.onnx_path))
    graph = model.graph
    source, sink = graph.input[0].name, graph.output[0].name
    raw = rewire_output(model, sink)
    nodes, weights = _chain(source, "slow_sum", width, repeats)
    graph.initializer.extend([*weights, numpy_helper.from_array(np.array(0.0, dtype=np.float32), "slow_zero")])
    graph.node.extend(
        [
            *nodes,
            helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
            helper.make_node("Add", [raw, "slow_nothing"], [sink]),
        ]
    )
    onnx.save(model, str(slowed.onnx_path))
    slowed.files = {p.name: p.stat().st_size for p in folder.iterdir() if p.name != "artifact.json"}
    return slowed


def _median_seconds(run, x, runs: int = 7) -> float:
    import time

    import numpy as np

    run(x)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _chain_seconds_per_repeat(x, width: int, repeats: int = 32) -> float:
    """Time the slow-down chain alone, in a model of its own, so no noise of the big graph is subtracted."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from conformance.runtime import threads

    nodes, weights = _chain("x", "y", width, repeats)
    dtype = TensorProto.FLOAT if x.dtype == np.float32 else TensorProto.INT32
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", dtype, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=9)  # IR 9: opset 20
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return _median_seconds(lambda a: session.run(None, {"x": a}), x) / repeats


def slow_down_by(
    artifact: Artifact, folder: Path, factor: float, x, width: int = 512, measure=None, attempts: int = 6
) -> tuple[Artifact, float]:
    """A copy whose ORT run on `x` takes about `factor` times as long, with identical outputs, and the factor
    it achieved. The chain's cost is first timed on its own against the graph's, then the repeats are corrected
    (up to `attempts` times) from `measure(artifact)`, a figure proportional to the run time, timing the slowed and
    the good copy back to back. `measure` should time the way the caller will; for latency, the paired ratio to
    torch eager timed in the same rounds, which cancels what a busy machine's drift does to two seconds figures
    taken one after the other (seconds calibrated a 1.7x copy to 1.37x under CI's load on a 2-core Zen 3)."""
    from conformance.runtime import run_onnx

    measure = measure or (lambda a: _median_seconds(lambda b: run_onnx(a, b), x))
    seconds = _median_seconds(lambda b: run_onnx(artifact, b), x)
    repeats = max(1, round((factor - 1) * seconds / _chain_seconds_per_repeat(x, width)))
    tried: list[tuple[float, Artifact]] = []
    for attempt in range(attempts):
        slowed = slow_down(artifact, folder / f"slowed{attempt}", width=width, repeats=repeats)
        # The good copy is measured again beside each slowed one: a shared machine drifts between attempts,
        # and one early base measured on a busy moment would skew every ratio after it.
        achieved = measure(slowed) / measure(artifact)
        tried.append((achieved, slowed))
        if abs(achieved - factor) <= 0.06 * factor:
            break
        repeats = max(1, round(repeats * (factor - 1) / max(achieved - 1, 0.05)))
    achieved, slowed = min(tried, key=lambda pair: abs(pair[0] - factor))
    return slowed, achieved
