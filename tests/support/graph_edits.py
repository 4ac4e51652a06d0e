"""Deliberately broken copies of a graph, edited in ONNX: the exports a check must catch."""

from __future__ import annotations

from pathlib import Path

from conformance.artifact import Artifact
from tests.support.helpers import copy_artifact


def pool_last_argmax(model) -> None:
    """Every ArgMax takes the last maximum (select_last_index=1, set once: an export may already state 0): a text
    graph that pools the last EOT instead of the first."""
    import onnx

    argmaxes = [n for n in model.graph.node if n.op_type == "ArgMax"]
    assert argmaxes, "the text graph pools with an ArgMax"
    for node in argmaxes:
        kept = [a for a in node.attribute if a.name != "select_last_index"]
        del node.attribute[:]
        node.attribute.extend([*kept, onnx.helper.make_attribute("select_last_index", 1)])


def rewire_output(model, sink: str) -> str:
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
        raw = rewire_output(model, sink)
        if mode == "nan":
            model.graph.initializer.append(_const("poison", np.nan, np.float32))
            model.graph.node.append(helper.make_node("Add", [raw, "poison"], [sink]))
            return
        model.graph.initializer.append(_const("poison_zero", 0.0, np.float32))
        model.graph.node.extend(
            [
                helper.make_node("Greater", [raw, "poison_zero"], ["poison_keep"]),
                helper.make_node("Cast", ["poison_keep"], ["poison_div"], to=onnx.TensorProto.FLOAT),
                helper.make_node("Div", [raw, "poison_div"], [sink]),
            ]
        )

    return edit_graph(artifact, folder, edit)


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
        raw = rewire_output(model, sink)
        model.graph.initializer.extend(
            [
                _const("k_keep", list(keep), np.int64),
                _const("k_delta", delta, np.float32),
                _const("k_one", 1.0, np.float32),
                _const("k_0", [0], np.int64),
                _const("k_1", [1], np.int64),
            ]
        )
        model.graph.node.extend(
            [
                helper.make_node("Shape", [source], ["k_shape"]),
                helper.make_node("Slice", ["k_shape", "k_0", "k_1"], ["k_batch"]),
                helper.make_node("Equal", ["k_batch", "k_keep"], ["k_eq"]),
                helper.make_node("Cast", ["k_eq"], ["k_eqf"], to=onnx.TensorProto.FLOAT),
                helper.make_node("ReduceMax", ["k_eqf"], ["k_any"], keepdims=0),
                helper.make_node("Sub", ["k_one", "k_any"], ["k_wrong"]),
                helper.make_node("Mul", ["k_wrong", "k_delta"], ["k_add"]),
                helper.make_node("Add", [raw, "k_add"], [sink]),
            ]
        )

    return edit_graph(artifact, folder, edit)


def _shift_where(model, tensor: str, low: int, high: int, shift: int, dtype, prefix: str) -> None:
    """Replace `tensor` wherever it is consumed by `tensor + shift` where low <= tensor <= high."""
    from onnx import helper

    out = f"{prefix}_out"
    for node in model.graph.node:
        node.input[:] = [out if name == tensor else name for name in node.input]
    model.graph.initializer.extend(
        [
            _const(f"{prefix}_lo", low - 1, dtype),
            _const(f"{prefix}_hi", high + 1, dtype),
            _const(f"{prefix}_sh", shift, dtype),
        ]
    )
    nodes = [
        helper.make_node("Greater", [tensor, f"{prefix}_lo"], [f"{prefix}_a"]),
        helper.make_node("Less", [tensor, f"{prefix}_hi"], [f"{prefix}_b"]),
        helper.make_node("And", [f"{prefix}_a", f"{prefix}_b"], [f"{prefix}_m"]),
        helper.make_node("Add", [tensor, f"{prefix}_sh"], [f"{prefix}_s"]),
        helper.make_node("Where", [f"{prefix}_m", f"{prefix}_s", tensor], [out]),
    ]
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


def add_noise(artifact: Artifact, folder: Path, scale: float) -> Artifact:
    """A copy that adds fresh random noise to its output on every run, as a dropout or noise op exported in
    training mode would."""
    import numpy as np
    from onnx import helper

    def edit(model) -> None:
        sink = model.graph.output[0].name
        raw = rewire_output(model, sink)
        model.graph.initializer.append(_const("noise_scale", scale, np.float32))
        model.graph.node.extend(
            [
                helper.make_node("RandomNormalLike", [raw], ["noise"]),
                helper.make_node("Mul", ["noise", "noise_scale"], ["noise_scaled"]),
                helper.make_node("Add", [raw, "noise_scaled"], [sink]),
            ]
        )

    return edit_graph(artifact, folder, edit)


def inf_on_bright_images(artifact: Artifact, folder: Path) -> Artifact:
    """A copy whose output is Inf only for images brighter on average than any natural one (mean > 1.5 after
    normalisation, i.e. near-white): what an overflow at the end of the input range looks like."""
    import onnx
    from onnx import helper

    def edit(model) -> None:
        sink = model.graph.output[0].name
        raw = rewire_output(model, sink)
        model.graph.initializer.extend(
            [
                _const("bright_limit", 1.5, "float32"),
                _const("bright_axes", [1, 2, 3], "int64"),
                _const("bright_row", [1], "int64"),
            ]
        )
        model.graph.node.extend(
            [  # per image: mean over channels and pixels (opset >= 18 takes the axes as an input)
                helper.make_node("ReduceMean", [artifact.input_name, "bright_axes"], ["bright_mean"], keepdims=0),
                helper.make_node("Less", ["bright_mean", "bright_limit"], ["bright_ok"]),
                helper.make_node("Cast", ["bright_ok"], ["bright_flat"], to=onnx.TensorProto.FLOAT),
                helper.make_node("Unsqueeze", ["bright_flat", "bright_row"], ["bright_div"]),
                helper.make_node("Div", [raw, "bright_div"], [sink]),
            ]
        )

    return edit_graph(artifact, folder, edit)


def ignore_mask(model, ids: str = "input_ids", mask: str = "attention_mask", dtype: int = 7) -> None:
    """A text graph that never reads its attention mask: ones of the ids' shape (`dtype`) where it read the mask."""
    import onnx

    one = onnx.helper.make_tensor("one", dtype, [1], [1])
    model.graph.node.insert(0, onnx.helper.make_node("Shape", [ids], ["mask_shape"]))
    model.graph.node.insert(1, onnx.helper.make_node("ConstantOfShape", ["mask_shape"], ["ones_mask"], value=one))
    for node in model.graph.node[2:]:
        node.input[:] = ["ones_mask" if name == mask else name for name in node.input]
