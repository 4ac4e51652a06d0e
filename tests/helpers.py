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


def slow_down(artifact: Artifact, folder: Path, width: int = 2048, repeats: int = 24) -> Artifact:
    """A copy whose graph adds an expensive subgraph that changes nothing: output + 0 * f(input).

    ORT cannot fold it away (0 * x is not 0 for NaN/inf), so every run pays `repeats` matmuls per item.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    slowed = copy_artifact(artifact, folder)
    model = onnx.load(str(slowed.onnx_path))
    graph = model.graph
    source, sink = graph.input[0].name, graph.output[0].name
    for node in graph.node:
        node.output[:] = ["raw_output" if name == sink else name for name in node.output]
    features = int(np.prod([d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]]))
    rng = np.random.default_rng(0)
    graph.initializer.extend([
        numpy_helper.from_array((rng.standard_normal((features, width)) * 0.01).astype(np.float32), "slow_w_in"),
        numpy_helper.from_array((rng.standard_normal((width, width)) * 0.01).astype(np.float32), "slow_w"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "slow_zero"),
    ])
    nodes = [helper.make_node("Flatten", [source], ["slow_flat"], axis=1),
             helper.make_node("MatMul", ["slow_flat", "slow_w_in"], ["slow_0"])]
    nodes += [helper.make_node("MatMul", [f"slow_{i}", "slow_w"], [f"slow_{i + 1}"]) for i in range(repeats)]
    nodes += [helper.make_node("ReduceSum", [f"slow_{repeats}"], ["slow_sum"], keepdims=1),
              helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
              helper.make_node("Add", ["raw_output", "slow_nothing"], [sink])]
    graph.node.extend(nodes)
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
    from onnx import helper, numpy_helper

    broken = copy_artifact(artifact, folder)
    model = onnx.load(str(broken.onnx_path), load_external_data=False)
    sink = model.graph.output[0].name
    raw = _rewire_output(model, sink)
    if mode == "nan":
        model.graph.initializer.append(numpy_helper.from_array(np.array(np.nan, dtype=np.float32), "poison"))
        model.graph.node.append(helper.make_node("Add", [raw, "poison"], [sink]))
    else:
        model.graph.initializer.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "poison_zero"))
        model.graph.node.extend([
            helper.make_node("Greater", [raw, "poison_zero"], ["poison_keep"]),
            helper.make_node("Cast", ["poison_keep"], ["poison_div"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Div", [raw, "poison_div"], [sink]),
        ])
    onnx.save(model, str(broken.onnx_path))
    broken.files = {p.name: p.stat().st_size for p in folder.iterdir() if p.name != "artifact.json"}
    return broken


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


def _median_seconds(artifact: Artifact, x, runs: int = 15) -> float:
    import time

    import numpy as np

    from conformance.runtime import run_onnx

    run_onnx(artifact, x)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run_onnx(artifact, x)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def slow_down_by(artifact: Artifact, folder: Path, factor: float, x) -> Artifact:
    """A copy whose ORT run on `x` takes about `factor` times as long, with identical outputs: the extra
    matmuls' cost is measured on a probe copy, then repeated as often as the target needs."""
    probe_repeats = 16
    base = _median_seconds(artifact, x)
    probe = slow_down(artifact, folder / "probe", width=1024, repeats=probe_repeats)
    per_repeat = max((_median_seconds(probe, x) - base) / probe_repeats, 1e-7)
    repeats = max(1, round((factor - 1) * base / per_repeat))
    return slow_down(artifact, folder / "slowed", width=1024, repeats=repeats)
