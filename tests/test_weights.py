import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conformance import inputs, weights
from tests.support.helpers import TINY_VIT, synthetic


@pytest.fixture(scope="module")
def state_dict_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny-state-dict.pt"
    torch.save(synthetic(TINY_VIT, seed=3).model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def torchscript_file(tmp_path_factory) -> Path:
    """The official checkpoints' format: a TorchScript archive of the whole model."""
    model = synthetic(TINY_VIT, seed=4).model
    image = torch.from_numpy(inputs.images(TINY_VIT, 1))
    tokens = torch.from_numpy(inputs.tokens(["a dog"], TINY_VIT))
    path = tmp_path_factory.mktemp("weights") / "tiny-jit.pt"
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, (image, tokens)), str(path))
    return path


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_synthetic_weights_are_bitwise_reproducible():
    assert _same_weights(weights.build_synthetic(TINY_VIT, 0), weights.build_synthetic(TINY_VIT, 0))
    assert not _same_weights(weights.build_synthetic(TINY_VIT, 0), weights.build_synthetic(TINY_VIT, 1))


def test_synthetic_weights_leave_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    weights.build_synthetic(TINY_VIT, 0)
    assert torch.equal(torch.rand(3), expected)


def test_no_checkpoint_means_synthetic(tmp_path):
    loaded = weights.resolve(TINY_VIT, weights=tmp_path, seed=5)
    assert loaded.provenance.describe() == "synthetic (synthetic/3), seed 5"


def test_state_dict_checkpoint_loads_unverified_with_a_warning(state_dict_file):
    with pytest.warns(UserWarning, match="not a known tiny-vit checkpoint"):
        loaded = weights.resolve(TINY_VIT, weights=state_dict_file)
    assert loaded.provenance.kind == "unverified-file"
    assert loaded.provenance.sha256 == weights.sha256_of(state_dict_file)
    assert _same_weights(loaded.model, synthetic(TINY_VIT, seed=3).model)


def test_torchscript_archive_loads_through_clip_load(torchscript_file):
    with pytest.warns(UserWarning):
        loaded = weights.resolve(TINY_VIT, weights=torchscript_file)
    assert _same_weights(loaded.model, synthetic(TINY_VIT, seed=4).model)


def test_matching_hash_is_official(torchscript_file, tmp_path):
    official = tmp_path / "tiny.pt"
    official.write_bytes(torchscript_file.read_bytes())
    variant = dataclasses.replace(TINY_VIT, checkpoint_file="tiny.pt", sha256=weights.sha256_of(official))
    loaded = weights.resolve(variant, weights=tmp_path)  # a folder holding the official file name
    assert loaded.provenance.kind == "official"
    assert loaded.provenance.describe().startswith(f"official, sha256 {variant.sha256}")


def test_wrong_hash_is_a_clear_error(torchscript_file, tmp_path):
    official = tmp_path / "tiny.pt"
    official.write_bytes(torchscript_file.read_bytes())
    variant = dataclasses.replace(TINY_VIT, checkpoint_file="tiny.pt", sha256="0" * 64)
    with pytest.raises(weights.WeightsError, match=r"tiny.pt has sha256 [0-9a-f]{64}, but the official"):
        weights.resolve(variant, weights=tmp_path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(weights.WeightsError, match="does not exist"):
        weights.resolve(TINY_VIT, weights=tmp_path / "nope.pt")


def test_truncated_file_is_a_clear_error(state_dict_file, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(state_dict_file.read_bytes()[: state_dict_file.stat().st_size // 2])
    with pytest.raises(weights.WeightsError, match="truncated or corrupt"), pytest.warns(UserWarning):
        weights.resolve(TINY_VIT, weights=truncated)


def test_checkpoint_of_another_architecture_is_refused(state_dict_file):
    from conformance.variants import get

    with pytest.raises(weights.WeightsError, match="does not hold a tiny-rn model"), pytest.warns(UserWarning):
        weights.resolve(get("tiny-rn"), weights=state_dict_file)


@pytest.mark.parametrize("case", ["missing", "truncated", "empty"])
def test_bad_weights_fail_the_run_clearly_and_cache_nothing(case, state_dict_file, tmp_path, repo_root):
    bad = tmp_path / f"{case}.pt"
    if case == "truncated":
        bad.write_bytes(state_dict_file.read_bytes()[:1000])
    elif case == "empty":
        bad.write_bytes(b"")
    cache = tmp_path / "cache"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--variant",
            "tiny-vit",
            "--exporter",
            "torchscript",
            f"--weights={bad}",
            f"--export-cache={cache}",
            f"--report-dir={tmp_path / 'r'}",
            "conformance/test_checks.py::test_opset_validity",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert {"missing": "does not exist", "truncated": "truncated or corrupt", "empty": "is empty"}[case] in output
    assert "Traceback" not in output
    assert not list(cache.rglob("artifact.json")) and not list(cache.rglob("*.onnx"))


@pytest.mark.parametrize(
    "change",
    [
        {"vision_layers": 3},
        {"vision_patch_size": 4, "image_resolution": 32},
        {"transformer_layers": 3},
        {"vision_width": 192},
    ],
)
def test_checkpoint_differing_anywhere_in_the_architecture_is_refused(state_dict_file, change):
    """RN101, ViT-B/16 and ViT-B/32 agree on embed dim, width, resolution and context: the rest must be read."""
    variant = dataclasses.replace(TINY_VIT, name="tiny-vit-other", **change)
    with (
        pytest.raises(weights.WeightsError, match="does not hold a tiny-vit-other model") as caught,
        pytest.warns(UserWarning),
    ):
        weights.resolve(variant, weights=state_dict_file)
    assert "\n" not in str(caught.value)
    assert next(iter(change)) in str(caught.value)
