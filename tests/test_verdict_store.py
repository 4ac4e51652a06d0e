"""Reused verdicts, the store (conformance/verdicts.py): only passes are kept, a damaged entry or an unwritable store
is a miss, a graph replaced mid-check is not stored, what runs outside this environment never reuses; and two real
runs of the suite, the second reusing every pass, then a third on a broken graph that checks it again and fails."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conformance import verdicts
from conformance.artifact import Artifact
from conformance.case import Target
from conformance.registry import CHECKS
from conformance.results import CheckResult, Status
from conformance.subject import Subject
from conformance.verdicts import FileDigests, Reuse, VerdictStore
from fixtures.reuse import Verdicts
from tests.support.graph_edits import batch_not_in_shift
from tests.support.helpers import pytest_run
from tests.support.reuse import GRAPH_ROW, MACHINE_ROW, copied_subject, flip_last_byte, make_verdicts


@pytest.fixture
def subject(tiny_cache, tmp_path) -> Subject:
    return copied_subject(tiny_cache, tmp_path / "graph")


def test_a_pass_is_reused_for_the_same_inputs_and_says_when(subject, tmp_path):
    calls: list[str] = []

    def counted(s: Subject, parameter: Any) -> CheckResult:
        calls.append(s.case.id)
        return CheckResult("dynamic_batch", Status.PASSED, "ok", {"batch_sizes": [1, 2]})

    row = dataclasses.replace(MACHINE_ROW, run=counted)
    v = make_verdicts(tmp_path)
    first, second = v.run(row, subject, None, ""), v.run(row, subject, None, "")
    assert calls == [subject.case.id] and first.reused_from is None
    assert second.passed and second.reused_from and second.figures == {"batch_sizes": [1, 2]}
    shutil.rmtree(tmp_path / "verdicts")
    fresh = Verdicts(v.store, FileDigests(), v.options, fresh=True)  # --fresh: it runs every time...
    assert [fresh.run(row, subject, None, "").reused_from for _ in range(2)] == [None, None] and len(calls) == 3
    assert v.run(row, subject, None, "").reused_from and len(calls) == 3  # ...and stores its pass for the next run


def test_failures_and_skips_are_never_stored_and_a_damaged_entry_is_a_miss(subject, tmp_path):
    outcomes = iter([Status.FAILED, Status.SKIPPED, Status.PASSED, Status.PASSED])
    row = dataclasses.replace(MACHINE_ROW, run=lambda s, p: CheckResult("dynamic_batch", next(outcomes), "m"))
    v = make_verdicts(tmp_path)
    assert [v.run(row, subject, None, "").status for _ in range(3)] == ["failed", "skipped", "passed"]
    stored = next((tmp_path / "verdicts").rglob("*.json"))
    stored.write_text(stored.read_text()[:40])  # a crash mid-write, or tampering
    assert v.run(row, subject, None, "").reused_from is None  # ran again (the fourth outcome)
    record = json.loads(stored.read_text())
    record["result"]["status"] = "failed"
    stored.write_text(json.dumps(record))
    assert v.store is not None and v.store.get(v.key(row, subject, "")) is None  # type: ignore[arg-type]
    stored.write_text("[]")  # JSON, but not a verdict
    assert v.store is not None and v.store.get(v.key(row, subject, "")) is None  # type: ignore[arg-type]


def test_a_file_that_vanishes_while_hashed_runs_the_check_and_stores_nothing(subject, tmp_path, monkeypatch):
    v = make_verdicts(tmp_path)

    def vanished(folder: Path) -> dict[str, str]:
        raise FileNotFoundError(folder / "model.onnx.data")

    monkeypatch.setattr(v.digests, "folder", vanished)
    assert v.key(MACHINE_ROW, subject, "") is None


def test_a_graph_replaced_while_its_check_ran_is_not_stored(subject, tmp_path):
    def replaced(s: Subject, parameter: Any) -> CheckResult:
        flip_last_byte(s.artifact.onnx_path)  # another run rebuilt the cache meanwhile
        return CheckResult("dynamic_batch", Status.PASSED, "ok")

    v = make_verdicts(tmp_path)
    assert v.run(dataclasses.replace(MACHINE_ROW, run=replaced), subject, None, "").passed
    assert not list((tmp_path / "verdicts").rglob("*.json"))


def test_the_file_digests_of_two_processes_merge_and_an_unwritable_store_is_no_failure(subject, tmp_path):
    path = tmp_path / "file-digests.json"
    first, second = FileDigests.load(path), FileDigests.load(path)  # two xdist workers, each hashing its graphs
    first.of(subject.artifact.onnx_path)
    second.folder(subject.artifact.folder)
    idle = FileDigests.load(path)  # xdist's controller: hashes nothing, must not write back what it loaded
    for process in (first, second, idle):
        process.save()
    assert len(FileDigests.load(path).known) == len(second.known) >= 2
    (tmp_path / "a-file").write_text("")
    blocked = FileDigests(tmp_path / "a-file" / "file-digests.json")  # its folder cannot be made
    blocked.of(subject.artifact.onnx_path)
    blocked.save()  # says nothing, raises nothing: the next run hashes again
    store = VerdictStore(tmp_path / "a-file" / "verdicts")
    store.put(
        Verdicts(None, FileDigests(), {}).key(GRAPH_ROW, subject, "") or _key(subject), CheckResult("x", Status.PASSED)
    )


def _key(subject: Subject) -> verdicts.Key:
    return verdicts.Key("opset_validity", "", subject.case.record(), {}, {}, {}, {})


def test_what_runs_outside_this_environment_is_never_reused(subject, tmp_path):
    v = make_verdicts(tmp_path)
    for case in (
        dataclasses.replace(subject.case, emulated="zen3"),
        dataclasses.replace(subject.case, layout="optimum"),
        dataclasses.replace(subject.case, target=Target.RKNN),
    ):
        assert v.key(MACHINE_ROW, dataclasses.replace(subject, case=case), "") is None
    assert all(c.reuse == Reuse.NEVER for c in CHECKS if c.name in ("latency", "bundle_integrity", "host_tokenizer"))
    assert make_verdicts(tmp_path, device="cuda").key(MACHINE_ROW, subject, "") is None


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
