"""The pytest layer, driven as a user drives it: in a subprocess, from the repository root."""

import json

import pytest

from conformance import variants
from tests.support.helpers import outcomes, pytest_run


def test_unknown_variant_is_a_usage_error_naming_the_nine(repo_root):
    run = pytest_run(repo_root, "--variant", "Foo", "--collect-only", "-q")
    assert run.returncode == 4
    assert "unknown variant 'Foo'" in run.stderr
    assert all(name in run.stderr for name in variants.official_names())
    assert "Traceback" not in run.stderr


def test_all_collects_the_matrix_for_the_nine(repo_root):
    run = pytest_run(repo_root, "--variant", "all", "--collect-only", "-q")
    assert run.returncode == 0, run.stdout + run.stderr
    ids = run.stdout.splitlines()
    for variant in variants.OFFICIAL:
        for encoder in ("image", "text-split", "text-full"):
            for exporter in ("torchscript", "dynamo"):
                case = f"{variant.slug}-{encoder}-{exporter}-op20]"
                assert any(
                    i.startswith("conformance/test_checks.py::test_parity[") and i.endswith(case) for i in ids
                ), case
        assert any(i.endswith(f"test_zero_shot_agreement[{variant.slug}-dynamo-op20]") for i in ids)
    assert not any("tiny" in i for i in ids)


def test_options_narrow_the_matrix(repo_root):
    run = pytest_run(
        repo_root,
        "--variant",
        "RN50",
        "--exporter",
        "dynamo",
        "--opset",
        "18",
        "--collect-only",
        "-q",
        "conformance/test_checks.py::test_opset_validity",
    )
    ids = [line for line in run.stdout.splitlines() if "::" in line]
    assert ids == [
        f"conformance/test_checks.py::test_opset_validity[RN50-{k}-dynamo-op18]"
        for k in ("image", "text-split", "text-full")
    ]


def test_report_header_names_versions_weights_and_cpu(repo_root):
    run = pytest_run(
        repo_root,
        "--variant",
        "ViT-B/32",
        "--collect-only",
        "-q",
        "conformance/test_checks.py::test_opset_validity",
        "-o",
        "console_output_style=classic",
        "--verbose",
    )
    for needle in (
        "clip-conformance: variants ViT-B/32",
        "torch 2.",
        "onnxruntime ",
        "clip 1.0.1",
        "cpu: ",
        "threads",
        "weights: ViT-B/32: synthetic weights, seed 0",
    ):
        assert needle in run.stdout, needle


def test_xfail_file_marks_tests_and_warns_on_stale_entries(repo_root, tmp_path):
    xfails = tmp_path / "xfails.txt"
    xfails.write_text(
        "test_io_contract[tiny-rn-image-torchscript-op20]  # example reason\ntest_nothing_like_this[*]  # stale entry\n"
    )
    common = [*"--variant tiny-rn --exporter torchscript".split(), f"--xfails={xfails}"]
    common += [f"--export-cache={tmp_path / 'cache'}", "conformance/test_checks.py::test_io_contract"]
    run = pytest_run(repo_root, *common, "-rxX")
    assert run.returncode == 0, run.stdout
    assert outcomes(run)["xpassed"] >= 1 and "failed" not in outcomes(run) and "example reason" in run.stdout
    assert "'test_nothing_like_this[*]' matches no collected test" in run.stdout

    strict = pytest_run(repo_root, *common, "--strict-xfails")
    assert strict.returncode == 1 and outcomes(strict)["failed"] >= 1 and "XPASS(strict)" in strict.stdout


def test_xfail_entry_without_reason_is_a_usage_error(repo_root, tmp_path):
    xfails = tmp_path / "xfails.txt"
    xfails.write_text("test_io_contract[*]\n")
    run = pytest_run(repo_root, f"--xfails={xfails}", "--collect-only", "-q")
    assert run.returncode == 4 and "needs a reason" in run.stderr


def test_xdist_groups_by_variant_exports_once_and_a_warm_run_exports_nothing(repo_root, tmp_path):
    cache = tmp_path / "cache"
    args = [
        "--variant",
        "tiny-rn",
        "--variant",
        "tiny-vit",
        "-n",
        "2",
        "--exporter",  # one exporter: the scheduling is tested (with dynamo too: 70 s in CI, now 36-42)
        "torchscript",
        f"--export-cache={cache}",
        "--latency=none",
        f"--report-dir={tmp_path / 'r'}",
        "-k",
        "validity",
        "-v",
    ]
    first = pytest_run(repo_root, *args)
    assert first.returncode == 0, first.stdout[-2000:]
    log = (cache / "exports.log").read_text().splitlines()
    assert sorted(line.split()[2] for line in log) == sorted(
        f"{v}-{k}-torchscript-op20" for v in ("tiny-rn", "tiny-vit") for k in ("image", "text-split", "text-full")
    )
    for variant in ("tiny-rn", "tiny-vit"):  # the plugin's scheduler: one worker per variant
        assert len({line.split()[1] for line in log if f" {variant}-" in line}) == 1
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert not any("@" in t["nodeid"] for t in results["tests"])  # xdist's group suffix is stripped
    second = pytest_run(repo_root, *args)
    assert second.returncode == 0
    assert (cache / "exports.log").read_text().splitlines() == log


def test_device_cuda_skips_cleanly_without_a_gpu(repo_root, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the skip path is for machines without one")
    run = pytest_run(
        repo_root,
        "--variant",
        "tiny-rn",
        "--exporter",
        "torchscript",
        "--device",
        "cuda",
        f"--export-cache={tmp_path / 'c'}",
        f"--report-dir={tmp_path / 'r'}",
        "-rs",
        "conformance/test_checks.py::test_opset_validity",
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert outcomes(run) == {"skipped": 3} and "torch.cuda.is_available() is False" in run.stdout
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("*.onnx"))


def test_xfail_entry_matching_most_of_the_run_is_refused(repo_root, tmp_path):
    """An expected-failures entry that swallows the run would turn every failure into a green gate."""
    xfails = tmp_path / "xfails.txt"
    xfails.write_text("test_*  # temporarily, until the exporter is fixed\n")
    run = pytest_run(
        repo_root,
        "--variant",
        "tiny-rn",
        f"--xfails={xfails}",
        f"--report-dir={tmp_path / 'r'}",
        "--collect-only",
        "-q",
        "-k",
        "validity",
    )
    assert run.returncode == 4, run.stdout[-2000:]
    assert "matches" in run.stderr and "of the" in run.stderr and "test_*" in run.stderr
    assert "Traceback" not in run.stderr


def test_bad_weights_message_is_one_line_without_the_exception_chain(repo_root, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    run = pytest_run(
        repo_root,
        "--variant",
        "tiny-vit",
        "--exporter",
        "torchscript",
        f"--weights={empty}",
        f"--export-cache={tmp_path / 'c'}",
        f"--report-dir={tmp_path / 'r'}",
        "conformance/test_checks.py::test_opset_validity",
    )
    assert run.returncode == 1
    tests = json.loads((tmp_path / "r" / "results.json").read_text())["tests"]
    for test in tests:
        assert "empty.pt is empty" in test["message"]
        assert "During handling" not in test["message"] and "\n" not in test["message"].strip()


def test_tests_run_one_variant_at_a_time_with_latency_last(repo_root):
    """pytest's own reordering by fixture parameter interleaves variants; the suite's trylast order undoes that,
    so a model is built once, its sessions are closed once, and timing runs on warm sessions."""
    run = pytest_run(repo_root, "--variant", "tiny-vit", "--variant", "tiny-rn", "--collect-only", "-q")
    ids = [line for line in run.stdout.splitlines() if "::" in line]
    groups = ["tiny-rn" if "[tiny-rn-" in line else "tiny-vit" for line in ids]
    assert groups == sorted(groups, key=groups.index), "a variant's tests are not contiguous"
    for variant in ("tiny-vit", "tiny-rn"):
        mine = [line for line, group in zip(ids, groups, strict=True) if group == variant]
        timed = [i for i, line in enumerate(mine) if "::test_latency[" in line]
        assert timed and timed == list(range(len(mine) - len(timed), len(mine))), f"{variant}: latency not last"
