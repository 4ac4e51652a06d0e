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

from conformance.axes import EncoderKind, Exporter, Precision, Profile, Target
from conformance.variants import Variant, get

# Both exporters default to this opset on the installed torch (20 on torch 2.14.1).
DEFAULT_OPSET: int = onnx_constants.ONNX_DEFAULT_OPSET


class Scope(StrEnum):
    """What one test of a check runs on (the registry's `Check.scope`)."""

    GRAPH = "graph"  # one graph: Subject with case.encoder set
    PAIR = "pair"  # the encoders of one variant, exporter and opset together
    BUNDLE = "bundle"  # a bundle folder, before anything in it is trusted
    TIMED = "timed"  # one graph at one batch size, timed (the parameter is a latency.Timing)


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
    static_batch: int | None = None  # a static profile's fixed batch size (None for a dynamic batch)
    layout: str | None = None  # --artifacts: another tool's layout (conformance/layouts/); None: the suite's own
    emulated: str | None = None  # --emulate-cpu: the CPU (conformance/emulation.toml) the graph runs on; None: host
    # another tool's compiled sibling, by its file suffix ("_uint8"): a layout may ship several for one target
    sibling: str | None = None

    @property
    def id(self) -> str:
        """The test ID: [bundle-][layout-]variant-[encoder-]exporter-opN, then any axis that is not its default (the
        precision and profile only where the target does not imply them), then a static batch as bN, then the
        emulated CPU as on-ALIAS; another tool's compiled sibling adds its suffix (int8-dynamic-uint8)."""
        parts = [self.bundle.name] if self.bundle else []
        parts += [self.layout] if self.layout else []
        parts += [
            self.variant.slug,
            *([str(self.encoder)] if self.encoder else []),
            str(self.exporter),
            f"op{self.opset}",
        ]
        defaults = (self.target.precision, Target.ONNX, self.target.profile)
        parts += [str(axis) for axis, default in zip(self.axes, defaults, strict=True) if axis != default]
        parts += [self.sibling.strip("_")] if self.sibling and self.sibling.strip("_") != str(self.target) else []
        if self.static_batch is not None:
            parts.append(f"b{self.static_batch}")
        if self.emulated is not None:
            parts.append(f"on-{self.emulated}")
        return "-".join(parts)

    @property
    def axes(self) -> tuple[Precision, Target, Profile]:
        return (self.precision, self.target, self.profile)

    @property
    def group(self) -> str:
        """The tests that share one model and its exports: one variant (of one bundle)."""
        return f"{self.bundle.name}:{self.variant.name}" if self.bundle else self.variant.name

    def key(self) -> dict[str, Any]:
        """What identifies the graph itself (no bundle, and not the CPU it runs on): part of the export cache key."""
        return {k: v for k, v in self.record().items() if k not in ("case", "bundle", "emulated_cpu")}

    def record(self) -> dict[str, Any]:
        """Its fields by name; `static_batch` only where set, so a dynamic export's record (and with it its
        cache key) is what it was before static profiles existed."""
        record = {
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
        if self.static_batch is not None:
            record["static_batch"] = self.static_batch
        if self.layout is not None:
            record["layout"] = self.layout
        if self.emulated is not None:
            record["emulated_cpu"] = self.emulated
        if self.sibling is not None:
            record["sibling"] = self.sibling
        return record

    def context(self) -> dict[str, str]:
        """The fields tolerances and gates are matched on."""
        return {k: str(v) for k, v in self.record().items() if k not in ("case", "bundle", "opset") and v}

    def member(self, encoder: EncoderKind) -> Case:
        return replace(self, encoder=encoder)

    def on(self, target: Target, static_batch: int | None = None) -> Case:
        """This case for `target` (or, with an export target, the export it is compiled from). A static
        profile keeps this case's batch, or takes `static_batch`, or 1."""
        batch = None
        if target.profile == Profile.NPU_STATIC:
            batch = static_batch or self.static_batch or 1
        return replace(
            self, target=target, precision=target.precision, profile=target.profile, static_batch=batch, sibling=None
        )

    @property
    def source(self) -> Case:
        return self.on(self.target.base)

    def emulated_on(self, alias: str | None) -> Case:
        """This case on an emulated CPU (None: the host's)."""
        return replace(self, emulated=alias)

    @classmethod
    def from_record(cls, data: dict[str, Any], bundle: Path | None = None) -> Case:
        """The inverse of `record()` (the bundle folder is where the record was found, not its name). A
        precision other than the target's is refused: the target decides it (and with it the budget)."""
        target = Target(data.get("target", "onnx"))
        precision = Precision(data.get("precision", "fp32"))
        if precision != target.precision:
            raise ValueError(f"precision {precision} does not go with target {target} (which is {target.precision})")
        profile = Profile(data.get("profile", "dynamic"))
        if profile != target.profile:
            raise ValueError(f"profile {profile} does not go with target {target} (which is {target.profile})")
        static_batch = data.get("static_batch")  # or the batch another tool's layout fixes (immich: 1)
        if (static_batch is None) != (profile == Profile.DYNAMIC) and not data.get("layout"):
            raise ValueError(f"profile {profile} with static_batch {static_batch!r}: a static profile has one")
        return cls(
            get(data["variant"]),
            EncoderKind(data["encoder"]) if data.get("encoder") else None,
            Exporter(data["exporter"]),
            int(data["opset"]),
            precision,
            target,
            profile,
            bundle,
            int(static_batch) if static_batch is not None else None,
            data.get("layout"),
            data.get("emulated_cpu"),
            data.get("sibling"),
        )
