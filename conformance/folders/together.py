"""One folder read through several layouts in the same run: a layout and its companions (transformers.js's model
repositories hold the split text and vision graphs and the combined CLIPModel graph, each with its siblings).

Each layout's graphs are a LayoutFolder of their own; their cases carry their layout's name, so the test IDs, the
report's rows and the checks of one never mix with the other's, and each case is answered by the folder that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conformance.artifact import Artifact
from conformance.case import Case
from conformance.encoders import EncoderKind
from conformance.folders.layout import LayoutFolder
from conformance.layouts import Layout
from conformance.variants import Variant
from conformance.weights import Provenance


@dataclass
class Together:
    readers: list[LayoutFolder]  # the detected layout's first: it names the folder's layout
    folder: Path = field(init=False)
    variant: Variant = field(init=False)

    def __post_init__(self) -> None:
        self.folder, self.variant = self.readers[0].folder, self.readers[0].variant

    @property
    def name(self) -> str:
        return self.readers[0].name

    @property
    def layout(self) -> Layout:
        return self.readers[0].layout

    @property
    def provenance(self) -> Provenance:
        return self.readers[0].provenance

    def encoders(self) -> list[EncoderKind]:
        return list(dict.fromkeys(e for r in self.readers for e in r.encoders()))

    def cases(self) -> tuple[list[Case], list[Case]]:
        found = [r.cases() for r in self.readers]
        return [c for graphs, _ in found for c in graphs], [c for _, pairs in found for c in pairs]

    def reader(self, case: Case) -> LayoutFolder:
        return next(r for r in self.readers if r.layout.name == case.layout)

    def graph(self, case: Case) -> Artifact:
        return self.reader(case).graph(case)

    def held(self, case: Case) -> list[EncoderKind]:
        return self.reader(case).held(case)

    def missing(self, case: Case) -> dict[str, str]:
        return self.reader(case).missing(case)
