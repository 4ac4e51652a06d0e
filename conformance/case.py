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
    """The arithmetic of the graph's weights and compute (its inputs and outputs stay fp32 throughout)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Target(StrEnum):
    """What the graph is for: the raw export, or what a compile recipe (conformance/compile/) made of it."""

    ONNX = "onnx"
    ORT_OPT = "ort-opt"
    FP16 = "fp16"
    INT8_DYNAMIC = "int8-dynamic"
    INT8_STATIC = "int8-static"

    @property
    def precision(self) -> Precision:
        return _PRECISION_OF.get(self, Precision.FP32)

    @property
    def compiled(self) -> bool:
        return self != Target.ONNX


_PRECISION_OF = {Target.FP16: Precision.FP16, Target.INT8_DYNAMIC: Precision.INT8, Target.INT8_STATIC: Precision.INT8}


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
        """The test ID: [bundle-]variant-[encoder-]exporter-opN, then any axis that is not its default (the
        precision only where the target does not imply it)."""
        parts = [self.bundle.name] if self.bundle else []
        parts += [
            self.variant.slug,
            *([str(self.encoder)] if self.encoder else []),
            str(self.exporter),
            f"op{self.opset}",
        ]
        defaults = (self.target.precision, Target.ONNX, Profile.DYNAMIC)
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

    def on(self, target: Target) -> Case:
        """This case compiled for `target` (or, with Target.ONNX, the fp32 export it is compiled from)."""
        return replace(self, target=target, precision=target.precision)

    @property
    def source(self) -> Case:
        return self.on(Target.ONNX)

    @classmethod
    def from_record(cls, data: dict[str, Any], bundle: Path | None = None) -> Case:
        """The inverse of `record()` (the bundle folder is where the record was found, not its name). A
        precision other than the target's is refused: the target decides it (and with it the budget)."""
        target = Target(data.get("target", "onnx"))
        precision = Precision(data.get("precision", "fp32"))
        if precision != target.precision:
            raise ValueError(f"precision {precision} does not go with target {target} (which is {target.precision})")
        return cls(
            get(data["variant"]),
            EncoderKind(data["encoder"]) if data.get("encoder") else None,
            Exporter(data["exporter"]),
            int(data["opset"]),
            precision,
            target,
            Profile(data.get("profile", "dynamic")),
            bundle,
        )
