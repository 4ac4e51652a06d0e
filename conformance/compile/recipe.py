"""A compile target's recipe: what derives its graph from the fp32 export, and everything that identifies it."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from conformance.case import Case, Exporter, Target
from conformance.isa import unsupported_target
from conformance.versions import version_of

# (fp32 graph, graph to write, case, settings) -> what the build found (fused counts, nodes kept, ...).
Build = Callable[[Path, Path, Case, Mapping[str, Any]], dict[str, Any]]
# The inputs a recipe calibrates on, per case: part of its identity (their hash is in the cache key).
Calibration = Callable[[Case, Mapping[str, Any]], np.ndarray]


def tool_version(module: str) -> str:
    """The imported module's own version: the distribution may be onnxruntime, onnxruntime-gpu, ..."""
    try:
        return str(importlib.import_module(module).__version__)
    except (ImportError, AttributeError):
        return version_of(module)


def settings_digest(settings: Mapping[str, Any]) -> str:
    """A short hash of a recipe's settings: stamped into the graph, so a manifest cannot claim others."""
    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode()).hexdigest()[:12]


def recipe_stamp(target: str, version: object, settings: Mapping[str, Any]) -> str:
    return f"{target}/{version}/{settings_digest(settings)}"


@cache
def _source_sha256(build: Build, modules: tuple[str, ...] = ()) -> str:
    """The build function's module, and any module it drives without importing (a toolchain's worker script)."""
    paths = [inspect.getsourcefile(build), *(_module_file(m) for m in modules)]
    if not all(paths):
        return "unknown"
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(str(path)).read_bytes())
    return digest.hexdigest()[:16]


def _module_file(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    return spec.origin if spec is not None else None


@dataclass(frozen=True)
class Recipe:
    target: Target
    version: int  # bumped whenever the recipe changes what it writes, so older cache entries are never trusted
    tool: str  # the distribution doing the work; its version is part of the identity
    summary: str  # what it does, and why this way: the report and the manifest print it
    build: Build
    settings: Mapping[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None
    min_opset: int = 1
    max_opset: int = 1000
    exporters: frozenset[Exporter] = frozenset(Exporter)
    domains: frozenset[str] = frozenset()  # non-standard operator domains its graphs may use
    # Why this machine cannot build it (a missing toolchain, a CPU without bf16), or None: checked per case.
    precondition: Callable[[Case], str | None] | None = None
    version_of_tool: Callable[[], str] | None = None  # for a tool outside this environment (its own venv)
    sources: tuple[str, ...] = ()  # modules besides the build's whose source is part of the identity

    def unsupported(self, case: Case) -> str | None:
        """Why this recipe cannot compile the case's export, or None."""
        if case.exporter not in self.exporters:
            return f"{self.target} supports the {', '.join(sorted(self.exporters))} exporter(s), not {case.exporter}"
        if case.opset < self.min_opset:
            return f"{self.target} needs opset >= {self.min_opset}; the export is opset {case.opset}"
        if case.opset > self.max_opset:
            return f"{self.target} takes opset <= {self.max_opset}; the export is opset {case.opset} (pass --opset)"
        isa = unsupported_target(str(self.target))
        if isa:
            return isa
        return self.precondition(case) if self.precondition else None

    def calibration_sha256(self, case: Case) -> str | None:
        if self.calibration is None:
            return None
        return hashlib.sha256(np.ascontiguousarray(self.calibration(case, self.settings)).tobytes()).hexdigest()

    def identity(self, case: Case) -> dict[str, Any]:
        """The recipe's part of the cache key, and of the artifact's provenance: its source code included, so
        an edit to a build function is a new entry even when nobody bumps `version`."""
        return {
            "recipe": str(self.target),
            "version": self.version,
            "source_sha256": _source_sha256(self.build, self.sources),
            "tool": self.tool,
            "tool_version": self.version_of_tool() if self.version_of_tool else tool_version(self.tool),
            "settings": dict(self.settings),
            "calibration_sha256": self.calibration_sha256(case),
        }
