"""What a check runs on: a case, its graph(s) and the torch model they must match."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from conformance.artifact import Artifact
from conformance.axes import DEFAULT_TOKEN_DTYPE
from conformance.case import Case
from conformance.encoders import ClipModel, EncoderKind
from conformance.layouts import Layout
from conformance.numerics import Tolerance
from conformance.tolerances import tolerance
from conformance.variants import Variant


@dataclass(frozen=True)
class Subject:
    """One graph (`case.encoder` set), or the encoders of one variant together (`case.encoder` None)."""

    case: Case
    model: ClipModel
    artifacts: dict[EncoderKind, Artifact]
    token_dtype: str = DEFAULT_TOKEN_DTYPE  # the token dtype contract (--token-dtype)
    sources: dict[EncoderKind, Artifact] = field(default_factory=dict)  # a compile target's fp32 exports
    # ISA features every deployment CPU is declared to have (--deploy-isa, a bundle's `deploy_isa`)
    deploy_isa: frozenset[str] = frozenset()
    batch_max: int | None = None  # --batch-max: dynamic_batch also runs the release sizes up to it
    progress: Callable[[str], None] | None = None  # where long work says what it is doing
    no_reference: str | None = None  # why `model` is None (another tool's export, no weights to rebuild it from)
    # what another tool's folder lacks that a check may need, by role (image, text, source): the file's name
    missing: dict[str, str] = field(default_factory=dict)
    folder_layout: Layout | None = None  # another tool's layout, where the case holds no graph to carry it

    @property
    def variant(self) -> Variant:
        return self.case.variant

    @property
    def layout(self) -> Layout | None:
        """Another tool's layout, as its graphs carry it (None: the suite's own export or bundle)."""
        folder = self.folder_layout  # the folder's, where the case is of it (--pair's: its graphs carry their own)
        if folder is not None and folder.name == self.case.layout:
            return folder
        return next((a.layout for a in self.artifacts.values() if a.layout), folder)

    @property
    def artifact(self) -> Artifact:
        assert self.case.encoder is not None, f"{self.case.id} is several graphs; use .artifacts"
        return self.artifacts[self.case.encoder]

    @property
    def source(self) -> Artifact | None:
        """The fp32 export this graph was compiled from (None for an export, or a bundle's graph)."""
        return self.sources.get(self.case.encoder) if self.case.encoder else None

    def tolerance(self, check: str) -> Tolerance:
        return tolerance(check, self.case.context())
