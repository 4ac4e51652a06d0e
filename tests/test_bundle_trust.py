"""A manifest cannot redirect the checks: a bundle is checked exactly as shipped, every file accounted for."""

import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch

from conformance import cli
from conformance.bundle.manifest import open_bundle
from conformance.checks.bundle import check_bundle_integrity
from conformance.weights import sha256_of
from tests.support.helpers import TINY_VIT, reference_models, synthetic


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trust")
    out = root / "tiny"
    assert cli.main(["export", "--variant", "tiny-vit", "--out", str(out), "--export-cache", str(root / "c")]) == 0
    return out


@pytest.fixture
def bundle(shipped, tmp_path) -> Path:
    return Path(shutil.copytree(shipped, tmp_path / "tiny"))


def _edit(folder: Path, change) -> None:
    """Change the manifest as a careless (or hostile) tool would, then make every listed hash consistent."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    for entry in manifest["files"]:
        file = folder / entry["name"]
        if file.is_file():
            entry.update(size=file.stat().st_size, sha256=sha256_of(file))
    path.write_text(json.dumps(manifest))


def _listed(manifest: dict, name: str) -> dict:
    return {"name": name, "size": 0, "sha256": ""}


def test_good_bundle_passes(shipped):
    result = check_bundle_integrity(shipped)
    assert result.passed, result.message


def test_graph_file_not_listed_with_a_hash_fails(bundle):
    """The manifest points the image checks at an unlisted file; the listed image.onnx is never checked."""
    shutil.copyfile(bundle / "image.onnx", bundle / "decoy.onnx")
    _edit(bundle, lambda m: m["graphs"]["image"].update(file="decoy.onnx"))
    result = check_bundle_integrity(bundle)
    assert not result.passed and "decoy.onnx" in result.message


def test_unlisted_file_in_the_folder_fails(bundle):
    (bundle / "notes.bin").write_bytes(b"not part of the release")
    result = check_bundle_integrity(bundle)
    assert not result.passed and "notes.bin: in the bundle folder but not listed" in result.message


@pytest.mark.parametrize("location", ["../elsewhere/image.onnx.data", "/tmp/image.onnx.data"])
def test_external_data_outside_the_bundle_fails(bundle, tmp_path, location):
    model = onnx.load(str(bundle / "image.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(bundle / "image.onnx"))

    def drop_data(m: dict) -> None:
        m["files"] = [f for f in m["files"] if f["name"] != "image.onnx.data"]
        m["graphs"]["image"]["files"] = ["image.onnx"]

    (bundle / "image.onnx.data").unlink()
    _edit(bundle, drop_data)
    result = check_bundle_integrity(bundle)
    assert not result.passed and location in result.message


def test_official_claim_without_the_registry_hash_fails(bundle):
    _edit(
        bundle, lambda m: m.update(provenance={"kind": "official", "sha256": "ab" * 32, "path": "x.pt", "seed": None})
    )
    result = check_bundle_integrity(bundle)
    assert not result.passed and "official" in result.message


@pytest.mark.parametrize(("key", "value"), [("exporter", "torchscript"), ("opset", 17)])
def test_manifest_disagreeing_with_the_graphs_fails(bundle, key, value):
    _edit(bundle, lambda m: m.update({key: value}))
    result = check_bundle_integrity(bundle)
    assert not result.passed and key in result.message


@pytest.mark.parametrize(("key", "value"), [("precision", "fp16"), ("target", "ort-opt"), ("profile", "static")])
def test_graph_axes_disagreeing_with_the_graph_fail(bundle, key, value):
    """A graph relabelled with another precision, target or shape profile than it was exported as."""
    _edit(bundle, lambda m: m["graphs"]["image"].update({key: value}))
    result = check_bundle_integrity(bundle)
    assert not result.passed and key in result.message.lower()


def test_manifest_token_dtype_disagreeing_with_the_graph_fails(bundle):
    _edit(bundle, lambda m: m["graphs"]["text-split"].update(token_dtype="int64"))
    result = check_bundle_integrity(bundle)
    assert not result.passed and "token_dtype" in result.message


def test_weights_given_for_a_synthetic_bundle_fail(shipped, tmp_path):
    """The realistic accident: a bundle exported without weights, validated 'against the checkpoint'."""
    checkpoint = tmp_path / "ViT-B-32.pt"
    torch.save(synthetic(TINY_VIT, seed=7).model.state_dict(), checkpoint)
    result = check_bundle_integrity(shipped, weights=checkpoint)
    assert not result.passed
    assert "synthetic" in result.message and "ViT-B-32.pt" in result.message
    with pytest.raises(Exception, match="synthetic"):
        reference_models(checkpoint).reference_for(open_bundle(shipped))


def test_bundle_of_an_older_synthetic_scheme_is_refused_not_rebuilt(bundle):
    """A synthetic/1 bundle's reference would be rebuilt with other weights: refuse it, clearly."""
    _edit(bundle, lambda m: m["provenance"].pop("scheme"))
    result = check_bundle_integrity(bundle)
    assert not result.passed and "scheme 'synthetic/1'" in result.message
    assert "export the bundle again" in result.message
    with pytest.raises(Exception, match="synthetic/1"):
        reference_models(None).reference_for(open_bundle(bundle))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("eot_id", 49406, "EOT id 49406 is not the largest id"),
        ("bpe_sha256", "0" * 64, "bpe_sha256"),
    ],
)
def test_tokenizer_record_is_checked(bundle, key, value, expected):
    _edit(bundle, lambda m: m["tokenizer"].update({key: value}))
    result = check_bundle_integrity(bundle)
    assert not result.passed and expected in result.message


def test_graph_entry_pointing_away_from_the_file_users_load_fails(bundle):
    """image.onnx ships (listed, hashed, broken); the manifest points the checks at a good copy."""
    shutil.copyfile(bundle / "image.onnx", bundle / "image.fp32.onnx")
    (bundle / "image.onnx").write_bytes(b"not the graph that was checked")

    def redirect(m: dict) -> None:
        m["graphs"]["image"].update(file="image.fp32.onnx", files=["image.fp32.onnx", "image.onnx.data"])
        m["files"].append({"name": "image.fp32.onnx", "size": 0, "sha256": ""})

    _edit(bundle, redirect)
    result = check_bundle_integrity(bundle)
    assert not result.passed and "the image graph must be image.onnx" in result.message
    assert "image.onnx: listed in the manifest but used by no graph" in result.message


def test_projection_under_another_name_fails(bundle):
    shutil.copyfile(bundle / "text_projection_64_96.npy", bundle / "projection.npy")

    def redirect(m: dict) -> None:
        m["graphs"]["text-split"]["projection"]["file"] = "projection.npy"
        m["files"].append({"name": "projection.npy", "size": 0, "sha256": ""})

    _edit(bundle, redirect)
    result = check_bundle_integrity(bundle)
    assert not result.passed and "the projection must be text_projection_64_96.npy" in result.message


def test_symlinked_files_fail(bundle, tmp_path):
    """A tar of the folder would ship a dangling link: the bundle must hold the files themselves."""
    elsewhere = tmp_path / "elsewhere.npy"
    shutil.move(bundle / "text_projection_64_96.npy", elsewhere)
    (bundle / "text_projection_64_96.npy").symlink_to(elsewhere)
    result = check_bundle_integrity(bundle)
    assert not result.passed and "text_projection_64_96.npy: a symbolic link" in result.message
