"""Finite extremes: valid inputs at the ends of the range give finite outputs that still match torch."""

from __future__ import annotations

from conformance import inputs
from conformance.artifact import Artifact
from conformance.encoders import ClipModel
from conformance.numerics import Tolerance, compare, nonfinite_problem
from conformance.outputs import onnx_output, reference_output
from conformance.results import CheckResult, error_line, failed, verdict

CHECK = "finite_extremes"


def check_finite_extremes(artifact: Artifact, model: ClipModel | None, tol: Tolerance) -> CheckResult:
    """All-black, all-white, checkerboard and saturated images, or whole-context texts of one frequent, one
    rare and one byte token and a real caption: where fp16 overflows and int8 ranges clip. NaN or Inf fails
    whatever the tolerance; the finite values are held to the precision's `finite_extremes` bounds."""
    x = inputs.extreme_inputs(artifact.variant, artifact.encoder)
    try:
        actual = onnx_output(artifact, x)
    except Exception as exc:  # noqa: BLE001
        return failed(CHECK, f"onnxruntime failed: {error_line(exc)}")
    if model is None:  # another tool's export without its weights: finiteness needs no reference, the bounds do
        problem = nonfinite_problem(actual, "extreme inputs")
        return verdict(
            CHECK,
            [problem] if problem else [],
            {"items": len(x), "bounds": "not checked: no reference weights"},
            f"{len(x)} extreme inputs finite (bounds against torch need reference weights)",
        )
    comparison = compare(actual, reference_output(artifact, model, x), tol, "extreme inputs")
    figures = {"items": len(x), **comparison.figures, "tolerance": tol.to_dict()}
    return verdict(CHECK, comparison.problems, figures, f"{len(x)} extreme inputs finite and within tolerance")
