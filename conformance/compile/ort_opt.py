"""`ort-opt`: onnxruntime's transformer fusions, then its offline graph optimiser, saved as a graph.

The offline save runs at ORT_ENABLE_EXTENDED, not ALL: ALL adds layout transforms (NCHWc) chosen for this
CPU's vector width, and onnxruntime's documentation warns that a model saved with them may not run on other
hardware. EXTENDED fusions are com.microsoft operators that any onnxruntime CPU build runs.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from conformance.case import Case
from conformance.graph import WEIGHTS_FILE_SUFFIX


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


def _transformer_fusions(source: Path, scratch: Path, model_type: str, level: int) -> tuple[Path, dict[str, int]]:
    """onnxruntime.transformers.optimizer: its pattern fusions (SkipLayerNormalization, QuickGelu, Attention,
    ...) after onnxruntime's basic, portable optimisations (opt_level 1). At opt_level 0 the TorchScript
    exports fuse no SkipLayerNormalization: symbolic shape inference fails on their unfolded shape arithmetic,
    which constant folding removes first."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimizer = optimize_model(str(source), model_type=model_type, num_heads=0, hidden_size=0, opt_level=level)
    fused = {op: count for op, count in optimizer.get_fused_operator_statistics().items() if count}
    path = scratch / "fused.onnx"
    optimizer.save_model_to_file(str(path), use_external_data_format=True)
    return path, fused


def _offline_optimise(source: Path, out: Path, level: str) -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.optimized_model_filepath = str(out)
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", out.name + WEIGHTS_FILE_SUFFIX
    )
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def build_ort_opt(source: Path, out: Path, case: Case, settings: Mapping[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".fusing-") as scratch:
        fused_path, fused = _transformer_fusions(
            source, Path(scratch), str(settings["model_type"]), int(settings["fusion_opt_level"])
        )
        _offline_optimise(fused_path, out, str(settings["level"]))
    counts = op_counts(onnx.load(str(out), load_external_data=False))
    return {"transformer_fusions": fused, "op_counts": counts}
