"""Two single-tower folders of one model read together (`--pair=IMAGE_DIR,TEXT_DIR`): one case, the graphs together,
whose image graph is the first folder's and whose text graph is the second's, each read through its own layout.

Each folder's own graphs are checked through its own `LayoutFolder` (the pair adds both to --artifacts); the pair's
case runs what needs both towers (zero-shot: the pair's layout, `PAIR_LAYOUT`, skips the rest, saying so). The pair is
not a layout of files (no data file describes it, and detection never picks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conformance.artifact import Artifact
from conformance.case import Case, Exporter
from conformance.encoders import EncoderKind
from conformance.folders.layout import LayoutFolder
from conformance.layouts import PAIR, Layout
from conformance.variants import Variant
from conformance.weights import Provenance

TEXTS = (EncoderKind.TEXT_FULL, EncoderKind.TEXT_SPLIT)

RUNS = frozenset({"zero_shot_agreement"})
ELSEWHERE = "each folder of the pair is checked on its own (its layout's checks); the pair runs zero-shot only"


@dataclass(frozen=True)
class PairLayout(Layout):
    def skip_reason(self, check: str) -> str | None:
        return None if check in RUNS else ELSEWHERE


PAIR_LAYOUT = PairLayout(
    name=PAIR,
    producer="--pair: an image tower's folder and a text tower's folder of one model",
    exporter="torchscript",  # each graph keeps its own folder's layout and exporter; the pair's case names this
    reference_library=None,
    detect=(),
    detect_absent=(),
    graphs=(),
    contract={},
    skips={"every check but zero_shot_agreement": ELSEWHERE},
    tokenizer={},
    preprocessing={},
    batch=None,
    config={},
    logits={},
    siblings={},
)


class PairError(ValueError):
    """The two folders cannot be paired (a tower missing): a usage error naming what each holds."""


def pair_path(image: Path, text: Path) -> Path:
    """The pair's name in test IDs and reports (`IMAGE+TEXT`), beside the image folder: never a folder itself."""
    return image.parent / f"{image.name}+{text.name}"


@dataclass
class Paired:
    image: LayoutFolder
    text: LayoutFolder
    folder: Path = field(init=False)
    variant: Variant = field(init=False)

    def __post_init__(self) -> None:
        self.folder, self.variant = pair_path(self.image.folder, self.text.folder), self.image.variant
        if EncoderKind.IMAGE not in self.image.encoders():
            raise PairError(f"--pair: {self.image.folder} ({self.image.layout.name}) holds no image graph")
        if not any(e in TEXTS for e in self.text.encoders()):
            raise PairError(f"--pair: {self.text.folder} ({self.text.layout.name}) holds no text graph")

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def layout(self) -> Layout:
        return PAIR_LAYOUT

    @property
    def provenance(self) -> Provenance:
        return self.image.provenance

    def _text_kind(self) -> EncoderKind:
        return next(e for e in self.text.encoders() if e in TEXTS)

    def encoders(self) -> list[EncoderKind]:
        return [EncoderKind.IMAGE, self._text_kind()]

    def cases(self) -> tuple[list[Case], list[Case]]:
        """No graph of its own (each folder's are checked through it), and one case of the two together (fp32)."""
        image = self.image.case(EncoderKind.IMAGE)
        return [], [Case(self.variant, None, Exporter(image.exporter), image.opset, image.precision, image.target,
                         bundle=self.folder, layout=PAIR)]  # fmt: skip

    def reader(self, encoder: EncoderKind) -> LayoutFolder:
        return self.image if encoder == EncoderKind.IMAGE else self.text

    def graph(self, case: Case) -> Artifact:
        assert case.encoder is not None, "a graph is one encoder's"
        return self.reader(case.encoder).artifact(case.encoder)

    def held(self, case: Case) -> list[EncoderKind]:
        return self.encoders()

    def missing(self, case: Case) -> dict[str, str]:
        return {}
