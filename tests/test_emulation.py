"""--emulate-cpu: the guest is the CPU its row claims, by its own CPUID; the worker cannot learn the CPU from the
host or leave the emulation; full-range int8 fails on an emulated Zen 3 and today's 7-bit recipe passes there;
emulated checks are cases of their own; a bundle's deploy_cpus run by default."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conformance import emulation, isa, outputs, runtime
from conformance.case import Case, Exporter, Target
from conformance.emulation import EmulationError, canary, cpuid, recorded
from conformance.emulation.recorded import emulated_inputs
from conformance.encoders import EncoderKind
from conformance.registry import BY_NAME, CHECKS
from conformance.subject import Subject
from conformance.versions import cpu_flags
from tests.support.helpers import TINY_VIT, compile_with, export_bundle, good, pytest_run, synthetic

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-x86_64") is None, reason=f"qemu-user is not installed: {emulation.INSTALL_LINE}"
)
EMULATED_CHECKS = {"parity", "source_agreement", "zero_shot_agreement", "finite_extremes"}
TEXT = EncoderKind.TEXT_SPLIT


def _subject(artifact, source, cpu):
    emulated = dataclasses.replace(artifact, case=artifact.case.emulated_on(cpu))
    return Subject(
        emulated.case, synthetic(TINY_VIT).model, {emulated.encoder: emulated}, sources={emulated.encoder: source}
    )


def test_every_row_names_known_flags_that_do_not_contradict_each_other():
    rows = emulation.table()
    assert {"zen3", "haswell", "sandybridge"} <= set(rows)
    for row in rows.values():
        assert row.has and not set(row.has) & set(row.lacks), row.alias
        assert set(row.has) | set(row.lacks) <= set(cpuid._BITS), row.alias
        assert "avx512_vnni" in row.lacks and "avx512f" in row.lacks, f"{row.alias}: TCG emulates no AVX-512"
    with pytest.raises(EmulationError, match=r"not in conformance/emulation\.toml; choose from zen3"):
        emulation.resolve("pentium")


def test_a_cpuid_reader_that_disagrees_with_numpys_is_not_trusted():
    assert emulation.readers_disagree({"avx", "avx2", "fma"}, {"AVX": True, "AVX2": True, "FMA3": True}) is None
    why = emulation.readers_disagree({"avx", "avx2"}, {"AVX": True, "AVX2": True, "AVX512VNNI": True})
    assert why and "avx512_vnni" in why


def test_cpuid_read_in_process_agrees_with_the_kernels_flags_on_this_host():
    """The worker's reader, run natively, against /proc/cpuinfo (which the worker may not read)."""
    compared = {"avx", "avx2", "fma", "avx512f", "avx512_vnni"}
    assert cpuid.flags() & compared == cpu_flags() & compared
    assert cpuid.vendor() in ("AuthenticAMD", "GenuineIntel", "HygonGenuine")


@needs_qemu
def test_the_zen3_guest_shows_avx2_and_no_vnni_by_its_own_cpuid():
    guest = emulation.probe(emulation.resolve("zen3"))
    assert {"avx2", "fma"} <= set(guest.flags) and not {"avx512f", "avx512_vnni", "avx_vnni"} & set(guest.flags)
    assert guest.numpy_features["AVX2"] and not guest.numpy_features["AVX512VNNI"]  # numpy's CPUID agrees
    assert guest.vendor == "AuthenticAMD" and guest.qemu_version[0].isdigit()
    assert guest.int8_canary == canary.SATURATED  # it does int8 as a CPU without VNNI does, not just says so
    int8 = isa.feature("int8")
    assert int8 is not None and int8.missing(guest.flags)  # what the suite's ISA rules will say of it
    for row in emulation.table().values():  # every row's guest is what the row says (probe refuses otherwise)
        assert set(row.has) <= set(emulation.probe(row).flags), row.alias


@needs_qemu
def test_a_row_whose_guest_is_not_that_cpu_is_refused_with_the_reason():
    """QEMU accepts Cascadelake-Server and runs it as AVX2: a row claiming VNNI for it must not pass for one."""
    data: dict[str, Any] = {
        "cpu": {"cascadelake": {"qemu": "Cascadelake-Server", "has": ["avx2", "avx512_vnni"], "reason": "x"}}
    }
    with pytest.raises(EmulationError, match=r"cascadelake refused: .* lacks avx512_vnni by its own CPUID"):
        emulation.probe(emulation.resolve("cascadelake", data))
    data = {"cpu": {"fake": {"qemu": "EPYC-Milan", "has": ["avx2"], "lacks": ["fma"], "reason": "x"}}}
    with pytest.raises(EmulationError, match="has fma"):
        emulation.probe(emulation.resolve("fake", data))
    data = {"cpu": {"vnni": {"qemu": "EPYC-Milan", "has": ["avx2"], "int8_saturates": False, "reason": "x"}}}
    with pytest.raises(EmulationError, match=r"computed the int8 canary .* as 1048544, where a CPU with VNNI gives"):
        emulation.probe(emulation.resolve("vnni", data))


def test_the_int8_canary_saturates_exactly_where_this_host_lacks_vnni():
    """The canary's premise, on real hardware: without VNNI onnxruntime's u8 x s8 kernel saturates pairs."""
    import onnxruntime as ort

    path = canary.write_canary(Path(tempfile.mkdtemp()) / "canary.onnx")
    answer = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"a": canary.canary_input()})
    int8 = isa.feature("int8")
    assert int8 is not None
    assert int(answer[0].max()) == (canary.SATURATED if int8.missing() else canary.EXACT)


@needs_qemu
@pytest.mark.parametrize("forbidden", ["read_cpuinfo", "spawn"])
def test_the_worker_fails_when_it_reads_proc_cpuinfo_or_starts_a_process(tmp_path, forbidden):
    """/proc/cpuinfo under qemu-user is the host's; a child process runs natively. Either would fake a verdict."""
    cpu = emulation.resolve("zen3")
    with pytest.raises(EmulationError, match="GuardError") as raised:
        emulation.run_worker(cpu, {"probe": True, forbidden: True}, tmp_path, 120)
    assert ("/proc/cpuinfo" if forbidden == "read_cpuinfo" else "outside the emulation") in str(raised.value)
    (tmp_path / "ok").mkdir()
    report = emulation.run_worker(cpu, {"probe": True}, tmp_path / "ok", 120)
    assert "avx512_vnni" not in report["flags"] and "audit hook" in report["guard"]


@needs_qemu
def test_full_range_int8_fails_on_an_emulated_zen3_and_the_7_bit_recipe_passes(tiny_cache, tmp_path, monkeypatch):
    """The control issue 26 asks for, measured first: tiny-vit's text graph with full-range int8 weights (the
    int8-dynamic recipe before version 2) reaches min cosine 0.977 under zen3 against parity's 0.996; the 7-bit
    recipe 0.9988. (Its image graph saturates less: 0.9956, too close to the budget to be the control.)"""
    source = good(tiny_cache, TINY_VIT, TEXT)
    old = compile_with(tiny_cache, tmp_path, Target.INT8_DYNAMIC, encoder=TEXT, reduce_range=False)
    host_session = runtime.session

    def host_only(artifact, *args):  # an emulated graph must never be run by the host's onnxruntime
        assert artifact.case.emulated is None, f"{artifact.case.id} ran on the host"
        return host_session(artifact, *args)

    monkeypatch.setattr(runtime, "session", host_only)
    for check in ("parity", "source_agreement"):
        result = BY_NAME[check].execute(_subject(old, source, "zen3"), None)
        assert not result.passed and "min cosine" in result.message, (check, result.message)
        assert result.figures["min_cosine"] < 0.99 and result.figures["emulated_cpu"]["alias"] == "zen3"
        assert result.figures["emulation"]["text-split"]["inputs"] == len(emulated_inputs(old))
    (tmp_path / "new").mkdir()
    new = compile_with(tiny_cache, tmp_path / "new", Target.INT8_DYNAMIC, encoder=TEXT)
    for check in ("parity", "source_agreement", "finite_extremes"):
        result = BY_NAME[check].execute(_subject(new, source, "zen3"), None)
        assert result.passed and "on zen3 (EPYC-Milan, emulated)" in result.message, (check, result.message)
        assert result.figures["emulation"]["text-split"]["inputs"] == len(emulated_inputs(new))


def test_the_same_full_range_graph_passes_on_a_host_with_vnni(tiny_cache, tmp_path):
    """The other half of the control: the failure above is the CPU's, not the graph's."""
    int8 = isa.feature("int8")
    missing = int8.missing() if int8 else "isa.toml has no int8 row"
    if missing:
        pytest.skip(f"this host cannot show it: {missing}")
    source = good(tiny_cache, TINY_VIT, TEXT)
    old = compile_with(tiny_cache, tmp_path, Target.INT8_DYNAMIC, encoder=TEXT, reduce_range=False)
    result = BY_NAME["parity"].execute(_subject(old, source, None), None)
    assert result.passed, result.message


@needs_qemu
def test_a_graph_the_runtime_cannot_run_under_emulation_fails_with_its_message(tiny_cache, tmp_path):
    source = good(tiny_cache, TINY_VIT, "image")
    broken = compile_with(tiny_cache, tmp_path, Target.INT8_DYNAMIC)  # a private compile, in tmp_path
    broken.onnx_path.write_bytes(broken.onnx_path.read_bytes()[:2000])  # truncated after compile
    result = BY_NAME["parity"].execute(_subject(broken, source, "zen3"), None)
    assert not result.passed and "under zen3 (EPYC-Milan)" in result.message, result.message
    assert "INVALID_PROTOBUF" in result.message or "Protobuf parsing failed" in result.message, result.message


def test_openvino_bf16_on_a_cpu_without_bf16_skips_with_the_reason(tiny_cache, tmp_path, monkeypatch):
    artifact = good(tiny_cache, TINY_VIT, "image")
    artifact = dataclasses.replace(artifact, case=artifact.case.on(Target.OPENVINO_BF16))
    cpu = emulation.resolve("zen3")
    fake = emulation.Guest(cpu, "7.2", ("avx", "avx2", "fma"), "AuthenticAMD", {}, canary.SATURATED)
    monkeypatch.setattr("conformance.checks.emulated.guest", lambda alias: fake)
    result = BY_NAME["parity"].execute(_subject(artifact, artifact, "zen3"), None)
    assert result.status == "skipped" and "on zen3 (EPYC-Milan)" in result.message and "avx512_bf16" in result.message


def test_emulated_cases_are_their_own_and_run_only_the_precision_sensitive_checks():
    host = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO).on(Target.INT8_DYNAMIC)
    case = host.emulated_on("zen3")
    assert case.id == f"{host.id}-on-zen3" and case.record()["emulated_cpu"] == "zen3"
    assert case.key() == host.key()  # the same graph: one export, one compile
    assert Case.from_record(case.record()) == case
    assert {c.name for c in CHECKS if c.applies(case)} == EMULATED_CHECKS  # zero-shot by its scope: pairs only
    assert not any(c.applies(case) for c in CHECKS if c.name in ("latency", "int8_saturation", "opset_validity"))
    assert not Target.ONNX.emulable and not Target.RKNN.emulable and Target.OPENVINO_INT8.emulable


def test_unknown_alias_and_missing_qemu_are_usage_errors_naming_the_fix(repo_root, monkeypatch):
    run = pytest_run(repo_root, "--variant", "tiny-vit", "--target", "int8-dynamic", "--emulate-cpu=pentium")
    assert run.returncode == 4 and "not in conformance/emulation.toml; choose from zen3" in run.stderr
    monkeypatch.setenv(emulation.QEMU_ENV, "/nonexistent/qemu-x86_64")
    run = pytest_run(repo_root, "--variant", "tiny-vit", "--target", "int8-dynamic", "--emulate-cpu=zen3")
    assert run.returncode == 4 and emulation.INSTALL_LINE in run.stderr


@needs_qemu
def test_a_bundle_is_checked_on_its_deploy_cpus_by_default(repo_root, tmp_path):
    out = tmp_path / "int8"
    assert export_bundle(out, "--target", "int8-dynamic", "--deploy-cpu", "zen3") == 0
    assert json.loads((out / "manifest.json").read_text())["deploy_cpus"] == ["zen3"]
    reports = tmp_path / "reports"
    run = pytest_run(repo_root, f"--artifacts={out}", "--latency=none", f"--report-dir={reports}", timeout=600)
    doc = json.loads((reports / "results.json").read_text())
    emulated = [t for t in doc["tests"] if t.get("emulated_cpu") == "zen3"]
    assert run.returncode == 0 and doc["verdict"] == "pass", run.stdout[-2000:]
    assert {t["check"] for t in emulated} == EMULATED_CHECKS
    outcomes = {(t["check"], t["outcome"]) for t in emulated}  # a bundle ships no fp32 graph to agree with
    assert outcomes == {(c, "skipped" if c == "source_agreement" else "passed") for c in EMULATED_CHECKS}
    assert "avx512_vnni" not in doc["emulated_cpus"]["zen3"]["guest_flags"].split()
    assert "Emulated CPUs" in (reports / "report.html").read_text()
    off = tmp_path / "off"
    run = pytest_run(repo_root, f"--artifacts={out}", "--latency=none", "--emulate-cpu=none", f"--report-dir={off}")
    doc = json.loads((off / "results.json").read_text())
    assert run.returncode == 0 and not [t for t in doc["tests"] if t.get("emulated_cpu")]


def test_a_schema_2_manifest_is_still_read(tmp_path):
    from conformance.checks.bundle import check_bundle_integrity

    out = tmp_path / "b"
    assert export_bundle(out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "schema": "clip-conformance-bundle/2"}))
    assert check_bundle_integrity(Path(out)).passed


def test_host_and_emulated_outputs_of_one_graph_are_kept_apart(tiny_cache, monkeypatch):
    """One graph file, two CPUs: the shared outputs store must never answer one with the other's."""
    artifact = good(tiny_cache, TINY_VIT, "image")
    compiled = dataclasses.replace(artifact, case=artifact.case.on(Target.INT8_DYNAMIC))
    sentinel = np.full((2, TINY_VIT.embed_dim), 7.0, np.float32)
    monkeypatch.setattr(recorded, "emulated_output", lambda a, x, threads: sentinel)
    x = np.ascontiguousarray(emulated_inputs(compiled)[0])
    on_host = outputs.onnx_output(compiled, x)
    emulated = dataclasses.replace(compiled, case=compiled.case.emulated_on("zen3"))
    assert np.array_equal(outputs.onnx_output(emulated, x), sentinel) and not np.array_equal(on_host, sentinel)
    assert not np.array_equal(outputs.onnx_output(compiled, x), sentinel)


@needs_qemu
def test_openvino_runs_in_the_worker_under_emulation(tiny_cache, tmp_path):
    source = good(tiny_cache, TINY_VIT, "image")
    compiled = compile_with(tiny_cache, tmp_path, Target.OPENVINO)
    result = BY_NAME["parity"].execute(_subject(compiled, source, "zen3"), None)
    assert result.passed, result.message
    assert result.figures["emulation"]["image"]["library"].startswith("openvino ")


def test_a_manifest_cannot_name_an_emulated_cpu_for_a_graph_or_cpus_for_an_uncompiled_bundle(tmp_path, capsys):
    from conformance.checks.bundle import check_bundle_integrity

    out = tmp_path / "fp32"
    assert export_bundle(out) == 0
    assert export_bundle(tmp_path / "refused", "--deploy-cpu", "zen3") == 2
    assert "has no compiled graph to check on another CPU" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "deploy_cpus": ["zen3"]}))
    result = check_bundle_integrity(out)
    assert not result.passed and "the claim would check nothing" in result.message
    graphs = {k: {**g, "emulated_cpu": "zen3"} for k, g in manifest["graphs"].items()}
    (out / "manifest.json").write_text(json.dumps({**manifest, "graphs": graphs}))
    result = check_bundle_integrity(out)
    assert not result.passed and "emulated_cpu is not a manifest field" in result.message


@needs_qemu
def test_full_range_int8_with_the_recorded_u8u8_option_passes_under_zen3(tiny_cache, tmp_path):
    """The benign variant beside the control: the same full-range graph, recording onnxruntime's
    session.x64quantprecision=1 (the U8U8 path x86 without VNNI can use), is accurate there; the worker sets the
    option as every deployment must."""
    source = good(tiny_cache, TINY_VIT, TEXT)
    old = compile_with(tiny_cache, tmp_path, Target.INT8_DYNAMIC, encoder=TEXT, reduce_range=False)
    assert old.compiled is not None
    old.compiled["runtime_options"] = {"session.x64quantprecision": "1"}
    result = BY_NAME["parity"].execute(_subject(old, source, "zen3"), None)
    assert result.passed and result.figures["min_cosine"] > 0.996, result.message
