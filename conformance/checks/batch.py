"""Dynamic batch: the graph runs at many batch sizes, and each output row depends only on its own input."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from conformance import inputs
from conformance.artifact import Artifact
from conformance.numerics import Tolerance, error_figures, tolerance_problems
from conformance.results import CheckResult, error_line, verdict
from conformance.runtime import run_onnx
from conformance.variants import Variant

CHECK_DYNAMIC = "dynamic_batch"
CHECK_ROWS = "row_independence"


def check_dynamic_batch(artifact: Artifact, variant: Variant, sizes: Iterable[int]) -> CheckResult:
    """Every batch size runs in onnxruntime and yields an output with that batch size."""
    sizes = list(sizes)
    problems: list[str] = []
    shapes: dict[int, list[int]] = {}
    for size in sizes:
        try:
            out = run_onnx(artifact, inputs.batch_for(variant, artifact.encoder, size, seed=size))
        except Exception as exc:  # noqa: BLE001 - a runtime failure at this size is the finding
            problems.append(f"batch {size} fails in onnxruntime: {error_line(exc)}")
            continue
        shapes[size] = list(out.shape)
        if out.shape[0] != size:
            problems.append(f"batch {size} gives output batch {out.shape[0]}")
    figures = {"batch_sizes": sizes, "output_shapes": shapes}
    return verdict(CHECK_DYNAMIC, problems, figures, f"batch sizes {sizes} all run")


def check_row_independence(artifact: Artifact, variant: Variant, batch: int, tol: Tolerance) -> CheckResult:
    """Row i of a batch run equals the batch-1 run of input i: nothing mixes rows or depends on batch size."""
    x = inputs.batch_for(variant, artifact.encoder, batch, seed=batch)
    try:
        together = run_onnx(artifact, x)
        alone = [run_onnx(artifact, x[i : i + 1])[0] for i in range(batch)]
    except Exception as exc:  # noqa: BLE001
        return verdict(CHECK_ROWS, [f"batch {batch} does not run: {error_line(exc)}"], {"batch": batch})
    singles = np.stack(alone)
    figures = {"batch": batch, **error_figures(together, singles)}
    return verdict(CHECK_ROWS, tolerance_problems(figures, together, singles, tol, f"batch {batch} vs batch 1"),
                   figures)
