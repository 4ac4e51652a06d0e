"""The folders `--artifacts` names, behind one protocol: the suite's bundles and other tools' exports.

`open_folder(path, layout, variant)` opens one: a `Bundle` (its manifest read and held to) for the layout "suite",
else a `LayoutFolder`, another tool's files read through their layout (a `Together` where the folder also holds the
graphs of the layout's companions: transformers.js's combined graph beside its split ones, each read through its
own layout). Each gives its encoders, its cases (one per graph and form: a bundle's graphs as recorded, another
tool's fp32 graphs and each compiled sibling present; and the graphs together per form), each case's graph as an
Artifact that carries the layout object, and what it lacks. `identify.detect` says which layout a folder has, by
its file names and then by its graphs' inputs and outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from conformance.artifact import Artifact
from conformance.bundle.manifest import open_bundle
from conformance.case import Case
from conformance.encoders import EncoderKind
from conformance.folders.layout import LayoutFolder
from conformance.folders.together import Together
from conformance.layouts import SUITE, Layout, get, readers
from conformance.variants import Variant
from conformance.weights import Provenance

__all__ = ["Folder", "open_folder"]


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

    def cases(self) -> tuple[list[Case], list[Case]]: ...  # (one per graph and form, the graphs together per form)

    def graph(self, case: Case) -> Artifact: ...  # the graph of a case with its encoder set

    def held(self, case: Case) -> list[EncoderKind]: ...  # the encoders whose graph in the case's form it holds

    def missing(self, case: Case) -> dict[str, str]: ...  # what a check of the case may need that it lacks


def open_folder(path: Path, layout: str, variant: Variant | None) -> Folder:
    """The suite's bundle (its manifest read: the variant is the manifest's), or another tool's folder read through
    `layout` as `variant` (the run's --variant: such a folder does not say which CLIP it holds)."""
    if layout == SUITE:
        return open_bundle(path)
    if variant is None:
        raise ValueError(f"{path}: another tool's folder is read as the variant the run names (--variant)")
    read = [LayoutFolder(path, chosen, variant) for chosen in readers(path, get(layout))]  # and its companions
    return read[0] if len(read) == 1 else Together(read)
