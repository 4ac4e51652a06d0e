"""Building good and deliberately broken tiny artifacts for the self-tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from conformance import weights
from conformance.artifact import Artifact
from conformance.encoders import EncoderKind
from conformance.export import ExportCache, Exporter, ExportSpec, export_to
from conformance.variants import Variant, get
from conformance.weights import Provenance

TINY_VIT = get("tiny-vit")
TINY_RN = get("tiny-rn")


def synthetic(variant: Variant, seed: int = 0) -> weights.LoadedModel:
    return weights.LoadedModel(weights.build_synthetic(variant, seed), Provenance.synthetic(seed))


def good(cache: ExportCache, variant: Variant, encoder: EncoderKind | str,
         exporter: Exporter = Exporter.TORCHSCRIPT) -> Artifact:
    loaded = synthetic(variant)
    return cache.get(ExportSpec(variant, EncoderKind(encoder), exporter), loaded.model, loaded.provenance)


def copy_artifact(artifact: Artifact, folder: Path) -> Artifact:
    """A private copy to break, leaving the shared cached one intact."""
    shutil.copytree(artifact.folder, folder)
    return Artifact.load(folder / "artifact.json")


def export_model(model: torch.nn.Module, variant: Variant, encoder: EncoderKind | str, folder: Path,
                 exporter: Exporter = Exporter.TORCHSCRIPT) -> Artifact:
    """Export an arbitrary (possibly broken) model through the suite's own exporter path."""
    folder.mkdir(parents=True, exist_ok=True)
    return export_to(folder, ExportSpec(variant, EncoderKind(encoder), exporter), model,
                     Provenance.synthetic(0))


def export_seed_recipe(model: torch.nn.Module, variant: Variant, folder: Path, exporter: Exporter,
                       batch: int = 1, dynamic: bool = True) -> Artifact:
    """The seed's image export as written: a batch-1 example and `dynamic_axes` (or none at all)."""
    from conformance.encoders import wrap
    from conformance.export import _quiet_export
    from conformance.inputs import example_batch

    folder.mkdir(parents=True, exist_ok=True)
    axes = {"image": {0: "batch_size"}, "output": {0: "batch_size"}} if dynamic else None
    with _quiet_export():
        torch.onnx.export(wrap(model, EncoderKind.IMAGE), (example_batch(variant, EncoderKind.IMAGE, batch),),
                          str(folder / "model.onnx"), dynamo=exporter == Exporter.DYNAMO, input_names=["image"],
                          output_names=["output"], dynamic_axes=axes)
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    return Artifact(folder=folder, variant=variant.name, encoder=EncoderKind.IMAGE, exporter=str(exporter),
                    opset=20, precision="fp32", provenance=Provenance.synthetic(0), token_dtype=None,
                    projection_file=None, files=files)


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
    nodes = [helper.make_node("Flatten", [source], ["slow_flat"], axis=1),
             helper.make_node("Cast", ["slow_flat"], ["slow_float"], to=onnx.TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["slow_float", "slow_axes"], ["slow_mean"], keepdims=1),
             helper.make_node("MatMul", ["slow_mean", "slow_w_in"], ["slow_wide"]),
             helper.make_node("Reshape", ["slow_wide", "slow_rows"], ["slow_0"])]
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
    raw = _rewire_output(model, sink)
    nodes, weights = _chain(source, "slow_sum", width, repeats)
    graph.initializer.extend([*weights, numpy_helper.from_array(np.array(0.0, dtype=np.float32), "slow_zero")])
    graph.node.extend([*nodes, helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
                       helper.make_node("Add", [raw, "slow_nothing"], [sink])])
    onnx.save(model, str(slowed.onnx_path))
    slowed.files = {p.name: p.stat().st_size for p in folder.iterdir() if p.name != "artifact.json"}
    return slowed


def _rewire_output(model, sink: str) -> str:
    """Rename the graph output's producer to `raw_output`, so new nodes can compute the output from it."""
    for node in model.graph.node:
        node.output[:] = ["raw_output" if name == sink else name for name in node.output]
    return "raw_output"


def poison_output(artifact: Artifact, folder: Path, mode: str) -> Artifact:
    """A copy whose output is non-finite: `nan` everywhere, or `inf` wherever the true output is negative
    (so only some elements and rows are hit, as an fp16 overflow would do)."""
    import numpy as np
    import onnx
    from onnx import helper

    def edit(model) -> None:
        sink = model.graph.output[0].name
        raw = _rewire_output(model, sink)
        if mode == "nan":
            model.graph.initializer.append(_const("poison", np.nan, np.float32))
            model.graph.node.append(helper.make_node("Add", [raw, "poison"], [sink]))
            return
        model.graph.initializer.append(_const("poison_zero", 0.0, np.float32))
        model.graph.node.extend([
            helper.make_node("Greater", [raw, "poison_zero"], ["poison_keep"]),
            helper.make_node("Cast", ["poison_keep"], ["poison_div"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Div", [raw, "poison_div"], [sink]),
        ])

    return edit_graph(artifact, folder, edit)


class VisualWrapper(torch.nn.Module):
    """Base of the deliberately broken image towers: wraps `model.visual`, whose output `forward` alters."""

    def __init__(self, visual: torch.nn.Module) -> None:
        super().__init__()
        self.visual = visual

    @property
    def conv1(self) -> torch.nn.Module:  # CLIP.dtype reads visual.conv1
        return self.visual.conv1


class OddBatchShift(VisualWrapper):
    """An image tower that is right at batch 1 and at even batch sizes, and off by 0.05 at odd sizes > 1:
    a bug only values at those sizes can show, since every shape is right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual(x)
        batch = x.new_ones(x.shape[0]).sum()
        odd = torch.remainder(batch, 2.0) * (batch > 1.5).to(out.dtype)
        return out + 0.05 * odd


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
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", dtype, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return _median_seconds(lambda a: session.run(None, {"x": a}), x) / repeats


def slow_down_by(artifact: Artifact, folder: Path, factor: float, x, width: int = 512,
                 measure=None) -> tuple[Artifact, float]:
    """A copy whose ORT run on `x` takes about `factor` times as long, with identical outputs, and the factor
    it achieved. The chain's cost is first timed on its own, then the repeats are corrected (up to three
    times) from `measure(artifact) -> seconds`, which should time the way the caller will (for latency:
    interleaved with torch, which evicts the caches the chain's weights sit in)."""
    from conformance.runtime import run_onnx

    measure = measure or (lambda a: _median_seconds(lambda b: run_onnx(a, b), x))
    base = measure(artifact)
    repeats = max(1, round((factor - 1) * base / _chain_seconds_per_repeat(x, width)))
    tried: list[tuple[float, Artifact]] = []
    for attempt in range(4):
        slowed = slow_down(artifact, folder / f"slowed{attempt}", width=width, repeats=repeats)
        achieved = measure(slowed) / base
        tried.append((achieved, slowed))
        if abs(achieved - factor) <= 0.06 * factor:
            break
        repeats = max(1, round(repeats * (factor - 1) / max(achieved - 1, 0.05)))
    achieved, slowed = min(tried, key=lambda pair: abs(pair[0] - factor))
    return slowed, achieved


def edit_graph(artifact: Artifact, folder: Path, edit) -> Artifact:
    """A copy of the artifact whose graph `edit(model)` changes in place."""
    import onnx

    broken = copy_artifact(artifact, folder)
    model = onnx.load(str(broken.onnx_path), load_external_data=False)
    edit(model)
    onnx.save(model, str(broken.onnx_path))
    broken.files = {p.name: p.stat().st_size for p in folder.iterdir() if p.name != "artifact.json"}
    return broken


def _const(name: str, value, dtype):
    import numpy as np
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def batch_not_in_shift(artifact: Artifact, folder: Path, keep: tuple[int, ...], delta: float = 0.05) -> Artifact:
    """output + delta unless the batch size is one of `keep`: consistent across rows at every other size."""
    import numpy as np
    import onnx
    from onnx import helper

    def edit(model) -> None:
        source, sink = model.graph.input[0].name, model.graph.output[0].name
        raw = _rewire_output(model, sink)
        model.graph.initializer.extend([_const("k_keep", list(keep), np.int64), _const("k_delta", delta, np.float32),
                                        _const("k_one", 1.0, np.float32), _const("k_0", [0], np.int64),
                                        _const("k_1", [1], np.int64)])
        model.graph.node.extend([
            helper.make_node("Shape", [source], ["k_shape"]),
            helper.make_node("Slice", ["k_shape", "k_0", "k_1"], ["k_batch"]),
            helper.make_node("Equal", ["k_batch", "k_keep"], ["k_eq"]),
            helper.make_node("Cast", ["k_eq"], ["k_eqf"], to=onnx.TensorProto.FLOAT),
            helper.make_node("ReduceMax", ["k_eqf"], ["k_any"], keepdims=0),
            helper.make_node("Sub", ["k_one", "k_any"], ["k_wrong"]),
            helper.make_node("Mul", ["k_wrong", "k_delta"], ["k_add"]),
            helper.make_node("Add", [raw, "k_add"], [sink]),
        ])

    return edit_graph(artifact, folder, edit)


def _shift_where(model, tensor: str, low: int, high: int, shift: int, dtype, prefix: str) -> None:
    """Replace `tensor` wherever it is consumed by `tensor + shift` where low <= tensor <= high."""
    from onnx import helper

    out = f"{prefix}_out"
    for node in model.graph.node:
        node.input[:] = [out if name == tensor else name for name in node.input]
    model.graph.initializer.extend([_const(f"{prefix}_lo", low - 1, dtype), _const(f"{prefix}_hi", high + 1, dtype),
                                    _const(f"{prefix}_sh", shift, dtype)])
    nodes = [helper.make_node("Greater", [tensor, f"{prefix}_lo"], [f"{prefix}_a"]),
             helper.make_node("Less", [tensor, f"{prefix}_hi"], [f"{prefix}_b"]),
             helper.make_node("And", [f"{prefix}_a", f"{prefix}_b"], [f"{prefix}_m"]),
             helper.make_node("Add", [tensor, f"{prefix}_sh"], [f"{prefix}_s"]),
             helper.make_node("Where", [f"{prefix}_m", f"{prefix}_s", tensor], [out])]
    producers = [i for i, node in enumerate(model.graph.node) if tensor in node.output]
    at = producers[0] + 1 if producers else 0
    for offset, node in enumerate(nodes):
        model.graph.node.insert(at + offset, node)


def shift_argmax_mid_context(artifact: Artifact, folder: Path) -> Artifact:
    """text-full pooling position EOT-1 whenever EOT sits at positions 16 to 74."""
    import numpy as np

    def edit(model) -> None:
        argmax = next(node for node in model.graph.node if node.op_type == "ArgMax")
        _shift_where(model, argmax.output[0], 16, 74, -1, np.int64, "mid")

    return edit_graph(artifact, folder, edit)


def shift_high_token_ids(artifact: Artifact, folder: Path) -> Artifact:
    """text-split embedding every id from 36000 up (but EOT) one row early, as a clamped table would."""
    import numpy as np

    def edit(model) -> None:
        source = model.graph.input[0].name
        _shift_where(model, source, 36000, 49405, -1, np.int32, "rare")

    return edit_graph(artifact, folder, edit)
