"""Dynamic batch: the graph runs at many batch sizes, and every row of every batch equals the batch-1
output of the same input, so a batch size baked in at trace time, rows mixed or swapped, or values wrong
only at some sizes all fail."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from conformance import inputs
from conformance.artifact import Artifact
from conformance.numerics import Comparison, Tolerance, compare, nonfinite_problem
from conformance.outputs import onnx_output
from conformance.results import CheckResult, error_line, verdict
from conformance.runtime import run_onnx

BATCH_ONE = "the batch-1 outputs"


def single_outputs(artifact: Artifact, count: int) -> np.ndarray:
    """The batch-1 ONNX outputs of items 0 .. count-1, stacked: the reference for every larger batch."""
    items = (inputs.batch_for(artifact.variant, artifact.encoder, 1, offset=item) for item in range(count))
    return np.stack([onnx_output(artifact, x)[0] for x in items])


def rows_vs_singles(artifact: Artifact, size: int, tol: Tolerance) -> tuple[list[int], Comparison]:
    """Run items 0 .. size-1 as one batch; compare each row with that item's batch-1 output."""
    out = onnx_output(artifact, inputs.batch_for(artifact.variant, artifact.encoder, size))
    if out.shape[0] != size:
        return list(out.shape), Comparison({}, [f"batch {size} gives output batch {out.shape[0]}"])
    return list(out.shape), compare(
        out, single_outputs(artifact, size), tol, f"batch {size} vs batch 1", reference=BATCH_ONE
    )


def check_dynamic_batch(
    artifact: Artifact,
    sizes: Iterable[int],
    tol: Tolerance,
    say: Callable[[str], None] | None = None,
    quiet_up_to: int | None = None,
) -> CheckResult:
    """Every batch size runs in onnxruntime, yields that batch size, and matches the batch-1 outputs row by row.
    Sizes past `quiet_up_to` (the cost cap: --batch-max's release sizes) say their cost through `say` first."""
    sizes = list(sizes)
    problems: list[str] = []
    shapes: dict[int, list[int]] = {}
    errors: dict[int, float | None] = {}
    per_item = inputs.gflops_per_item(artifact.variant, artifact.encoder)
    for size in sizes:
        if say is not None and quiet_up_to is not None and size > quiet_up_to:
            say(
                f"{artifact.case.id}: dynamic_batch at batch {size}, {2 * size * per_item:.0f} GFLOP (the batch and "
                "its batch-1 references) ..."
            )
        try:
            shapes[size], comparison = rows_vs_singles(artifact, size, tol)
        except Exception as exc:  # noqa: BLE001 - a runtime failure at this size is the finding
            problems.append(f"batch {size} fails in onnxruntime: {error_line(exc)}")
            continue
        problems += comparison.problems
        errors[size] = comparison.figures.get("max_abs_err")
    figures = {
        "batch_sizes": sizes,
        "output_shapes": shapes,
        "max_abs_err_vs_batch1": errors,
        "tolerance": tol.to_dict(),
    }
    return verdict("dynamic_batch", problems, figures, f"batch sizes {sizes} run and match batch 1 row by row")


def check_row_independence(artifact: Artifact, batch: int, tol: Tolerance) -> CheckResult:
    """Row i of a batch run equals the batch-1 run of input i: nothing mixes rows or depends on batch size."""
    try:
        _, comparison = rows_vs_singles(artifact, batch, tol)
    except Exception as exc:  # noqa: BLE001
        return verdict("row_independence", [f"batch {batch} does not run: {error_line(exc)}"], {"batch": batch})
    return verdict("row_independence", comparison.problems, {"batch": batch, **comparison.figures})


def check_repeatability(artifact: Artifact, runs: int = 2) -> CheckResult:
    """The same input, run again in the same session, gives bitwise the same output: a graph that draws random
    numbers (a dropout or noise op exported in training mode) cannot be compared with anything. The first
    output is the shared one (the batch checks' batch 2); every repeat is a fresh run."""
    x = inputs.batch_for(artifact.variant, artifact.encoder, 2)
    try:
        outputs = [onnx_output(artifact, x), *(run_onnx(artifact, x) for _ in range(runs - 1))]
    except Exception as exc:  # noqa: BLE001
        return verdict("repeatability", [f"onnxruntime failed: {error_line(exc)}"], {"runs": runs})
    nonfinite = nonfinite_problem(outputs[0], "the output")
    if nonfinite:  # NaN never equals itself: say what is wrong, not that the graph is not deterministic
        return verdict("repeatability", [nonfinite], {"runs": runs})
    differing = sum(not np.array_equal(outputs[0], other) for other in outputs[1:])
    diff = max(float(np.abs(outputs[0] - other).max()) for other in outputs[1:])
    figures = {"runs": runs, "differing_runs": differing, "max_abs_diff": diff}
    problems = []
    if differing:
        problems.append(
            f"{differing} of {runs - 1} repeated runs differ from the first (max abs diff {diff:.3g}): "
            "the graph is not deterministic"
        )
    return verdict("repeatability", problems, figures, f"{runs} runs bitwise identical")
