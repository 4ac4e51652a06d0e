"""The results.json document: one record per test, plus environment, provenance and the run's verdict.

Schema version 2 (documented in docs/reports.md; version 1 had no case axes and is refused):
  schema          "clip-conformance-results/2"
  created         ISO-8601 UTC time the document was written
  exit_status     the exit code the run returned (0 = gate passed)
  verdict         "pass" or "fail"
  counts          outcome -> number of tests
  environment     versions, python, platform, cpu, threads (per shard when merged)
  provenance      variant -> weights provenance {kind, sha256, path, seed}
  options         the run's suite options (variants, exporters, opsets, latency mode, ...)
  shards          one entry per merged input {source, created, exit_status, environment}
  emulated_cpus   alias -> {alias, qemu_model, qemu_version, guest_flags, guest_vendor, reason}: each CPU that
                  checks ran on under qemu (--emulate-cpu), its flags as the guest's own CPUID showed them
  layouts         folder -> {layout, producer, siblings, skips, companions, files}: each --artifacts folder of
                  another tool, the suffixes of the compiled siblings checked, the layouts read beside its own
                  (name -> {producer, skips}), and every file with what it was read as or why not
  tests           [{nodeid, test, check, case, variant, encoder, exporter, opset, precision, target,
                    profile, static_batch, emulated_cpu, layout, sibling, bundle, batch, outcome, duration_s,
                    message, xfail_reason, figures, artifact, reused_from}]
                  `case` is the case ID (the test ID's parameter part); `check` the registry's check name;
                  precision, target and profile are the compile axes (fp32, onnx, dynamic for a raw export);
                  static_batch is present only for a static profile's graph (npu-static, rknn);
                  emulated_cpu only for a check run under qemu (its alias in conformance/emulation.toml);
                  layout and sibling only for another tool's graph (its layout, its compiled sibling's suffix).
                  reused_from: null, or when a pass reused from an earlier run on the same inputs was checked
                  (ISO-8601 UTC; conformance/verdicts.py)
  outcome is one of passed, failed, error, skipped, xfailed, xpassed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from conformance import atomic

SCHEMA = "clip-conformance-results/2"
FAILING = frozenset({"failed", "error"})


class ResultsError(ValueError):
    """A results.json that is unreadable or of another schema."""


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def counts(tests: list[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(t["outcome"] for t in tests).items()))


def document(
    tests: list[dict[str, Any]],
    exit_status: int,
    environment: dict[str, Any],
    provenance: dict[str, Any],
    options: dict[str, Any],
    shards: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    failing = any(t["outcome"] in FAILING for t in tests)
    return {
        "schema": SCHEMA,
        "created": now(),
        "exit_status": exit_status,
        "verdict": "fail" if failing or exit_status != 0 else "pass",
        "counts": counts(tests),
        "environment": environment,
        "provenance": provenance,
        "options": options,
        "shards": shards or [],
        "tests": tests,
    }


def load(path: Path) -> dict[str, Any]:
    try:
        return atomic.read_document(path, SCHEMA)
    except atomic.DocumentError as exc:
        raise ResultsError(str(exc)) from None


def merge(docs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One document from several shards (say, one CI job per variant). A test run in two shards keeps the
    later shard's record; the merged exit status is the worst of the shards'."""
    by_id: dict[str, dict[str, Any]] = {}
    provenance: dict[str, Any] = {}
    folders: dict[str, Any] = {}  # another tool's --artifacts folders: their layouts, siblings and skips
    emulated: dict[str, Any] = {}  # the CPUs checks ran on under qemu, as each guest's CPUID showed it
    shards = []
    for source, doc in docs:
        by_id.update({t["nodeid"]: t for t in doc["tests"]})
        emulated.update(doc.get("emulated_cpus", {}))
        provenance.update(doc.get("provenance", {}))
        for folder, found in doc.get("layouts", {}).items():  # a folder's siblings may be split across shards
            seen = folders.get(folder, {}).get("siblings", [])
            folders[folder] = {**found, "siblings": sorted({*seen, *found.get("siblings", [])})}
        shards.append(
            {
                "source": source,
                "created": doc.get("created"),
                "exit_status": doc.get("exit_status"),
                "environment": doc.get("environment", {}),
                "options": doc.get("options", {}),
            }
        )
    exit_status = max((s["exit_status"] or 0 for s in shards), default=0)
    first = docs[0][1] if docs else {}
    merged = document(
        list(by_id.values()), exit_status, first.get("environment", {}), provenance, first.get("options", {}), shards
    )
    if folders:
        merged["layouts"] = folders
    if emulated:
        merged["emulated_cpus"] = dict(sorted(emulated.items()))
    return merged
