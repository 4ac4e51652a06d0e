"""One test case, spelled once: what is exported (or bundled), how, and for which runtime target.

A `Case` is the identity every layer shares: its `id` is the test ID, its `key()` the identity part of
the export cache key, and its `record()` what results.json, the report and latency baselines store.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from torch.onnx import _constants as onnx_constants

from conformance.encoders import EncoderKind
from conformance.variants import Variant, get


class Exporter(StrEnum):
    TORCHSCRIPT = "torchscript"
    DYNAMO = "dynamo"


class Precision(StrEnum):
    FP32 = "fp32"


class Target(StrEnum):
    """What the graph is for: the raw export, or what a compiler made of it (the compile targets add more)."""

    ONNX = "onnx"


class Profile(StrEnum):
    """The shape profile: a symbolic batch axis, or shapes fixed for a static compiler."""

    DYNAMIC = "dynamic"


# Both exporters default to this opset on the installed torch (20 on torch 2.14.1).
DEFAULT_OPSET: int = onnx_constants.ONNX_DEFAULT_OPSET


@dataclass(frozen=True)
class Case:
    """`encoder` None stands for all encoders of the variant together: the checks that compare them."""

    variant: Variant
    encoder: EncoderKind | None
    exporter: Exporter
    opset: int = DEFAULT_OPSET
    precision: Precision = Precision.FP32
    target: Target = Target.ONNX
    profile: Profile = Profile.DYNAMIC
    bundle: Path | None = None  # --artifacts: this bundle's graph, instead of a fresh export

    @property
    def id(self) -> str:
        """The test ID: [bundle-]variant-[encoder-]exporter-opN, then any axis that is not its default."""
        parts = [self.bundle.name] if self.bundle else []
        parts += [
            self.variant.slug,
            *([str(self.encoder)] if self.encoder else []),
            str(self.exporter),
            f"op{self.opset}",
        ]
        defaults = (Precision.FP32, Target.ONNX, Profile.DYNAMIC)
        parts += [str(axis) for axis, default in zip(self.axes, defaults, strict=True) if axis != default]
        return "-".join(parts)

    @property
    def axes(self) -> tuple[Precision, Target, Profile]:
        return (self.precision, self.target, self.profile)

    @property
    def group(self) -> str:
        """The tests that share one model and its exports: one variant (of one bundle)."""
        return f"{self.bundle.name}:{self.variant.name}" if self.bundle else self.variant.name

    def key(self) -> dict[str, Any]:
        """What identifies the graph itself (no bundle): part of the export cache key."""
        return {k: v for k, v in self.record().items() if k not in ("case", "bundle")}

    def record(self) -> dict[str, Any]:
        return {
            "case": self.id,
            "variant": self.variant.name,
            "encoder": str(self.encoder) if self.encoder else None,
            "exporter": str(self.exporter),
            "opset": self.opset,
            "precision": str(self.precision),
            "target": str(self.target),
            "profile": str(self.profile),
            "bundle": self.bundle.name if self.bundle else None,
        }

    def context(self) -> dict[str, str]:
        """The fields tolerances and gates are matched on."""
        return {k: str(v) for k, v in self.record().items() if k not in ("case", "bundle", "opset") and v}

    def member(self, encoder: EncoderKind) -> Case:
        return replace(self, encoder=encoder)

    @classmethod
    def from_record(cls, data: dict[str, Any], bundle: Path | None = None) -> Case:
        """The inverse of `record()` (the bundle folder is where the record was found, not its name)."""
        return cls(
            get(data["variant"]),
            EncoderKind(data["encoder"]) if data.get("encoder") else None,
            Exporter(data["exporter"]),
            int(data["opset"]),
            Precision(data.get("precision", "fp32")),
            Target(data.get("target", "onnx")),
            Profile(data.get("profile", "dynamic")),
            bundle,
        )
