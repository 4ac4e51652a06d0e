"""Building good and deliberately broken tiny artifacts for the self-tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from conformance import weights
from conformance.artifact import Artifact
from conformance.encoders import EncoderKind
from conformance.export import ExportCache, Exporter, ExportSpec, export_to
from conformance.variants import Variant, get
from conformance.weights import Provenance

TINY_VIT = get("tiny-vit")
TINY_RN = get("tiny-rn")


def synthetic(variant: Variant, seed: int = 0) -> weights.LoadedModel:
    return weights.LoadedModel(weights.build_synthetic(variant, seed), Provenance(kind="synthetic", seed=seed))


def good(cache: ExportCache, variant: Variant, encoder: EncoderKind | str,
         exporter: Exporter = Exporter.TORCHSCRIPT) -> Artifact:
    loaded = synthetic(variant)
    return cache.get(ExportSpec(variant, EncoderKind(encoder), exporter), loaded.model, loaded.provenance)


def copy_artifact(artifact: Artifact, folder: Path) -> Artifact:
    """A private copy to break, leaving the shared cached one intact."""
    shutil.copytree(artifact.folder, folder)
    return Artifact.load(folder / "artifact.json")


def export_model(model: torch.nn.Module, variant: Variant, encoder: EncoderKind | str, folder: Path,
                 exporter: Exporter = Exporter.TORCHSCRIPT) -> Artifact:
    """Export an arbitrary (possibly broken) model through the suite's own exporter path."""
    folder.mkdir(parents=True, exist_ok=True)
    return export_to(folder, ExportSpec(variant, EncoderKind(encoder), exporter), model,
                     Provenance(kind="synthetic", seed=0))


def export_seed_recipe(model: torch.nn.Module, variant: Variant, folder: Path, exporter: Exporter,
                       batch: int = 1, dynamic: bool = True) -> Artifact:
    """The seed's image export as written: a batch-1 example and `dynamic_axes` (or none at all)."""
    from conformance.encoders import wrap
    from conformance.export import _quiet_export
    from conformance.inputs import example_batch

    folder.mkdir(parents=True, exist_ok=True)
    axes = {"image": {0: "batch_size"}, "output": {0: "batch_size"}} if dynamic else None
    with _quiet_export():
        torch.onnx.export(wrap(model, EncoderKind.IMAGE), (example_batch(variant, EncoderKind.IMAGE, batch),),
                          str(folder / "model.onnx"), dynamo=exporter == Exporter.DYNAMO, input_names=["image"],
                          output_names=["output"], dynamic_axes=axes)
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    return Artifact(folder=folder, variant=variant.name, encoder=EncoderKind.IMAGE, exporter=str(exporter),
                    opset=20, precision="fp32", provenance=Provenance(kind="synthetic", seed=0), token_dtype=None,
                    projection_file=None, files=files)
