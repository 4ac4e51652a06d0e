"""Dynamic batch: the graph runs at many batch sizes, and every row of every batch equals the batch-1
output of the same input, so a batch size baked in at trace time, rows mixed or swapped, or values wrong
only at some sizes all fail."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

from conformance import inputs
from conformance.artifact import Artifact
from conformance.numerics import Comparison, Tolerance, compare
from conformance.results import CheckResult, error_line, verdict
from conformance.runtime import run_onnx
from conformance.variants import Variant

CHECK_DYNAMIC = "dynamic_batch"
CHECK_ROWS = "row_independence"
BATCH_ONE = "the batch-1 outputs"


@lru_cache(maxsize=8)
def _single_rows(path: Path, mtime_ns: int) -> dict[int, np.ndarray]:
    """Batch-1 outputs of each input item, per graph file: every batch size and drawn example reuses them."""
    return {}


def single_outputs(artifact: Artifact, variant: Variant, count: int) -> np.ndarray:
    """The batch-1 ONNX outputs of items 0 .. count-1, stacked: the reference for every larger batch."""
    store = _single_rows(artifact.onnx_path, artifact.onnx_path.stat().st_mtime_ns)
    for item in range(count):
        if item not in store:
            store[item] = run_onnx(artifact, inputs.batch_for(variant, artifact.encoder, 1, offset=item))[0]
    return np.stack([store[item] for item in range(count)])


def rows_vs_singles(artifact: Artifact, variant: Variant, size: int, tol: Tolerance) -> tuple[list[int], Comparison]:
    """Run items 0 .. size-1 as one batch; compare each row with that item's batch-1 output."""
    out = run_onnx(artifact, inputs.batch_for(variant, artifact.encoder, size))
    if out.shape[0] != size:
        return list(out.shape), Comparison({}, [f"batch {size} gives output batch {out.shape[0]}"])
    return list(out.shape), compare(out, single_outputs(artifact, variant, size), tol, f"batch {size} vs batch 1",
                                    reference=BATCH_ONE)


def check_dynamic_batch(artifact: Artifact, variant: Variant, sizes: Iterable[int], tol: Tolerance) -> CheckResult:
    """Every batch size runs in onnxruntime, yields that batch size, and matches the batch-1 outputs row by row."""
    sizes = list(sizes)
    problems: list[str] = []
    shapes: dict[int, list[int]] = {}
    errors: dict[int, float | None] = {}
    for size in sizes:
        try:
            shapes[size], comparison = rows_vs_singles(artifact, variant, size, tol)
        except Exception as exc:  # noqa: BLE001 - a runtime failure at this size is the finding
            problems.append(f"batch {size} fails in onnxruntime: {error_line(exc)}")
            continue
        problems += comparison.problems
        errors[size] = comparison.figures.get("max_abs_err")
    figures = {"batch_sizes": sizes, "output_shapes": shapes, "max_abs_err_vs_batch1": errors,
               "tolerance": tol.to_dict()}
    return verdict(CHECK_DYNAMIC, problems, figures, f"batch sizes {sizes} run and match batch 1 row by row")


def check_row_independence(artifact: Artifact, variant: Variant, batch: int, tol: Tolerance) -> CheckResult:
    """Row i of a batch run equals the batch-1 run of input i: nothing mixes rows or depends on batch size."""
    try:
        _, comparison = rows_vs_singles(artifact, variant, batch, tol)
    except Exception as exc:  # noqa: BLE001
        return verdict(CHECK_ROWS, [f"batch {batch} does not run: {error_line(exc)}"], {"batch": batch})
    return verdict(CHECK_ROWS, comparison.problems, {"batch": batch, **comparison.figures})
