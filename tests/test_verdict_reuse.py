"""Reused verdicts (conformance/verdicts.py, fixtures/reuse.py): a stored pass stands for a run only where every
input that decided it is unchanged. One self-test per kind of input: the graph's bytes and its folder's other files,
the suite's code and data files, the options, the library versions, the weights, the machine; then a real run,
reused, then run again on a broken graph."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance import runtime, verdicts
from conformance.artifact import Artifact
from conformance.case import Target
from conformance.encoders import EncoderKind
from conformance.registry import BY_NAME, CHECKS
from conformance.results import CheckResult, Status
from conformance.subject import Subject
from conformance.verdicts import CODE, SUITE_ROOT, FileDigests, Reuse, VerdictStore, tree_digest
from fixtures import reuse
from fixtures.docs import suite_options
from fixtures.reuse import NOT_IN_KEY, Verdicts, keyed_options
from tests.support.graph_edits import batch_not_in_shift
from tests.support.helpers import TINY_VIT, copy_artifact, good, pytest_run, synthetic

GRAPH_ROW, MACHINE_ROW = BY_NAME["opset_validity"], BY_NAME["dynamic_batch"]


def _config(**given: Any) -> Any:
    return SimpleNamespace(getoption=lambda name, default=None: given.get(name, default))


def _verdicts(root: Path, **given: Any) -> Verdicts:
    options = keyed_options(_config(**{"device": "cpu", **given})) | {"environment": {}}
    return Verdicts(VerdictStore(root / "verdicts"), FileDigests(), options, given.get("weights"))


@pytest.fixture
def subject(tiny_cache, tmp_path) -> Subject:
    """A private copy of the tiny ViT's image graph (external data beside it), free to edit."""
    import onnx

    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE), tmp_path / "graph")
    path = artifact.onnx_path
    onnx.save_model(
        onnx.load(str(path)), str(path), save_as_external_data=True, location="model.onnx.data", size_threshold=0
    )
    return Subject(artifact.case, synthetic(TINY_VIT).model, {EncoderKind.IMAGE: artifact})


def _digest(v: Verdicts, subject: Subject, check=MACHINE_ROW) -> str:
    key = v.key(check, subject, "")
    assert key is not None
    return key.digest


def _flip_last_byte(path: Path) -> None:
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # `touch -r`: the old mtime, the size unchanged


def test_a_pass_is_reused_for_the_same_inputs_and_says_when(subject, tmp_path):
    calls: list[str] = []

    def counted(s: Subject, parameter: Any) -> CheckResult:
        calls.append(s.case.id)
        return CheckResult("dynamic_batch", Status.PASSED, "ok", {"batch_sizes": [1, 2]})

    row = dataclasses.replace(MACHINE_ROW, run=counted)
    v = _verdicts(tmp_path)
    first, second = v.run(row, subject, None, ""), v.run(row, subject, None, "")
    assert calls == [subject.case.id] and first.reused_from is None
    assert second.passed and second.reused_from and second.figures == {"batch_sizes": [1, 2]}
    assert v.reused == [f"{subject.case.id}::dynamic_batch"]
    fresh = Verdicts(None, FileDigests(), v.options)  # --fresh: no store, so it runs
    assert fresh.run(row, subject, None, "").reused_from is None and len(calls) == 2


def test_failures_and_skips_are_never_stored_and_a_damaged_entry_is_a_miss(subject, tmp_path):
    outcomes = iter([Status.FAILED, Status.SKIPPED, Status.PASSED, Status.PASSED])
    row = dataclasses.replace(MACHINE_ROW, run=lambda s, p: CheckResult("dynamic_batch", next(outcomes), "m"))
    v = _verdicts(tmp_path)
    assert [v.run(row, subject, None, "").status for _ in range(3)] == ["failed", "skipped", "passed"]
    stored = next((tmp_path / "verdicts").rglob("*.json"))
    stored.write_text(stored.read_text()[:40])  # a crash mid-write, or tampering
    assert v.run(row, subject, None, "").reused_from is None  # ran again (the fourth outcome)
    record = json.loads(stored.read_text())
    record["result"]["status"] = "failed"
    stored.write_text(json.dumps(record))
    assert v.store is not None and v.store.get(v.key(row, subject, "")) is None  # type: ignore[arg-type]


def test_the_graph_its_external_data_and_its_folder_are_keyed_by_content(subject, tmp_path):
    v = _verdicts(tmp_path)
    before = _digest(v, subject)
    folder = subject.artifact.folder
    data = next(p for p in folder.iterdir() if p.name.endswith(".data"))
    original = data.read_bytes()
    _flip_last_byte(data)
    assert _digest(v, subject) != before  # one weight's last byte, mtime and size as they were
    data.write_bytes(original)
    assert _digest(v, subject) == before  # the same bytes again: content, not time stamps
    _flip_last_byte(subject.artifact.onnx_path)
    assert _digest(v, subject) != before


def test_a_manifest_or_any_other_file_beside_the_graph_is_in_the_key(subject, tmp_path):
    v = _verdicts(tmp_path)
    before = _digest(v, subject, GRAPH_ROW)
    (subject.artifact.folder / "manifest.json").write_text(json.dumps({"deploy_isa": ["avx512_vnni"]}))
    after = _digest(v, subject, GRAPH_ROW)
    (subject.artifact.folder / "manifest.json").write_text(json.dumps({"deploy_isa": []}))
    assert len({before, after, _digest(v, subject, GRAPH_ROW)}) == 3


def test_the_suites_code_and_data_files_are_in_the_key(tmp_path):
    """A copy of the suite's code: an edit to a check's helper, a tolerance or a layout changes the digest."""
    for name in CODE:
        source = SUITE_ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    assert tree_digest(tmp_path, CODE) == verdicts.code_digest()
    seen = {tree_digest(tmp_path, CODE)}
    for edited in (
        "conformance/numerics.py",
        "conformance/tolerances.toml",
        "conformance/isa.toml",
        "fixtures/models.py",
    ):
        with (tmp_path / edited).open("a") as handle:
            handle.write("\n# edited\n")
        seen.add(tree_digest(tmp_path, CODE))
    assert len(seen) == 5
    layout = next((tmp_path / "conformance" / "layouts").glob("*.toml"))
    layout.write_text(layout.read_text().replace("=", " = ", 1))
    assert tree_digest(tmp_path, CODE) not in seen


def test_every_module_a_check_imports_from_the_suite_is_under_the_digest():
    roots = [SUITE_ROOT / name for name in CODE]
    suite = [m for name, m in sys.modules.items() if name.split(".")[0] in ("conformance", "fixtures")]
    files = [Path(str(m.__file__)).resolve() for m in suite if getattr(m, "__file__", None)]
    assert files and all(any(f.is_relative_to(r) for r in roots) for f in files)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("token_dtype", "int64"),
        ("static_batch", (2,)),
        ("deploy_isa", frozenset({"avx512_vnni"})),
        ("layout", "optimum"),
        ("seed", 1),
        ("batch_max", 64),
        ("emulate_cpu", ["zen3"]),
        ("require_target", [Target.ONNX]),
        ("synthetic_reference", True),
    ],
)
def test_an_option_that_changes_a_check_changes_the_key(subject, tmp_path, option, value):
    assert _digest(_verdicts(tmp_path, **{option: value}), subject) != _digest(_verdicts(tmp_path), subject)


def test_options_that_only_choose_cases_or_outputs_are_not_in_the_key(subject, tmp_path):
    moved = _verdicts(tmp_path, report_dir=tmp_path / "r", xfails=tmp_path / "x", latency="full", fresh=False)
    assert _digest(moved, subject) == _digest(_verdicts(tmp_path), subject)
    known = {o.flag.lstrip("-").replace("-", "_") for o in suite_options()}
    assert NOT_IN_KEY <= known, NOT_IN_KEY - known  # every name there is a real option


def test_an_environment_variable_that_steers_the_suite_or_onnxruntime_is_in_the_key(subject, tmp_path, monkeypatch):
    config = _config(device="cpu")
    before = _digest(Verdicts.from_config(config, tmp_path), subject)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _digest(Verdicts.from_config(config, tmp_path), subject) != before


def test_library_versions_are_in_the_key(monkeypatch):
    real = list(metadata.distributions())
    before = verdicts.distributions_digest.__wrapped__()

    older = SimpleNamespace(metadata={"Name": "onnxruntime"}, version="1.20.1")

    others = [d for d in real if d.metadata["Name"] != "onnxruntime"]
    monkeypatch.setattr(metadata, "distributions", lambda: [*others, older])
    assert verdicts.distributions_digest.__wrapped__() != before


def test_the_weights_are_keyed_by_content(subject, tmp_path):
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"one checkpoint")
    v = _verdicts(tmp_path, weights=checkpoint)
    before = _digest(v, subject)
    checkpoint.write_bytes(b"another one!!!")
    assert _digest(v, subject) != before


def test_the_machine_keys_the_checks_that_run_the_graph_only(subject, tmp_path, monkeypatch):
    v = _verdicts(tmp_path)
    graph, machine = _digest(v, subject, GRAPH_ROW), _digest(v, subject, MACHINE_ROW)
    flags = reuse.cpu_flags()
    monkeypatch.setattr(reuse, "cpu_flags", lambda: flags - {"avx512f", "avx2"})
    assert _digest(v, subject, GRAPH_ROW) == graph and _digest(v, subject, MACHINE_ROW) != machine
    monkeypatch.undo()
    monkeypatch.setattr(runtime, "threads", lambda: runtime.thread_count() + 7)
    assert _digest(v, subject, MACHINE_ROW) != machine


def test_what_runs_outside_this_environment_is_never_reused(subject, tmp_path):
    v = _verdicts(tmp_path)
    for case in (
        dataclasses.replace(subject.case, emulated="zen3"),
        dataclasses.replace(subject.case, layout="optimum"),
        dataclasses.replace(subject.case, target=Target.RKNN),
    ):
        assert v.key(MACHINE_ROW, dataclasses.replace(subject, case=case), "") is None
    assert all(c.reuse == Reuse.NEVER for c in CHECKS if c.name in ("latency", "bundle_integrity", "host_tokenizer"))
    assert _verdicts(tmp_path, device="cuda").key(MACHINE_ROW, subject, "") is None


def _records(reports: Path) -> dict[str, dict[str, Any]]:
    return {t["check"]: t for t in json.loads((reports / "results.json").read_text())["tests"]}


def test_a_run_reuses_its_passes_and_checks_a_changed_graph_again(repo_root, tmp_path):
    cache = tmp_path / "c"
    args = ["--variant=tiny-vit", "--exporter=torchscript", "--latency=none", f"--export-cache={cache}", "-q"]
    args += ["-k", "tiny-vit-image and (opset_validity or dynamic_batch or parity)"]
    first = pytest_run(repo_root, *args, f"--report-dir={tmp_path / 'r1'}")
    assert first.returncode == 0, first.stdout[-2000:]
    second = pytest_run(repo_root, *args, f"--report-dir={tmp_path / 'r2'}")
    reused = _records(tmp_path / "r2")
    assert second.returncode == 0 and "passes reused" in second.stdout, second.stdout[-2000:]
    assert {check for check, t in reused.items() if t["reused_from"]} == set(reused), reused
    assert "reused: this pass was checked" in (tmp_path / "r2" / "report.html").read_text()
    folder = next(p for p in (cache / "tiny-vit").iterdir() if p.is_dir() and "-image-torchscript-" in p.name)
    broken = batch_not_in_shift(Artifact.load(folder / "artifact.json"), tmp_path / "broken", keep=(1,))
    shutil.copy(broken.onnx_path, folder / broken.onnx_file)  # the cached graph, off by 0.05 at batch 2 and up
    broken.folder = folder
    broken.save(folder / "artifact.json")  # its sizes, so the cache takes it for its own
    third = pytest_run(repo_root, *args, f"--report-dir={tmp_path / 'r3'}")
    after = _records(tmp_path / "r3")
    assert third.returncode == 1 and after["dynamic_batch"]["outcome"] == "failed", third.stdout[-2000:]
    assert not any(t["reused_from"] for t in after.values()), after
