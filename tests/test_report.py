"""Reports from real runs: results.json, junit.xml, report.html in a real browser, and shard merging."""

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.report import html, schema
from conformance.versions import cpu_model, thread_count

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _run(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=repo_root, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, repo_root) -> dict[str, Path]:
    """Two real runs: tiny-vit with a latency baseline it cannot meet (so it fails), tiny-rn passing."""
    root = tmp_path_factory.mktemp("shards")
    baseline = root / "baseline.json"
    baseline.write_text(
        json.dumps(
            {
                "schema": schema.SCHEMA,
                "environment": {"cpu": cpu_model()},
                "tests": [
                    {
                        "nodeid": "conformance/test_checks.py::test_latency[tiny-vit-image-torchscript-op20-batch2]",
                        "variant": "tiny-vit",
                        "encoder": "image",
                        "exporter": "torchscript",
                        "opset": 20,
                        "check": "latency",
                        "outcome": "passed",
                        "figures": {
                            "batch": 2,
                            "ort_threads": thread_count(),
                            "ort": {"p50_ms": 1e-6},
                            "ratio_p50": 1e-6,
                        },
                    }
                ],
            }
        )
    )
    common = [
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--exporter",
        "torchscript",
        f"--export-cache={root / 'c'}",
        # quick: each graph timed once, at the largest batch (2); two batches typed, so that results.json's
        # record of the option as typed is seen (full mode timed 12 cases up to 5 s each: this fixture took 57 s
        # of CI's self-tests on a 2-core Zen 4, quick 24-27 s)
        "--latency=quick",
        "--latency-batches",
        "1,2",
    ]
    vit = _run(
        repo_root,
        *common,
        "--variant",
        "tiny-vit",
        "--target=onnx",
        "--target=int8-dynamic",
        f"--report-dir={root / 'vit'}",
        f"--latency-baseline={baseline}",
    )
    rn = _run(repo_root, *common, "--variant", "tiny-rn", f"--report-dir={root / 'rn'}", "-k", "validity or contract")
    assert vit.returncode == 1, vit.stdout[-3000:]
    assert rn.returncode == 0, rn.stdout[-3000:]
    return {"vit": root / "vit", "rn": root / "rn", "root": root}


def by_id_of(doc: dict) -> dict:
    return {t["nodeid"].split("::")[-1]: t for t in doc["tests"]}


def test_run_writes_results_junit_and_html(shards):
    doc = schema.load(shards["vit"] / "results.json")
    assert doc["exit_status"] == 1 and doc["verdict"] == "fail"
    assert doc["provenance"] == {
        "tiny-vit": {"kind": "synthetic", "sha256": None, "path": None, "seed": 0, "scheme": "synthetic/3"}
    }
    assert {"torch", "onnxruntime", "cpu", "threads", "cpu_isa", "cpu_family"} <= set(doc["environment"])
    assert doc["options"]["latency_batches"] == "1,2"  # as typed, not the parsed tuple's repr
    saturation = by_id_of(doc)["test_int8_saturation[tiny-vit-image-torchscript-op20-int8-dynamic]"]
    assert saturation["outcome"] == "passed" and saturation["figures"]["outside_range"] == 0
    by_id = {t["nodeid"].split("::")[-1]: t for t in doc["tests"]}
    gated = by_id["test_latency[tiny-vit-image-torchscript-op20-batch2]"]
    assert gated["outcome"] == "failed" and "the baseline's" in gated["message"]
    parity = by_id["test_parity[tiny-vit-image-torchscript-op20]"]
    assert parity["outcome"] == "passed" and parity["figures"]["max_abs_err"] < 3e-5
    assert parity["variant"] == "tiny-vit" and parity["encoder"] == "image" and parity["opset"] == 20
    assert parity["artifact"]["provenance"]["kind"] == "synthetic"
    cases = ET.parse(shards["vit"] / "junit.xml").getroot().iter("testcase")
    assert sum(1 for _ in cases) == len(doc["tests"])
    assert (shards["vit"] / "report.html").stat().st_size > 10_000


def test_merge_holds_both_shards_rows(shards, repo_root):
    out = shards["root"] / "merged"
    run = _run(
        repo_root,
        "-m",
        "conformance",
        "merge",
        str(shards["vit"] / "results.json"),
        str(shards["rn"] / "results.json"),
        f"--out={out}",
    )
    assert run.returncode == 1, run.stdout + run.stderr  # the worst shard's exit status
    merged = schema.load(out / "results.json")
    assert {t["variant"] for t in merged["tests"]} == {"tiny-vit", "tiny-rn"}
    assert len(merged["shards"]) == 2 and set(merged["provenance"]) == {"tiny-vit", "tiny-rn"}
    page = (out / "report.html").read_text()
    assert "tiny-rn" in page and "tiny-vit" in page and "merged from 2 shard(s)" in page


def test_merge_keeps_each_shards_exports_made_elsewhere():
    """One CI job per producer's folder, then one report: the "Exports made elsewhere" section holds every folder."""
    folder = {"layout": "optimum", "producer": "Optimum", "siblings": [], "skips": {}}
    shard = {"tests": [], "exit_status": 0}
    merged = schema.merge([("a", {**shard, "layouts": {"a": folder}}), ("b", {**shard, "layouts": {"b": folder}})])
    assert set(merged["layouts"]) == {"a", "b"}
    assert "layouts" not in schema.merge([("a", shard)])  # a run of the suite's own exports has no such section
    assert "Exports made elsewhere" in html.render(merged)


def test_merge_refuses_a_foreign_file(tmp_path, repo_root):
    bogus = tmp_path / "results.json"
    bogus.write_text('{"schema": "something-else/9"}')
    run = _run(repo_root, "-m", "conformance", "merge", str(bogus), f"--out={tmp_path / 'o'}")
    assert run.returncode == 2 and "expected 'clip-conformance-results/2'" in run.stderr
    assert not (tmp_path / "o").exists()


def test_render_shows_verdict_matrix_and_xfails():
    tests = [
        {
            "nodeid": "t::test_parity[v-image-dynamo-op20]",
            "test": "parity",
            "check": "parity",
            "variant": "v",
            "encoder": "image",
            "exporter": "dynamo",
            "opset": 20,
            "batch": None,
            "outcome": "failed",
            "duration_s": 0.1,
            "message": "onnx vs torch: max abs error 0.01",
            "xfail_reason": None,
            "figures": {"max_abs_err": 0.01},
            "artifact": None,
        },
        {
            "nodeid": "t::test_io_contract[v-image-dynamo-op20]",
            "test": "io_contract",
            "check": "contract",
            "variant": "v",
            "encoder": "image",
            "exporter": "dynamo",
            "opset": 20,
            "batch": None,
            "outcome": "xfailed",
            "duration_s": 0.1,
            "message": "",
            "xfail_reason": "known: static batch",
            "figures": {},
            "artifact": None,
        },
    ]
    page = html.render(schema.document(tests, 1, {"cpu": "x"}, {}, {}))
    assert "FAIL: do not ship" in page and "exit status 1" in page
    assert "known: static batch" in page and "max_abs_err: 0.01" in page
    assert 'class="cell failed"' in page and 'class="cell xfailed"' in page


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed here (CI installs Debian's chromium)")
def test_report_renders_in_chromium(shards):
    from playwright.sync_api import sync_playwright

    screenshot = shards["root"] / "report-selftest.png"  # under tmp: reports/ holds the user's last run
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto((shards["vit"] / "report.html").as_uri())
        verdict = page.locator("#verdict")
        assert verdict.is_visible() and "FAIL" in verdict.inner_text() and "exit status 1" in verdict.inner_text()
        rows = page.locator("#matrix tr.row")
        assert rows.count() == 8  # per target: image, text-split, text-full, and the image+text pair
        compiled = page.locator("#compile tr.passed, #compile tr.failed")
        assert compiled.count() == 2 and "int8-dynamic" in page.locator("#compile").inner_text()
        assert "quantize_dynamic" in page.locator("#compile").inner_text()
        chart = page.locator("#compile-chart")
        assert chart.is_visible() and chart.locator("circle.point").count() == 2
        assert chart.locator("line.budget").count() >= 2  # fp32's and int8's budgets
        assert "int8 budget" in (chart.text_content() or "")
        # the latency cell the baseline failed (its message says so), whichever row the matrix's order puts first
        failed = page.locator("#matrix td.cell.failed", has_text="the baseline's").first
        box = failed.bounding_box()
        assert failed.is_visible() and box is not None and box["width"] > 20
        message = failed.locator(".msg").first
        assert not message.is_visible()
        failed.locator("summary").click()
        assert message.is_visible() and "the baseline's" in message.inner_text()
        assert page.locator("#latency-chart rect").count() >= 2
        assert "synthetic weights, seed 0" in page.locator("#provenance").inner_text()
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert screenshot.stat().st_size > 10_000


def test_the_compile_section_renders_whatever_a_record_lacks():
    """A zero-shot failure before its comparison (NaN) has no similarity figures, and a bundle's manifest
    may carry anything under `compile`: the report shows what it can and never crashes."""
    base = {"variant": "v", "exporter": "dynamo", "opset": 20, "target": "int8-dynamic", "precision": "int8"}
    tests = [
        {
            **base,
            "nodeid": "t::test_parity[v-image]",
            "test": "parity",
            "check": "parity",
            "encoder": "image",
            "outcome": "passed",
            "message": "",
            "xfail_reason": None,
            "figures": {"min_cosine": 0.999, "tolerance": {"min_cosine": 0.998}},
            "artifact": {"files": {"image.onnx": "big"}, "compiled": "forged", "export_seconds": "slow"},
        },
        {
            **base,
            "nodeid": "t::test_zero_shot_agreement[v]",
            "test": "zero_shot_agreement",
            "check": "zero_shot_agreement",
            "encoder": None,
            "outcome": "failed",
            "message": "onnx similarity matrix has 4 non-finite values",
            "xfail_reason": None,
            "figures": {"images": 4, "texts": 8},
            "artifact": None,
        },
    ]
    page = html.render(schema.document(tests, 1, {"cpu": "x"}, {}, {}))
    assert 'id="compile"' in page and "0.9990000" in page and "non-finite" in page


def test_the_compile_section_shows_a_compilers_toolchain_warnings_and_no_simulator_latency():
    compiled = {
        "tool": "rknn-toolkit2",
        "tool_version": "2.5.0",
        "summary": "rknn-toolkit2 builds the npu-static graph",
        "build_seconds": 19.6,
        "warnings": ["build: the value smaller than -3e+38 has been corrected to -10000 (x12)"],
        "timing_note": "simulator seconds on the x86 host, not the NPU's latency",
    }
    test = {
        "variant": "v",
        "exporter": "torchscript",
        "opset": 17,
        "target": "rknn",
        "precision": "fp16",
        "static_batch": 8,
        "nodeid": "t::test_parity[v-image-rknn-b8]",
        "test": "parity",
        "check": "parity",
        "encoder": "image",
        "outcome": "passed",
        "message": "",
        "xfail_reason": None,
        "figures": {"min_cosine": 0.9999992, "tolerance": {"min_cosine": 0.99999}},
        "artifact": {"files": {"model.onnx": 10}, "compiled": compiled},
    }
    page = html.render(schema.document([test], 0, {"cpu": "x"}, {}, {}))
    section = page[page.index('id="compile"') :]
    assert "rknn b8" in section and "rknn-toolkit2 2.5.0" in section and "corrected to -10000 (x12)" in section
    assert "not the NPU&#39;s latency" in section or "not the NPU's latency" in section
