"""NPU releases: the runs and bundles a release makes with the static targets, and what they cannot claim."""

from __future__ import annotations

import json

import pytest

from conformance import cli
from tests.support.helpers import outcomes, pytest_run


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [("rules_sha256", "0" * 64, "made under npu-static rules"), ("mask_value", -1e30, "mask_value -1e+30")],
)
def test_a_manifest_lying_about_its_static_profile_fails_integrity(tmp_path, field, value, needle):
    from conformance.checks.bundle import check_bundle_integrity

    out = tmp_path / "npu"
    options = ["--target", "npu-static", "--export-cache", str(tmp_path / "c")]
    assert cli.main(["export", "--variant", "tiny-vit", "--out", str(out), *options]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["graphs"]["image"]["static_profile"][field] = value
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = check_bundle_integrity(out)
    assert not result.passed and needle in result.message, result.message


def test_a_release_run_that_requires_a_missing_toolchain_fails(repo_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIP_CONFORMANCE_TOOLCHAINS", str(tmp_path / "no-toolchains"))  # inherited by the runs
    args = ["--variant=tiny-vit", "--target=rknn", "--exporter=torchscript", "--latency=none", "-q", "-rs"]
    lenient = pytest_run(repo_root, *args, f"--export-cache={tmp_path / 'c'}")
    strict = pytest_run(repo_root, *args, "--require-target=rknn", f"--export-cache={tmp_path / 'c'}")
    assert lenient.returncode == 0 and "toolchain install rknn" in lenient.stdout, lenient.stdout[-2000:]
    assert strict.returncode == 1 and "--require-target rknn: tiny-vit" in strict.stdout, strict.stdout[-2000:]
    assert "--require-target rknn: no test of it passed" in strict.stdout


def test_a_required_target_with_deliberate_skips_passes_and_one_never_run_fails(repo_root, tmp_path):
    """Skips that are the check's own (a static graph's batch-1 row check, the known answer without official
    weights) do not fail a required target; a run where the target ran nothing (a bundle run ignores --target)
    does."""
    common = ["--latency=none", "-q", f"--export-cache={tmp_path / 'c'}"]
    wanted = "row_independence or known_answer or profile_ops"
    run = pytest_run(
        repo_root, "--variant=tiny-vit", "--target=npu-static", "--require-target=npu-static", "-k", wanted, *common
    )
    counts = outcomes(run)
    assert run.returncode == 0 and counts["skipped"] >= 1 and counts["passed"] >= 1, run.stdout[-2000:]
    out = tmp_path / "npu"
    assert (
        cli.main(
            [
                "export",
                "--variant",
                "tiny-vit",
                "--out",
                str(out),
                "--target",
                "npu-static",
                "--export-cache",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    bundle = pytest_run(repo_root, f"--artifacts={out}", "--target=openvino", "--require-target=openvino", *common)
    assert bundle.returncode == 1 and "--require-target openvino: no test of it passed" in bundle.stdout


def test_an_npu_release_is_one_static_bundle_per_batch_and_validates(repo_root, tmp_path):
    out = tmp_path / "npu-release"
    options = ["--target", "npu-static", "--static-batch", "1,2", "--export-cache", str(tmp_path / "c")]
    assert cli.main(["export", "--variant", "tiny-vit", "--out", str(out), *options]) == 0
    bundles = sorted(p.name for p in out.iterdir())
    assert bundles == ["npu-release-b1", "npu-release-b2"]
    for name, batch in zip(bundles, (1, 2), strict=True):
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert manifest["exporter"] == "torchscript" and manifest["opset"] == 17
        for entry in manifest["graphs"].values():
            assert entry["static_batch"] == batch and entry["profile"] == "npu-static"
            assert entry["inputs"][0]["shape"][0] == batch and len(entry["static_profile"]["rules_sha256"]) == 64
    run = pytest_run(repo_root, f"--artifacts={out}", "--latency=none", f"--report-dir={tmp_path / 'r'}", "-q")
    assert run.returncode == 0, run.stdout[-3000:]
    tests = json.loads((tmp_path / "r" / "results.json").read_text())["tests"]
    checks = {t["check"] for t in tests if t["outcome"] == "passed"}
    assert {
        "profile_ops",
        "static_shapes",
        "profile_dtypes",
        "finite_constants",
        "parity",
        "bundle_integrity",
    } <= checks
    dynamic = [t for t in tests if t["check"] == "dynamic_batch"]
    assert dynamic and all(t["outcome"] == "skipped" for t in dynamic)


def test_a_manifest_claiming_another_static_batch_fails_integrity(tmp_path):
    from conformance.checks.bundle import check_bundle_integrity
    from conformance.weights import sha256_of

    out = tmp_path / "npu"
    options = ["--target", "npu-static", "--export-cache", str(tmp_path / "c")]
    assert cli.main(["export", "--variant", "tiny-vit", "--out", str(out), *options]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["graphs"]["image"]["static_batch"] = 8
    (out / "manifest.json").write_text(json.dumps(manifest))
    for entry in manifest["files"]:
        entry.update(size=(out / entry["name"]).stat().st_size, sha256=sha256_of(out / entry["name"]))
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = check_bundle_integrity(out)
    assert not result.passed and "static_batch" in result.message


def test_selecting_rknn_also_checks_the_npu_static_graphs_it_is_built_from(repo_root, tmp_path):
    run = pytest_run(repo_root, "--variant=tiny-vit", "--target=rknn", "--collect-only", "-q")
    assert run.returncode == 0, run.stdout[-2000:]
    assert "test_profile_ops[tiny-vit-image-dynamo-op18-npu-static-b1]" in run.stdout
    assert "test_parity[tiny-vit-image-torchscript-op17-rknn-b1]" in run.stdout
