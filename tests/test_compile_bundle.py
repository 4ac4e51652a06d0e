"""Compiled release bundles: `export --target`, the recipe in the manifest, and what a manifest cannot claim."""

import json
import shutil
from pathlib import Path

import pytest

from conformance import cli
from conformance.checks.bundle import check_bundle_integrity
from conformance.weights import sha256_of
from tests.support.helpers import pytest_run


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compiled")
    out = root / "tiny-int8"
    options = ["--target", "int8-dynamic", "--export-cache", str(root / "c")]
    assert cli.main(["export", "--variant", "tiny-vit", "--out", str(out), *options]) == 0
    return out


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _claim(folder: Path, change) -> None:
    """Edit the manifest's claims and keep every listed hash consistent, as a careless tool would."""
    manifest = _manifest(folder)
    change(manifest)
    for entry in manifest["files"]:
        entry.update(size=(folder / entry["name"]).stat().st_size, sha256=sha256_of(folder / entry["name"]))
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_the_manifest_records_the_recipe_with_its_versions_and_settings(int8_bundle):
    graphs = _manifest(int8_bundle)["graphs"]
    for entry in graphs.values():
        assert entry["target"] == "int8-dynamic" and entry["precision"] == "int8"
        recipe = entry["compile"]
        assert recipe["recipe"] == "int8-dynamic" and recipe["tool"] == "onnxruntime" and recipe["tool_version"]
        assert recipe["settings"]["per_channel"] is True and recipe["quantised_nodes"]["MatMulInteger"] > 0
    assert check_bundle_integrity(int8_bundle).passed


@pytest.mark.parametrize(
    "lie",
    [
        lambda m: m["graphs"]["image"].update(target="int8-static"),
        lambda m: m["graphs"]["image"].update(target="onnx", precision="fp32"),
        lambda m: m["graphs"]["text-split"]["compile"].update(version=99),
        lambda m: m["graphs"]["image"]["compile"]["settings"].update(per_channel=False),
    ],
    ids=["other-target", "claims-fp32", "other-recipe-version", "other-settings"],
)
def test_a_manifest_claiming_another_compile_fails_integrity(int8_bundle, tmp_path, lie):
    bundle = Path(shutil.copytree(int8_bundle, tmp_path / "b"))
    _claim(bundle, lie)
    result = check_bundle_integrity(bundle)
    assert not result.passed and "the graph was made with" in result.message


def test_an_unsupported_recipe_and_export_is_a_usage_error(tmp_path, capsys):
    options = ["--target", "int8-static", "--opset", "11", "--export-cache", str(tmp_path / "c")]
    assert cli.main(["export", "--variant", "tiny-vit", "--out", str(tmp_path / "b"), *options]) == cli.USAGE
    assert "needs opset >= 13" in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_pytest_validates_a_compiled_bundle_with_the_int8_budget(int8_bundle, repo_root, tmp_path):
    run = pytest_run(
        repo_root, "--latency=none", f"--artifacts={int8_bundle}", f"--report-dir={tmp_path / 'reports'}", "-q"
    )
    assert run.returncode == 0, run.stdout[-3000:]
    tests = json.loads((tmp_path / "reports" / "results.json").read_text())["tests"]
    parity = [t for t in tests if t["check"] == "parity"]
    assert parity and all(t["target"] == "int8-dynamic" and t["outcome"] == "passed" for t in parity)
    assert all(t["figures"]["tolerance"]["reason"] == "default int8 parity" for t in parity)


def test_a_manifests_deploy_isa_reaches_the_check_and_an_unknown_flag_is_refused(int8_bundle, tmp_path, capsys):
    """`export --deploy-isa` records the CPUs a bundle is meant for; int8_saturation reads it from the manifest.
    A flag /proc/cpuinfo does not spell so (Intel's `avx512vnni`) is a usage error or an untrusted manifest."""
    from conformance.bundle.manifest import BundleError, open_bundle
    from tests.support.helpers import reference_models

    options = ["--target", "int8-dynamic", "--export-cache", str(tmp_path / "c")]
    out = tmp_path / "meant-for-vnni"
    assert (
        cli.main(["export", "--variant", "tiny-vit", "--out", str(out), *options, "--deploy-isa", "avx512_vnni"]) == 0
    )
    assert _manifest(out)["deploy_isa"] == ["avx512_vnni"]
    subject = reference_models(None).subject(open_bundle(out).case())
    assert subject.deploy_isa == frozenset({"avx512_vnni"})
    bad = tmp_path / "bad"
    assert cli.main(["export", "--variant", "tiny-vit", "--out", str(bad), *options, "--deploy-isa", "avx512vnni"]) == (
        cli.USAGE
    )
    assert "--deploy-isa 'avx512vnni'" in capsys.readouterr().err and not bad.exists()
    edited = Path(shutil.copytree(int8_bundle, tmp_path / "edited"))
    _claim(edited, lambda m: m.update(deploy_isa="avx512_vnni"))  # a string, not a list
    with pytest.raises(BundleError, match="deploy_isa"):
        open_bundle(edited)


@pytest.mark.parametrize(
    ("options", "accepted"),
    [
        ({"session.x64quantprecision": "1"}, True),
        ({"session.force_spinning_stop": "0"}, False),  # would slow every torch round after it: a hidden regression
        ("session.x64quantprecision=1", False),
    ],
    ids=["the-int8-option", "a-thread-policy", "not-a-mapping"],
)
def test_a_manifest_may_record_only_the_runtime_options_a_graph_needs(int8_bundle, tmp_path, options, accepted):
    from conformance.bundle.manifest import BundleError, open_bundle

    edited = Path(shutil.copytree(int8_bundle, tmp_path / "edited"))
    _claim(edited, lambda m: m["graphs"]["image"]["compile"].update(runtime_options=options))
    if accepted:
        assert open_bundle(edited).artifact(open_bundle(edited).encoders()[0]).runtime_options == options
    else:
        with pytest.raises(BundleError, match="runtime_options"):
            open_bundle(edited)
