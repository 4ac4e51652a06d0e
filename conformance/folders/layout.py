"""Another tool's export folder, read through its layout: each graph as an Artifact with its Case.

Such a folder has no manifest, so nothing in it is taken on trust: the opset is read from each graph, the variant
is the one the run names (`--variant`), the exporter the one the layout says its producer uses, and the files
listed for each graph are the graph and the external data it points to (checked by validity and bundle_integrity).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import onnx

from conformance.artifact import Artifact, ArtifactError
from conformance.case import Case, Exporter
from conformance.encoders import EncoderKind
from conformance.graph import load_path
from conformance.layouts import ANY_OUTPUT, Layout
from conformance.variants import Variant
from conformance.weights import Provenance

FOREIGN = Provenance(kind="unknown")  # another tool's weights: only what the run names (--weights) is known


def _structure(path: Path) -> onnx.ModelProto | None:
    """The graph's structure through the suite's one cached parse (a 600 MB Optimum graph takes 0.5 s to parse,
    and its case, artifact and checks all read it); None where it cannot be read (the checks then say why)."""
    try:
        return load_path(path)
    except ArtifactError:
        return None


def default_opset(path: Path) -> int:
    """The graph's default-domain opset, 0 where it cannot be read (opset_validity then says why)."""
    model = _structure(path)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0) if model else 0


def fixed_batch(path: Path, layout: Layout) -> int | None:
    """The batch the graph is fixed at, where its layout lets the producer fix one (immich: 1) and the graph's
    first input does; None for a symbolic batch axis (older immich exports have one: the batch checks run)."""
    model = _structure(path) if layout.batch is not None else None
    if model is None or not model.graph.input or not model.graph.input[0].type.tensor_type.shape.dim:
        return layout.batch
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    return None if first.dim_param or not first.dim_value else layout.batch


def external_files(path: Path) -> list[str]:
    """The external-data files a graph points to, as written in it (validity checks where they lead)."""
    model = _structure(path)
    if model is None:
        return []
    found = []
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            found += [e.value for e in tensor.external_data if e.key == "location"]
    return list(dict.fromkeys(found))


def named_outputs(folder: Path, layout: Layout) -> Layout:
    """The layout with each output it leaves unnamed ("*": clip-as-service's host unpacks the one output, whatever
    its name) named as the folder's graph names it, in its binding and its contract; unchanged where the graph cannot
    be read or gives nothing (the folder check and the contract say so)."""
    graphs, contract = list(layout.graphs), dict(layout.contract)
    for i, g in enumerate(graphs):
        model = _structure(folder / g.file) if g.output == ANY_OUTPUT else None
        if model is None or not model.graph.output:
            continue
        name = model.graph.output[0].name
        graphs[i] = replace(g, output=name)
        outputs = {name if n == ANY_OUTPUT else n: spec for n, spec in contract[g.file].get("outputs", {}).items()}
        contract[g.file] = contract[g.file] | {"outputs": outputs}
    return replace(layout, graphs=tuple(graphs), contract=contract)


@dataclass
class LayoutFolder:
    folder: Path
    layout: Layout
    variant: Variant
    provenance: Provenance = FOREIGN

    def __post_init__(self) -> None:
        self.layout = named_outputs(self.folder, self.layout)

    @property
    def name(self) -> str:
        return self.folder.name

    def encoders(self) -> list[EncoderKind]:
        """The encoders whose graph the folder holds in some form (a cache may hold one tower)."""
        return [e for e in self.layout.encoders if self.layout.forms(self.folder, e)]

    def cases(self) -> tuple[list[Case], list[Case]]:
        """Each graph in each form the folder holds (fp32, and each compiled sibling: transformers.js's `_fp16`,
        `_quantized`, `_uint8`, `_q4`, ...), and the graphs together per form."""
        graphs = [self.case(e, f) for e in self.encoders() for f in self.layout.forms(self.folder, e)]
        forms = [None, *(f for f in self.layout.forms(self.folder) if f is not None)]  # the host checks run on None's
        return graphs, [self.case(None, f) for f in forms]

    def held(self, case: Case) -> list[EncoderKind]:
        """The encoders whose graph in the case's form the folder holds."""
        return self._held(case.sibling)

    def _held(self, sibling: str | None) -> list[EncoderKind]:
        return [e for e in self.layout.encoders if (self.folder / self.layout.file(e, sibling)).is_file()]

    def missing(self, case: Case) -> dict[str, str]:
        """What a check of the case may need that the folder lacks, by role: the image or text graph in its form
        (the encoders together), the fp32 graph a sibling is held to ("source")."""
        if case.encoder is None:  # a tower absent in this form ("image"), or in every form ("image-tower")
            roles = {e: "image" if e == EncoderKind.IMAGE else "text" for e in self.layout.encoders}
            held, towers = self.held(case), self.encoders()
            lacking = {roles[e]: self.layout.file(e, case.sibling) for e in self.layout.encoders if e not in held}
            return lacking | {
                f"{roles[e]}-tower": self.layout.file(e, None) for e in self.layout.encoders if e not in towers
            }
        fp32 = self.layout.file(case.encoder, None)
        return {"source": fp32} if case.sibling and not (self.folder / fp32).is_file() else {}

    def case(self, encoder: EncoderKind | None = None, sibling: str | None = None) -> Case:
        """One graph's case, or, with no encoder, the folder's graphs together; a compiled sibling's by its suffix."""
        target = self.layout.target(sibling)
        held = [self.layout.file(e, sibling) for e in self._held(sibling)]
        # the fp32-form pair of a cache of siblings reads their opset
        file = (
            self.layout.file(encoder, sibling)
            if encoder
            else [*held, *self.layout.present(self.folder), self.layout.files[0]][0]
        )
        return Case(
            self.variant,
            encoder,
            Exporter(self.layout.exporter),
            default_opset(self.folder / file),
            target.precision,
            target,
            bundle=self.folder,
            static_batch=fixed_batch(self.folder / file, self.layout),
            layout=self.layout.name,
            sibling=sibling,
        )

    def graph(self, case: Case) -> Artifact:
        assert case.encoder is not None, "a graph is one encoder's"
        return self.artifact(case.encoder, case.sibling)

    def artifact(self, encoder: EncoderKind, sibling: str | None = None) -> Artifact:
        binding = self.layout.binding(encoder)
        file = self.layout.file(encoder, sibling)
        path = self.folder / file
        names = [file, *(str(Path(file).parent / f) for f in external_files(path))]
        if encoder == EncoderKind.TEXT_SPLIT and self.layout.projection:  # the host's side file, listed with it
            names.append(self.layout.projection)
        sizes = {n: (self.folder / n).stat().st_size if (self.folder / n).is_file() else -1 for n in names}
        return Artifact(
            folder=self.folder,
            case=self.case(encoder, sibling),
            provenance=self.provenance,
            token_dtype=binding.text.dtype if encoder != EncoderKind.IMAGE else None,
            projection_file=self.layout.projection if encoder == EncoderKind.TEXT_SPLIT else None,
            files=sizes,
            onnx_file=file,
            layout=self.layout,
        )
