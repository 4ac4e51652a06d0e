"""Exports: `ExportSpec` -> `Artifact`, for both torch exporters, cached on disk under a key of every input."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from conformance import atomic
from conformance.artifact import Artifact, ArtifactError
from conformance.axes import DEFAULT_TOKEN_DTYPE
from conformance.case import Case, Exporter, Profile
from conformance.compile.build import COMPILE_FORMAT, compile_to
from conformance.compile.recipe import Recipe
from conformance.compile.recipes import recipe_for
from conformance.encoders import (
    INPUT_NAME,
    OUTPUT_NAME,
    ClipModel,
    EncoderKind,
    projection_filename,
    text_projection,
    wrap,
)
from conformance.graph import files_of, save_graph, stamp_metadata
from conformance.inputs import example_batch
from conformance.profiles.mask import MASK_VALUE, make_mask_finite
from conformance.versions import toolchain
from conformance.weights import Provenance

# Bumped whenever this module changes what it writes, so older cache entries are never trusted.
EXPORT_FORMAT = 3  # 3: artifact.json records the Case; graphs are stamped with target and profile too
# A static profile's exports are new entries (their Case differs), so the fp32 exports' keys stay warm.
# The dynamo exporter specialises dimensions of size 0 and 1 (a batch-1 example comes out with a fixed
# batch of 1 whatever `dynamic_shapes` says), so every export traces a batch of 2.
EXAMPLE_BATCH = 2

Progress = Callable[[str], None]


class ExportError(RuntimeError):
    """An export that did not produce a usable file; the message names the case."""


@dataclass(frozen=True)
class ExportSpec:
    case: Case
    device: str = "cpu"
    token_dtype: str = DEFAULT_TOKEN_DTYPE  # text encoders only
    rknn_platform: str | None = None  # --rknn-platform (None: the recipe's own)

    @property
    def encoder(self) -> EncoderKind:
        assert self.case.encoder is not None, "an export is one encoder's graph"
        return self.case.encoder

    @property
    def graph_token_dtype(self) -> str | None:
        return None if self.encoder == EncoderKind.IMAGE else self.token_dtype

    def cache_key(self, provenance: Provenance) -> str:
        fields = {
            **self.case.key(),
            "format": EXPORT_FORMAT,
            "weights": provenance.weights_id,
            "device": self.device,
            "versions": self.versions(),
            "token_dtype": self.graph_token_dtype,
        }
        if self.case.target.compiled:  # the fp32 export's key stays what it was: its cache stays warm
            fields["recipe"] = self.recipe().identity(self.case)
            fields["compile_format"] = COMPILE_FORMAT
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def versions(self) -> dict[str, str]:
        """What made the graph. An export from the model never imports onnxruntime (tests/test_export.py runs one
        with the import refused), so another onnxruntime finds its exports cached; a compile target's recipe may."""
        if self.case.target.compiled:
            return toolchain()
        return {name: version for name, version in toolchain().items() if name != "onnxruntime"}

    def recipe(self) -> Recipe:
        """A compile target's recipe, as this run builds it."""
        return recipe_for(self.case.target, self.rknn_platform)

    def source(self) -> ExportSpec:
        """The fp32 export a compile target is built from."""
        return replace(self, case=self.case.source)


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence tracer warnings and dynamo's step-by-step stdout; keep the MHA fast path off (immich#12496)."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    loggers = [logging.getLogger(name) for name in ("torch", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_exporter(module: torch.nn.Module, example: torch.Tensor, path: Path, spec: ExportSpec) -> None:
    """Call `torch.onnx.export` the way each exporter needs to keep the batch dimension dynamic (or, for a
    static profile, fixed at the example's batch)."""
    names: dict[str, Any] = {"input_names": [INPUT_NAME[spec.encoder]], "output_names": [OUTPUT_NAME]}
    opset = spec.case.opset
    static = spec.case.static_batch is not None
    with _quiet_export():
        if static:
            dynamo = spec.case.exporter == Exporter.DYNAMO
            options: dict[str, Any] = {"external_data": True} if dynamo else {}
            torch.onnx.export(module, (example,), str(path), dynamo=dynamo, opset_version=opset, **names, **options)
        elif spec.case.exporter == Exporter.TORCHSCRIPT:
            axes = {INPUT_NAME[spec.encoder]: {0: "batch_size"}, OUTPUT_NAME: {0: "batch_size"}}
            torch.onnx.export(
                module, (example,), str(path), dynamo=False, opset_version=opset, dynamic_axes=axes, **names
            )
        else:
            batch = torch.export.Dim("batch_size", min=1)
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=({0: batch},),
                external_data=True,
                **names,
            )


def apply_mask_policy(path: Path) -> float:
    """The static profile's mask policy, on purpose and before any compiler does it for us: CLIP's causal mask
    exported with a finite value (conformance/profiles/mask.py shows softmax cannot tell it from -inf)."""
    import onnx

    model = onnx.load(str(path), load_external_data=True)
    if make_mask_finite(model, MASK_VALUE):
        for stale in files_of(path.parent):
            (path.parent / stale).unlink()
        save_graph(model, path)
    return MASK_VALUE


def export_to(folder: Path, spec: ExportSpec, model: ClipModel, provenance: Provenance) -> Artifact:
    """Export `spec` from `model` into `folder` (which must exist) and describe it as an Artifact."""
    case = spec.case
    module = wrap(model.to(spec.device), spec.encoder)
    example = example_batch(case.variant, spec.encoder, case.static_batch or EXAMPLE_BATCH)
    if spec.graph_token_dtype:
        example = example.to(getattr(torch, spec.graph_token_dtype))
    example = example.to(spec.device)
    started = time.perf_counter()
    try:
        run_exporter(module, example, folder / "model.onnx", spec)
    except Exception as exc:  # noqa: BLE001 - exporter errors are many and deep; one line says enough
        raise ExportError(f"{case.id}: {case.exporter} export failed: {type(exc).__name__}: {exc}") from None
    finally:
        model.to("cpu")
    seconds = time.perf_counter() - started
    stamped = {k: str(v) for k, v in case.key().items() if k != "opset"}
    if case.profile == Profile.NPU_STATIC:
        stamped["mask_value"] = str(apply_mask_policy(folder / "model.onnx"))
    stamp_metadata(folder / "model.onnx", {**stamped, "weights": provenance.weights_id})
    projection = None
    if spec.encoder == EncoderKind.TEXT_SPLIT:
        projection = projection_filename(case.variant)
        np.save(folder / projection, text_projection(model))
    return Artifact(
        folder=folder,
        case=case,
        provenance=provenance,
        token_dtype=spec.graph_token_dtype,
        projection_file=projection,
        files=files_of(folder),
        export_seconds=round(seconds, 2),
    )


@dataclass
class ExportCache:
    """Exports on disk, one folder per cache key; a folder exists only once its export is complete."""

    root: Path
    progress: Progress = print
    rebuild_older_than: float | None = None  # --rebuild-exports: re-export entries made before this time
    _memo: dict[str, Artifact] = field(default_factory=dict)

    def get(self, spec: ExportSpec, model: ClipModel, provenance: Provenance) -> Artifact:
        """The export (or, for a compile target, the compiled graph, after its fp32 export), made at most once."""
        key = spec.cache_key(provenance)
        if key not in self._memo:
            if spec.case.target.compiled:
                source = self.get(spec.source(), model, provenance)
                doing = f"compiling {spec.case.id} (recipe {spec.case.target}, from {source.case.id})"
                self._memo[key] = self._load_or_make(
                    spec, key, doing, lambda f: compile_to(f, spec.case, source, spec.recipe())
                )
            else:
                doing = f"exporting {spec.case.id} ({provenance.describe()})"
                self._memo[key] = self._load_or_make(spec, key, doing, lambda f: export_to(f, spec, model, provenance))
        return self._memo[key]

    def _load_or_make(self, spec: ExportSpec, key: str, doing: str, make: Callable[[Path], Artifact]) -> Artifact:
        final = self.root / spec.case.variant.slug / f"{spec.case.id}-{key}"
        final.parent.mkdir(parents=True, exist_ok=True)
        # The lock makes pytest-xdist workers (and concurrent runs) export each key once.
        with FileLock(str(final) + ".lock"):
            cached = self._trusted(final)
            if cached is not None:
                return cached
            self.progress(f"{doing} ...")
            with atomic.staged_directory(final, replace=True) as staging:
                artifact = make(staging)
                artifact.save(staging / "artifact.json")
            artifact = Artifact.load(final / "artifact.json")
            self._log(key, spec, artifact)
            done = "compiled" if spec.case.target.compiled else "exported"
            self.progress(
                f"{done} {spec.case.id}: {artifact.total_bytes / 1e6:.1f} MB in {artifact.export_seconds:.1f} s "
                f"-> {final}"
            )
            return artifact

    def _log(self, key: str, spec: ExportSpec, artifact: Artifact) -> None:
        """One line per export made, across runs and xdist workers: an audit trail of what was rebuilt."""
        line = (
            f"{time.strftime('%Y-%m-%dT%H:%M:%S')} pid={os.getpid()} {spec.case.id} key={key} "
            f"{artifact.total_bytes} bytes {artifact.export_seconds} s\n"
        )
        with (self.root / "exports.log").open("a", encoding="utf-8") as handle:
            handle.write(line)

    def _trusted(self, final: Path) -> Artifact | None:
        marker = final / "artifact.json"
        if not marker.exists():
            return None
        if self.rebuild_older_than is not None and marker.stat().st_mtime < self.rebuild_older_than:
            return None
        try:
            artifact = Artifact.load(marker)
            artifact.verify_sizes()
        except ArtifactError as exc:
            self.progress(f"ignoring damaged cache entry {final}: {exc}")
            return None
        return artifact
