"""Reused verdicts (conformance/verdicts.py, fixtures/reuse.py): a stored pass stands for a run only where every
input that decided it is unchanged. One self-test per kind of input: the graph's bytes and its folder's other files,
the suite's code and data files, the options, the environment, the library versions, the weights, the machine.
tests/test_verdict_store.py: the store itself, and real runs that reuse and then check a broken graph again."""

from __future__ import annotations

import json
import shutil
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance import runtime, verdicts
from conformance.case import Target
from conformance.subject import Subject
from conformance.verdicts import CODE, SUITE_ROOT, tree_digest
from fixtures import reuse
from fixtures.docs import suite_options
from fixtures.reuse import NOT_IN_KEY, Verdicts
from tests.support.reuse import (
    GRAPH_ROW,
    MACHINE_ROW,
    copied_subject,
    digest_of,
    fake_config,
    flip_last_byte,
    make_verdicts,
)


@pytest.fixture
def subject(tiny_cache, tmp_path) -> Subject:
    return copied_subject(tiny_cache, tmp_path / "graph")


def test_the_graph_its_external_data_and_its_folder_are_keyed_by_content(subject, tmp_path):
    v = make_verdicts(tmp_path)
    before = digest_of(v, subject)
    folder = subject.artifact.folder
    data = next(p for p in folder.iterdir() if p.name.endswith(".data"))
    original = data.read_bytes()
    flip_last_byte(data)
    assert digest_of(v, subject) != before  # one weight's last byte, mtime and size as they were
    data.write_bytes(original)
    assert digest_of(v, subject) == before  # the same bytes again: content, not time stamps
    flip_last_byte(subject.artifact.onnx_path)
    assert digest_of(v, subject) != before


def test_a_manifest_or_any_other_file_beside_the_graph_is_in_the_key(subject, tmp_path):
    v = make_verdicts(tmp_path)
    before = digest_of(v, subject, GRAPH_ROW)
    (subject.artifact.folder / "manifest.json").write_text(json.dumps({"deploy_isa": ["avx512_vnni"]}))
    after = digest_of(v, subject, GRAPH_ROW)
    (subject.artifact.folder / "manifest.json").write_text(json.dumps({"deploy_isa": []}))
    assert len({before, after, digest_of(v, subject, GRAPH_ROW)}) == 3


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


def test_every_module_a_check_imports_from_the_suite_is_under_thedigest_of():
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
        ("rknn_platform", "rk3568"),
    ],
)
def test_an_option_that_changes_a_check_changes_the_key(subject, tmp_path, option, value):
    assert digest_of(make_verdicts(tmp_path, **{option: value}), subject) != digest_of(make_verdicts(tmp_path), subject)


def test_options_that_only_choose_cases_or_outputs_are_not_in_the_key(subject, tmp_path):
    moved = make_verdicts(tmp_path, report_dir=tmp_path / "r", xfails=tmp_path / "x", latency="full", fresh=False)
    assert digest_of(moved, subject) == digest_of(make_verdicts(tmp_path), subject)
    known = {o.flag.lstrip("-").replace("-", "_") for o in suite_options()}
    assert NOT_IN_KEY <= known, NOT_IN_KEY - known  # every name there is a real option


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "LD_PRELOAD"])
def test_an_environment_variable_that_steers_torch_or_onnxruntime_is_in_the_key(subject, tmp_path, monkeypatch, name):
    config = fake_config(device="cpu")
    before = digest_of(Verdicts.from_config(config, tmp_path), subject)
    monkeypatch.setenv(name, "1")
    assert digest_of(Verdicts.from_config(config, tmp_path), subject) != before


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
    v = make_verdicts(tmp_path, weights=checkpoint)
    before = digest_of(v, subject)
    checkpoint.write_bytes(b"another one!!!")
    assert digest_of(v, subject) != before


def test_the_machine_keys_the_checks_that_run_the_graph_only(subject, tmp_path, monkeypatch):
    v = make_verdicts(tmp_path)
    graph, machine = digest_of(v, subject, GRAPH_ROW), digest_of(v, subject, MACHINE_ROW)
    text = reuse._cpuinfo()
    assert text
    monkeypatch.setattr(reuse, "_cpuinfo", lambda: text.replace(" avx2 ", " "))  # the same CPU, AVX2 masked
    assert digest_of(v, subject, GRAPH_ROW) == graph and digest_of(v, subject, MACHINE_ROW) != machine
    monkeypatch.setattr(reuse, "_cpuinfo", lambda: None)  # no way to tell CPUs apart: such checks always run
    assert v.key(MACHINE_ROW, subject, "") is None and digest_of(v, subject, GRAPH_ROW) == graph
    monkeypatch.undo()
    monkeypatch.setattr(runtime, "threads", lambda: runtime.thread_count() + 7)
    assert digest_of(v, subject, MACHINE_ROW) != machine
    monkeypatch.undo()
    monkeypatch.setattr(reuse, "_torch_level", lambda: "DEFAULT")  # torch.randn's bits: synthetic weights differ
    assert digest_of(v, subject, GRAPH_ROW) != graph


def test_a_set_valued_option_keys_the_same_in_any_order():
    assert verdicts._plain(frozenset({"avx512_vnni", "amx_int8", "avx_vnni"})) == [
        "amx_int8",
        "avx512_vnni",
        "avx_vnni",
    ]
