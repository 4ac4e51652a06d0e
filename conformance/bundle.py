"""Release bundles: `image.onnx`, `text.onnx` (split form), the projection `.npy` and `manifest.json`.

The manifest (schema "clip-conformance-bundle/1", documented in the README) records the variant, the
weights' provenance, exporter, opset, precision, tool versions, every file's name, size and sha256,
and each graph's I/O contract. `checks.bundle.check_bundle_integrity` verifies all of it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from conformance import atomic
from conformance.artifact import Artifact
from conformance.encoders import EncoderKind
from conformance.graph import TensorSignature, graph_inputs, graph_outputs
from conformance.inputs import MEAN, STD
from conformance.tokenizer import preprocessing_record, tokenizer_record
from conformance.variants import UnknownVariantError, Variant, get
from conformance.versions import toolchain
from conformance.weights import Provenance, sha256_of

SCHEMA = "clip-conformance-bundle/1"
MANIFEST = "manifest.json"
GRAPH_FILES = {EncoderKind.IMAGE: "image.onnx", EncoderKind.TEXT_SPLIT: "text.onnx"}


class BundleError(RuntimeError):
    """A bundle that cannot be trusted; the message names the file and the problem."""


def _signature_dict(sig: TensorSignature) -> dict[str, Any]:
    return {"name": sig.name, "dtype": sig.elem_type, "shape": list(sig.dims)}


def _copy_graph(artifact: Artifact, folder: Path, name: str) -> list[str]:
    """Copy a graph under a new name; external data is re-saved beside it as `<name>.data`."""
    model = onnx.load(str(artifact.onnx_path), load_external_data=False)
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    if not external:
        shutil.copyfile(artifact.onnx_path, folder / name)
        return [name]
    model = onnx.load(str(artifact.onnx_path))
    onnx.save_model(model, str(folder / name), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{name}.data", size_threshold=1024)
    return [name, f"{name}.data"]


def _graph_entry(artifact: Artifact, files: list[str], variant: Variant) -> dict[str, Any]:
    model = onnx.load(str(artifact.onnx_path), load_external_data=False)
    entry: dict[str, Any] = {
        "encoder": str(artifact.encoder), "file": files[0], "files": files,
        "inputs": [_signature_dict(s) for s in graph_inputs(model)],
        "outputs": [_signature_dict(s) for s in graph_outputs(model)],
    }
    if artifact.encoder == EncoderKind.TEXT_SPLIT:
        entry.update(text_mode="split", token_dtype=artifact.token_dtype, projection={
            "file": artifact.projection_file, "shape": list(variant.projection_shape)})
    return entry


def write_bundle(out: Path, variant: Variant, artifacts: dict[EncoderKind, Artifact]) -> Path:
    """Write a bundle atomically: it appears at `out` complete, or not at all."""
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not empty; choose a new folder or remove it")
    if out.exists():
        out.rmdir()
    first = next(iter(artifacts.values()))
    with atomic.staged_directory(out) as staging:
        graphs = {}
        for kind, artifact in artifacts.items():
            files = _copy_graph(artifact, staging, GRAPH_FILES[kind])
            if artifact.projection_path is not None:
                shutil.copyfile(artifact.projection_path, staging / artifact.projection_file)
            graphs[str(kind)] = _graph_entry(artifact, files, variant)
        for path in staging.iterdir():
            path.chmod(0o644)  # onnx writes external data 0600; a release bundle is read by others
        manifest = {
            "schema": SCHEMA, "variant": variant.name, "provenance": first.provenance.to_dict(),
            "exporter": first.exporter, "opset": first.opset, "precision": first.precision,
            "versions": toolchain(), "graphs": graphs,
            "tokenizer": tokenizer_record(variant.context_length),
            "preprocessing": preprocessing_record(variant.image_resolution, MEAN, STD),
            "files": [{"name": p.name, "size": p.stat().st_size, "sha256": sha256_of(p)}
                      for p in sorted(staging.iterdir())],
        }
        atomic.write_json(staging / MANIFEST, manifest)
    return out


@dataclass
class Bundle:
    folder: Path
    manifest: dict[str, Any]
    variant: Variant

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def provenance(self) -> Provenance:
        return Provenance.from_dict(self.manifest["provenance"])

    def encoders(self) -> list[EncoderKind]:
        return [EncoderKind(entry["encoder"]) for entry in self.manifest["graphs"].values()]

    def artifact(self, encoder: EncoderKind) -> Artifact:
        entry = self.manifest["graphs"][str(encoder)]
        sizes = {f["name"]: f["size"] for f in self.manifest["files"]}
        projection = entry.get("projection", {}).get("file")
        names = [*entry["files"], *([projection] if projection else [])]
        return Artifact(
            folder=self.folder, variant=self.variant.name, encoder=encoder, exporter=self.manifest["exporter"],
            opset=int(self.manifest["opset"]), precision=self.manifest["precision"], provenance=self.provenance,
            token_dtype=entry.get("token_dtype"), projection_file=projection,
            files={n: sizes.get(n, -1) for n in names}, source="bundle", onnx_file=entry["file"],
        )


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise BundleError(f"{folder} is not a folder")
    if not path.is_file():
        raise BundleError(f"{path} is missing: not a bundle made by `python -m conformance export`")
    try:
        manifest = atomic.read_document(path, SCHEMA)
    except atomic.DocumentError as exc:
        raise BundleError(str(exc)) from None
    missing = [k for k in ("variant", "provenance", "exporter", "opset", "precision", "graphs", "files")
               if k not in manifest]
    if missing:
        raise BundleError(f"{path} lacks {', '.join(missing)}")
    return manifest


def open_bundle(folder: Path) -> Bundle:
    """The manifest, parsed; no file is hashed yet (that is `bundle_validation.file_problems`)."""
    manifest = read_manifest(folder)
    try:
        variant = get(manifest["variant"])
    except UnknownVariantError as exc:
        raise BundleError(f"{folder / MANIFEST}: {exc}") from None
    return Bundle(folder, manifest, variant)
