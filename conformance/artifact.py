"""An Artifact is one ONNX graph plus what describes it; checks never know whether it was exported or bundled."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from conformance import atomic, layouts
from conformance.case import Case
from conformance.encoders import INPUT_NAME, OUTPUT_NAME, EncoderKind
from conformance.layouts import GraphBinding, Layout
from conformance.variants import Variant
from conformance.weights import Provenance


class ArtifactError(RuntimeError):
    """A missing, truncated or unreadable artifact file; the message names the file."""


@dataclass
class Artifact:
    folder: Path
    case: Case  # with its encoder set
    provenance: Provenance
    token_dtype: str | None
    projection_file: str | None
    files: dict[str, int] = field(default_factory=dict)  # file name -> size in bytes
    export_seconds: float | None = None  # for a compiled target: the compile's seconds
    onnx_file: str = "model.onnx"
    compiled: dict[str, Any] | None = None  # a compile target's provenance: recipe, tool, version, settings, ...
    layout: Layout | None = None  # another tool's layout (conformance/layouts/): its names, feeds and contract

    @property
    def variant(self) -> Variant:
        return self.case.variant

    @property
    def encoder(self) -> EncoderKind:
        assert self.case.encoder is not None, "an artifact is one encoder's graph"
        return self.case.encoder

    @property
    def source(self) -> str:
        return "bundle" if self.case.bundle else "export"

    @property
    def onnx_path(self) -> Path:
        return self.folder / self.onnx_file

    @property
    def projection_path(self) -> Path | None:
        return self.folder / self.projection_file if self.projection_file else None

    @property
    def runtime_options(self) -> dict[str, str]:
        """onnxruntime session config entries the graph records it must run with (`compiled.runtime_options`,
        from its recipe or its bundle's manifest): the suite sets them, and every deployment must."""
        recorded = (self.compiled or {}).get("runtime_options") or {}
        return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}

    @property
    def binding(self) -> GraphBinding | None:
        """How another tool's graph takes the suite's inputs and gives this embedding (None: the suite's own)."""
        return self.layout.binding(self.encoder) if self.layout else None

    @property
    def input_name(self) -> str:
        return self.binding.input_name if self.binding else INPUT_NAME[self.encoder]

    @property
    def output_name(self) -> str:
        return self.binding.output if self.binding else OUTPUT_NAME

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    @property
    def label(self) -> str:
        return f"{self.case.id} ({self.source})"

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Name, mtime and size of the graph and every file beside it that it lists (external data, projection):
        what a session or a shared output made from this artifact depends on."""
        names = dict.fromkeys([self.onnx_file, *self.files])
        stats = ((name, self.folder / name) for name in names)
        return tuple((name, path.stat().st_mtime_ns, path.stat().st_size) for name, path in stats if path.is_file())

    def verify_sizes(self) -> None:
        for name, size in self.files.items():
            path = self.folder / name
            if not path.is_file():
                raise ArtifactError(f"{path} is missing")
            if path.stat().st_size != size:
                raise ArtifactError(f"{path} has {path.stat().st_size} bytes, expected {size} (truncated?)")

    def to_dict(self) -> dict[str, object]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("folder", "case")}
        data["provenance"] = self.provenance.to_dict()
        data["layout"] = self.layout.name if self.layout else None  # the name: the layout is data the suite ships
        return {"case": self.case.record(), **data, "source": self.source}

    def save(self, path: Path) -> None:
        atomic.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Artifact:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data.pop("source", None)
            data["case"] = Case.from_record(data["case"])
            data["provenance"] = Provenance.from_dict(data["provenance"])
            data["layout"] = layouts.get(data["layout"]) if data.get("layout") else None
            return cls(folder=path.parent, **data)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # LayoutError is a ValueError
            raise ArtifactError(f"{path} is unreadable: {type(exc).__name__}: {exc}") from None
