"""The folders `--artifacts` names, behind one protocol: the suite's bundles and other tools' exports.

`open_folder(path, layout, variant)` opens one: a `Bundle` (its manifest read and held to) for the layout "suite",
else a `LayoutFolder`, another tool's files read through their layout. Either gives its encoders, its targets (the
graphs' own, or the fp32 graphs and each compiled sibling present), one Case per graph or for the folder's graphs
together, and each graph's Artifact, which carries the layout object. `identify.detect` says which layout a folder
has, by its file names and then by its graphs' inputs and outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from conformance.artifact import Artifact
from conformance.bundle.manifest import open_bundle
from conformance.case import Case, Target
from conformance.encoders import EncoderKind
from conformance.folders.layout import LayoutFolder
from conformance.layouts import SUITE, Layout, get
from conformance.variants import Variant
from conformance.weights import Provenance

__all__ = ["Folder", "cases", "open_folder"]


class Folder(Protocol):
    """What the session, the fixtures and the checks need of a folder, whoever made it."""

    folder: Path
    variant: Variant

    @property
    def name(self) -> str: ...

    @property
    def layout(self) -> Layout | None: ...  # None: the suite's own bundle (its manifest is its contract)

    @property
    def provenance(self) -> Provenance: ...

    def encoders(self) -> list[EncoderKind]: ...

    def targets(self, encoder: EncoderKind | None = None) -> list[Target]: ...

    def case(self, encoder: EncoderKind | None = None, target: Target | None = None) -> Case: ...

    def artifact(self, encoder: EncoderKind, target: Target | None = None) -> Artifact: ...

    def held(self, target: Target) -> list[EncoderKind]: ...  # the encoders whose graph at `target` it holds

    def missing(self, encoder: EncoderKind | None, target: Target) -> dict[str, str]: ...  # role -> absent file


def open_folder(path: Path, layout: str, variant: Variant | None) -> Folder:
    """The suite's bundle (its manifest read: the variant is the manifest's), or another tool's folder read through
    `layout` as `variant` (the run's --variant: such a folder does not say which CLIP it holds)."""
    if layout == SUITE:
        return open_bundle(path)
    if variant is None:
        raise ValueError(f"{path}: another tool's folder is read as the variant the run names (--variant)")
    return LayoutFolder(path, get(layout), variant)


def cases(found: Folder) -> tuple[list[Case], list[Case]]:
    """(graph cases, pair cases) of a folder: each graph at each of its targets (another tool's fp32 graphs and each
    compiled sibling present, e.g. transformers.js's `_fp16`, `_quantized`), and the graphs together per target."""
    graphs = [found.case(kind, target) for kind in found.encoders() for target in found.targets(kind)]
    return graphs, [found.case(None, target) for target in found.targets()]
