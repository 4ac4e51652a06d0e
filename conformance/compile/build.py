"""Compiling an fp32 export's Artifact into a target's Artifact, in a folder the export cache provides."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from conformance.artifact import Artifact
from conformance.case import Case
from conformance.compile.recipe import Recipe, recipe_stamp
from conformance.compile.recipes import recipe_for
from conformance.graph import files_of, stamp_metadata

GRAPH = "model.onnx"
# Bumped whenever compile_to changes what it writes around a recipe's graph (2: the recipe stamp carries the
# settings' digest), so older cache entries are never trusted.
COMPILE_FORMAT = 2


class CompileError(RuntimeError):
    """A recipe that did not produce a graph; the message names the case and the tool's own words."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's optimiser and quantiser print advice and shape-inference notes to stdout and the root
    logger; the suite's progress lines say what is happening, and failures arrive as exceptions."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def compile_to(folder: Path, case: Case, source: Artifact, recipe: Recipe | None = None) -> Artifact:
    """Build `case` (a compile target) from `source` (its fp32 export) into `folder`, which must exist, by `recipe`
    (default: the target's own)."""
    recipe = recipe or recipe_for(case.target)
    started = time.perf_counter()
    try:
        with _quiet():
            found = recipe.build(source.onnx_path, folder / GRAPH, case, recipe.settings)
    except Exception as exc:  # noqa: BLE001 - compiler errors are many and deep; one line says enough
        raise CompileError(f"{case.id}: {case.target} compile failed: {type(exc).__name__}: {exc}") from None
    seconds = time.perf_counter() - started
    stamped = {k: str(v) for k, v in case.key().items() if k != "opset"}
    made_by = recipe_stamp(str(recipe.target), recipe.version, recipe.settings)
    stamp_metadata(folder / GRAPH, {**stamped, "weights": source.provenance.weights_id, "recipe": made_by})
    if source.projection_path is not None and source.projection_file is not None:
        shutil.copyfile(source.projection_path, folder / source.projection_file)
    compiled = {**recipe.identity(case), "summary": recipe.summary, "source": source.case.id, **found}
    return Artifact(
        folder=folder,
        case=case,
        provenance=source.provenance,
        token_dtype=source.token_dtype,
        projection_file=source.projection_file,
        files=files_of(folder),
        export_seconds=round(seconds, 2),
        compiled={**compiled, "build_seconds": round(seconds, 2)},
    )
