"""Release bundles: the export command, and every way a bundle can be bad."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conformance import cli
from conformance.bundle.manifest import open_bundle
from conformance.checks.bundle import check_bundle_integrity
from conformance.encoders import EncoderKind
from tests.support.helpers import TINY_VIT, export_bundle, pytest_run, reference_models, synthetic


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    out = root / "tiny"
    code = cli.main(["export", "--variant", "tiny-vit", "--out", str(out), "--export-cache", str(root / "cache")])
    assert code == 0
    return out


@pytest.fixture
def bundle(good_bundle, tmp_path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(good_bundle, tmp_path / "tiny"))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _rewrite(folder: Path, change) -> None:
    manifest = _manifest(folder)
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_export_writes_a_complete_bundle(good_bundle):
    manifest = _manifest(good_bundle)
    assert manifest["schema"] == "clip-conformance-bundle/3" and "deploy_cpus" not in manifest
    assert manifest["variant"] == "tiny-vit" and manifest["exporter"] == "dynamo" and manifest["opset"] == 20
    assert manifest["provenance"] == {
        "kind": "synthetic",
        "sha256": None,
        "path": None,
        "seed": 0,
        "scheme": "synthetic/3",
    }
    assert manifest["tokenizer"]["eot_id"] == manifest["tokenizer"]["max_id"] == 49407
    assert manifest["preprocessing"]["resolution"] == 32 and manifest["preprocessing"]["crop"] == "center"
    names = {f["name"] for f in manifest["files"]}
    assert names == {"image.onnx", "image.onnx.data", "text.onnx", "text.onnx.data", "text_projection_64_96.npy"}
    text = manifest["graphs"]["text-split"]
    assert text["text_mode"] == "split" and text["token_dtype"] == "int32"
    assert text["projection"] == {"file": "text_projection_64_96.npy", "shape": [64, 96]}
    assert text["inputs"] == [{"name": "text", "dtype": "int32", "shape": ["batch_size", 77]}]
    assert {"torch", "onnx", "onnxruntime", "clip"} <= set(manifest["versions"])
    result = check_bundle_integrity(good_bundle)
    assert result.passed, result.message


BAD = {
    "no manifest": (lambda b: (b / "manifest.json").unlink(), "manifest.json is missing"),
    "manifest not JSON": (lambda b: (b / "manifest.json").write_text("{oops"), "manifest.json is not valid JSON"),
    "wrong schema": (
        lambda b: _rewrite(b, lambda m: m.update(schema="clip-conformance-bundle/0")),
        "has schema 'clip-conformance-bundle/0', expected 'clip-conformance-bundle/3'",
    ),
    "deploy_cpus not in the table": (
        lambda b: _rewrite(b, lambda m: m.update(deploy_cpus=["zen3", "cascadelake"])),
        "deploy_cpus ['zen3', 'cascadelake'] is not a non-empty list of CPUs from conformance/emulation.toml",
    ),
    "deploy_cpus empty": (
        lambda b: _rewrite(b, lambda m: m.update(deploy_cpus=[])),
        "deploy_cpus [] is not a non-empty list",
    ),
    "deploy_cpus on schema 2": (
        lambda b: _rewrite(b, lambda m: m.update(schema="clip-conformance-bundle/2", deploy_cpus=["zen3"])),
        "deploy_cpus came with clip-conformance-bundle/3",
    ),
    "missing file": (lambda b: (b / "text.onnx.data").unlink(), "text.onnx.data: named in the manifest but missing"),
    "hash differs": (
        lambda b: np.save(b / "text_projection_64_96.npy", np.zeros((64, 96), np.float32)),
        "text_projection_64_96.npy: sha256 differs from the manifest",
    ),
    "truncated onnx": (lambda b: os.truncate(b / "image.onnx", 1000), "image.onnx: 1000 bytes, the manifest says"),
    "truncated data": (
        lambda b: os.truncate(b / "image.onnx.data", 4096),
        "image.onnx.data: 4096 bytes, the manifest says",
    ),
    "variant mismatch": (
        lambda b: _rewrite(b, lambda m: m.update(variant="tiny-rn")),
        "image.onnx: manifest shapes [3, 32, 32] -> [96] are not those of tiny-rn",
    ),
    "projection shape": (
        lambda b: _rewrite(b, lambda m: m["graphs"]["text-split"]["projection"].update(shape=[96, 64])),
        "text_projection_64_96.npy: manifest shape [96, 64] is not tiny-vit's [64, 96]",
    ),
    "unknown variant": (lambda b: _rewrite(b, lambda m: m.update(variant="ViT-Z/99")), "unknown variant 'ViT-Z/99'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_bundle_fails_integrity_naming_file_and_problem(bundle, case):
    damage, expected = BAD[case]
    damage(bundle)
    result = check_bundle_integrity(bundle)
    assert not result.passed
    assert expected in result.message


def test_truncated_data_is_also_caught_by_validity_without_a_crash(bundle):
    from conformance.checks.validity import check_opset_validity

    os.truncate(bundle / "image.onnx.data", 4096)
    result = check_opset_validity(open_bundle(bundle).artifact(EncoderKind.IMAGE))
    assert not result.passed and "image.onnx.data is truncated" in result.message


def test_run_on_a_good_and_a_bad_bundle_reports_both(good_bundle, bundle, repo_root, tmp_path):
    os.truncate(bundle / "text.onnx.data", 4096)
    broken = Path(shutil.move(bundle, tmp_path / "broken"))
    nomanifest = Path(shutil.copytree(good_bundle, tmp_path / "nomanifest"))
    (nomanifest / "manifest.json").unlink()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--latency=none",
            f"--artifacts={good_bundle}",
            f"--artifacts={broken}",
            f"--artifacts={nomanifest}",
            f"--report-dir={tmp_path / 'reports'}",
            "-q",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 1, run.stdout[-3000:]
    assert "Traceback" not in run.stdout and "INTERNALERROR" not in run.stdout
    tests = {
        t["nodeid"].split("::")[-1]: t for t in json.loads((tmp_path / "reports" / "results.json").read_text())["tests"]
    }
    assert "text.onnx.data: 4096 bytes, the manifest says" in tests["test_bundle_integrity[broken]"]["message"]
    assert "manifest.json is missing" in tests["test_bundle_integrity[nomanifest]"]["message"]
    assert (
        "text.onnx.data is truncated" in tests["test_opset_validity[broken-tiny-vit-text-split-dynamo-op20]"]["message"]
    )
    assert tests["test_opset_validity[broken-tiny-vit-image-dynamo-op20]"]["outcome"] == "passed"
    good = [t for name, t in tests.items() if "[tiny" in name]
    assert len(good) > 20 and all(t["outcome"] in ("passed", "skipped") for t in good)
    assert all(t["message"].count("\n") < 5 for t in tests.values())  # one clear line each, no traceback


def test_bundle_of_unverified_weights_needs_those_weights(tmp_path):
    checkpoint = tmp_path / "finetuned.pt"
    torch.save(synthetic(TINY_VIT, seed=7).model.state_dict(), checkpoint)
    out = tmp_path / "b"
    options = ["--weights", str(checkpoint), "--exporter", "torchscript", "--export-cache", str(tmp_path / "c")]
    with pytest.warns(UserWarning, match="unverified"):
        assert export_bundle(out, *options) == 0
    found = open_bundle(out)
    assert found.provenance.kind == "unverified-file"

    factory = reference_models
    with pytest.raises(Exception, match="pass --weights=PATH to that checkpoint"):
        factory(None).reference_for(found)
    other = tmp_path / "other.pt"
    torch.save(synthetic(TINY_VIT, seed=8).model.state_dict(), other)
    with pytest.raises(Exception, match="but b was exported from"):  # refused before the file is even read
        factory(other).reference_for(found)
    with pytest.warns(UserWarning):
        assert factory(checkpoint).reference_for(found).provenance.sha256 == found.provenance.sha256


def test_export_command_errors_are_clear(tmp_path, capsys):
    assert cli.main(["export", "--variant", "ViT-Z/99", "--out", str(tmp_path / "x")]) == cli.USAGE
    assert "unknown variant 'ViT-Z/99'; valid names: RN50" in capsys.readouterr().err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "file").write_text("x")
    assert cli.main(["export", "--variant", "tiny-vit", "--out", str(occupied)]) == cli.USAGE
    assert "exists and is not an empty folder" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert cli.main(["export", "--variant", "tiny-vit", "--out", str(blocker / "sub" / "b")]) == cli.USAGE
    assert "cannot create" in capsys.readouterr().err
    assert (
        cli.main(
            ["export", "--variant", "tiny-vit", "--out", str(tmp_path / "w"), "--weights", str(tmp_path / "nope.pt")]
        )
        == cli.BAD_WEIGHTS
    )
    assert "nope.pt does not exist" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_interrupted_export_leaves_no_bundle(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("conformance.bundle.write.sha256_of", crash)
    out = tmp_path / "bundle"
    assert export_bundle(out, "--exporter", "torchscript", "--export-cache", str(tmp_path / "c")) == cli.USAGE
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_bundle_without_an_image_graph_fails_integrity_and_the_run_goes_on(bundle, repo_root, tmp_path):
    """A manifest listing only the text graph: its integrity test fails with the reason; collection survives."""
    _rewrite(bundle, lambda m: m["graphs"].pop("image"))
    run = pytest_run(
        repo_root,
        "--latency=none",
        f"--artifacts={bundle}",
        "-q",
        "-rf",
        "conformance/test_checks.py::test_bundle_integrity",
    )
    assert run.returncode == 1, run.stdout[-3000:]
    assert "Interrupted" not in run.stdout and "a bundle holds an image graph and a split text graph" in run.stdout


def test_two_bundles_with_one_folder_name_are_a_usage_error(good_bundle, repo_root, tmp_path):
    twin = Path(shutil.copytree(good_bundle, tmp_path / "elsewhere" / good_bundle.name))
    run = pytest_run(repo_root, f"--artifacts={good_bundle}", f"--artifacts={twin}", "--collect-only", "-q")
    assert run.returncode == 4 and "--artifacts folders share a name" in run.stderr, run.stderr[-2000:]
