"""Writing a release bundle atomically: graphs under their canonical names, the projection, the manifest."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import onnx

from conformance import atomic
from conformance.artifact import Artifact
from conformance.bundle.manifest import GRAPH_FILES, MANIFEST, SCHEMA, BundleError
from conformance.encoders import EncoderKind
from conformance.graph import TensorSignature, graph_inputs, graph_outputs
from conformance.inputs import MEAN, STD
from conformance.profiles.mask import MASK_VALUE
from conformance.profiles.rules import load_profile
from conformance.tokenizer import preprocessing_record, tokenizer_record
from conformance.variants import Variant
from conformance.versions import toolchain
from conformance.weights import sha256_of


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
    onnx.save_model(
        model,
        str(folder / name),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{name}.data",
        size_threshold=1024,
    )
    return [name, f"{name}.data"]


def _graph_entry(artifact: Artifact, files: list[str], variant: Variant) -> dict[str, Any]:
    model = onnx.load(str(artifact.onnx_path), load_external_data=False)
    axes = {
        k: v
        for k, v in artifact.case.record().items()
        if k in ("encoder", "precision", "target", "profile", "static_batch")
    }
    entry: dict[str, Any] = {
        **axes,
        "file": files[0],
        "files": files,
        "inputs": [_signature_dict(s) for s in graph_inputs(model)],
        "outputs": [_signature_dict(s) for s in graph_outputs(model)],
    }
    if artifact.compiled is not None:
        entry["compile"] = artifact.compiled
    if artifact.case.static_batch is not None:
        rules = load_profile(str(artifact.case.profile))
        entry["static_profile"] = {"rules": rules.name, "rules_sha256": rules.sha256, "mask_value": MASK_VALUE}
    if artifact.encoder == EncoderKind.TEXT_SPLIT:
        entry.update(
            text_mode="split",
            token_dtype=artifact.token_dtype,
            projection={"file": artifact.projection_file, "shape": list(variant.projection_shape)},
        )
    return entry


def write_bundle(
    out: Path,
    variant: Variant,
    artifacts: dict[EncoderKind, Artifact],
    deploy_isa: list[str] | None = None,
    deploy_cpus: list[str] | None = None,
) -> Path:
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
            if artifact.projection_path is not None and artifact.projection_file is not None:
                shutil.copyfile(artifact.projection_path, staging / artifact.projection_file)
            graphs[str(kind)] = _graph_entry(artifact, files, variant)
        for path in staging.iterdir():
            path.chmod(0o644)  # onnx writes external data 0600; a release bundle is read by others
        manifest = {
            "schema": SCHEMA,
            "variant": variant.name,
            "provenance": first.provenance.to_dict(),
            "exporter": str(first.case.exporter),
            "opset": first.case.opset,
            "versions": toolchain(),
            "graphs": graphs,
            "tokenizer": tokenizer_record(variant.context_length),
            "preprocessing": preprocessing_record(variant.image_resolution, MEAN, STD),
            "files": [
                {"name": p.name, "size": p.stat().st_size, "sha256": sha256_of(p)} for p in sorted(staging.iterdir())
            ],
        }
        if deploy_isa:
            manifest["deploy_isa"] = sorted(set(deploy_isa))  # the CPUs it is meant for (int8_saturation)
        if deploy_cpus:  # the CPUs `pytest --artifacts` checks it on under emulation (conformance/emulation.toml)
            manifest["deploy_cpus"] = list(dict.fromkeys(deploy_cpus))
        atomic.write_json(staging / MANIFEST, manifest)
    return out
