"""Where a warm `pytest --variant ViT-B/32` spends its time: per check, plus start-up, set-up and the rest.

Runs the default gate twice in subprocesses (the first fills the export cache if needed; the second is the
warm run measured), reads pytest's per-test durations from results.json and prints a table. A measurement,
not a test: nothing fails on a figure. Usage:

    python benchmarks/where_time_goes.py [--variant ViT-B/32] [extra pytest args ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(args: list[str], report_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--report-dir={report_dir}", *args],
        cwd=REPO,
        check=False,
        capture_output=True,
    )
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    args = argv or ["--variant", "ViT-B/32"]
    with tempfile.TemporaryDirectory() as tmp:
        cold = run(args, Path(tmp) / "first")
        warm = run(args, Path(tmp) / "warm")
        doc = json.loads((Path(tmp) / "warm" / "results.json").read_text())
    per_check: dict[str, list[float]] = defaultdict(list)
    for test in doc["tests"]:
        per_check[test["check"] or test["test"]].append(test["duration_s"])
    in_tests = sum(sum(v) for v in per_check.values())
    print(f"first run (fills the cache if empty): {cold:.1f} s wall; warm run: {warm:.1f} s wall")
    print(f"{'check':<28}{'tests':>6}{'seconds':>10}{'share':>8}")
    for name, times in sorted(per_check.items(), key=lambda kv: -sum(kv[1])):
        print(f"{name:<28}{len(times):>6}{sum(times):>10.1f}{sum(times) / warm:>8.0%}")
    print(
        f"{'outside tests (start-up, collection, model build, report)':<44}{warm - in_tests:>10.1f}"
        f"{(warm - in_tests) / warm:>8.0%}"
    )
    print(f"cpu: {doc['environment']['cpu']}, {doc['environment']['threads']} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
