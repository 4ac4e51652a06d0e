"""The check registry: one name per check, from the test ID to the report column and the tolerance table."""

import pytest

from conformance.case import Case, Exporter, Target
from conformance.encoders import EncoderKind
from conformance.registry import BY_NAME, CHECKS, COLUMNS, Scope, run_check
from conformance.report import html
from conformance.subject import Subject
from tests.support.helpers import TINY_VIT, good, pytest_run, synthetic


def test_names_are_unique_and_are_the_report_columns_in_order():
    assert len(BY_NAME) == len(CHECKS)
    assert COLUMNS == tuple(c.name for c in CHECKS)
    tests = [{"check": name, "test": name, "outcome": "passed", "variant": "v"} for name in reversed(COLUMNS)]
    assert html.matrix(tests)[0] == list(COLUMNS)


def test_every_check_is_a_test_named_after_it(repo_root):
    args = ["--collect-only", "-q", "--variant", "tiny-vit", "conformance/test_checks.py"]
    run = pytest_run(repo_root, *args, "--target=all")
    collected = {line.split("::")[1].split("[")[0] for line in run.stdout.splitlines() if "::" in line}
    # bundle tests need --artifacts, and the host-contract checks another tool's folder (a layout) in it
    expected = {f"test_{c.name}" for c in CHECKS if c.scope != Scope.BUNDLE and not c.layouts_only}
    assert collected == expected, run.stdout[-2000:]
    plain = pytest_run(repo_root, *args)  # no ort-opt target: its fusions tests are deselected, not skipped
    assert "test_fusions" not in plain.stdout and "empty parameter set" not in plain.stdout


def test_an_unknown_target_is_a_usage_error_naming_the_choices(repo_root):
    run = pytest_run(repo_root, "--collect-only", "-q", "--variant", "tiny-vit", "--target", "tpu")
    assert run.returncode == 4 and "argument --target: 'tpu' unknown; choose from" in run.stderr, run.stderr[-2000:]


def test_applicability_follows_the_row():
    split_only = BY_NAME["projection_file"]
    assert split_only.applies(Case(TINY_VIT, EncoderKind.TEXT_SPLIT, Exporter.DYNAMO))
    assert not split_only.applies(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO))
    image = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO)
    static = image.on(Target.NPU_STATIC)
    # A static graph gets the dynamic-batch tests, which skip saying why (tests/test_npu_targets.py), and the
    # profile's own checks, which a dynamic graph does not get.
    assert BY_NAME["dynamic_batch"].applies(static) and BY_NAME["dynamic_batch"].static_skip
    assert BY_NAME["profile_ops"].applies(static) and not BY_NAME["profile_ops"].applies(image)
    assert not BY_NAME["dynamic_batch"].applies(image.on(Target.RKNN))  # its simulator answers fixed inputs only
    assert BY_NAME["fusions"].applies(image.on(Target.ORT_OPT)) and not BY_NAME["fusions"].applies(image)
    assert all(BY_NAME["finite_extremes"].applies(image.on(t)) for t in Target)
    # a compiled graph against the fp32 graph it was made from: not an export, not RKNN's fixed-input simulator
    compiled = {t for t in Target if BY_NAME["source_agreement"].applies(image.on(t))}
    assert compiled == {t for t in Target if t.compiled} - {Target.RKNN}


@pytest.mark.parametrize("name", ["opset_validity", "io_contract", "parity", "repeatability"])
def test_run_check_works_without_pytest_and_carries_the_registry_name(tiny_cache, name):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE)
    subject = Subject(artifact.case, synthetic(TINY_VIT).model, {EncoderKind.IMAGE: artifact})
    result = run_check(name, subject)
    assert result.passed, result.message
    assert result.check == name
