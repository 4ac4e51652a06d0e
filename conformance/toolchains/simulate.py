"""RKNN's simulator over a subprocess boundary: a request and inputs written as files, rknn_worker.py run with the
toolchain's own python, outputs and a report read back. rknn is never imported in this process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conformance import atomic
from conformance.toolchains.rknn import (
    ANSI,
    DEFAULT_TIMEOUT_S,
    WORKER,
    Toolchain,
    ToolchainError,
    child_env,
    tail,
)

_PY_WARNING = re.compile(r"^\S.*:\d+: (\w*Warning): (.*)$")
_TIMESTAMP = re.compile(r"\[\d\d:\d\d:\d\d(\.\d+)?\] ")


@dataclass(frozen=True)
class SimulationResult:
    """Outputs of the compiled graph on the x86 simulator, one array per input batch (the graph's first output)."""

    outputs: list[np.ndarray]
    build_seconds: float
    simulate_seconds: list[float]
    warnings: list[str]
    toolkit_version: str
    platform: str
    wall_seconds: float
    log: Path


# ---------------------------------------------------------------------------------------------------- simulate


def parse_warnings(log_text: str) -> list[str]:
    """rknn's `W ...` lines, its `E ...` lines that did not fail the build (prefixed `E: `) and Python warnings
    from a worker log: ANSI colours and timestamps stripped, de-duplicated in first-seen order, with a count
    suffix when repeated. tqdm redraws with carriage returns, so those split lines too."""
    counts: dict[str, int] = {}
    for raw in re.split(r"[\r\n]+", ANSI.sub("", log_text)):
        line = raw.strip()
        message = None
        if line.startswith("W "):
            message = line[2:].strip()
        elif line.startswith("E "):
            message = "E: " + _TIMESTAMP.sub("", line[2:].strip())
        elif match := _PY_WARNING.match(line):
            message = f"{match.group(1)}: {match.group(2).strip()}"
        if message:
            counts[message] = counts.get(message, 0) + 1
    return [message if n == 1 else f"{message} (x{n})" for message, n in counts.items()]


def _check_batches(shape: Sequence[int], batches: Sequence[np.ndarray]) -> None:
    """The rknn graph is built for one fixed input shape; any other batch would fail inside the simulator."""
    if not batches:
        raise ValueError("no input batches: the simulator must run in the process that builds the graph")
    for i, batch in enumerate(batches):
        if list(batch.shape) != list(shape):
            raise ValueError(f"batch {i} has shape {list(batch.shape)}, the graph is built for {list(shape)}")


def _write_request(workdir: Path, request: dict[str, Any], batches: Sequence[np.ndarray]) -> Path:
    for stale in ("outputs.npz", "report.json"):
        (workdir / stale).unlink(missing_ok=True)
    with (workdir / "inputs.npz").open("wb") as out:
        arrays: dict[str, Any] = {f"b{i}": np.ascontiguousarray(b) for i, b in enumerate(batches)}
        np.savez(out, **arrays)
    path = workdir / "request.json"
    atomic.write_json(path, request)
    return path


def _run_worker(python: Path, request: Path, log: Path, timeout_s: float) -> int:
    """The worker in its own session (so a timeout kills rknn's children too), output into `log`, cwd the workdir
    (rknn drops scratch files into its cwd). `-I` keeps the worker's folder off sys.path: it holds this module,
    rknn.py, which would shadow the `rknn` package."""
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [str(python), "-I", "-u", str(WORKER), str(request)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=request.parent,
            env=child_env(),
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ToolchainError(
                f"the rknn worker timed out after {timeout_s:.0f} s; the last lines of {log}:\n{tail(log)}"
            ) from None


def _read_report(workdir: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((workdir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _result(workdir: Path, report: dict[str, Any], count: int, log: Path, wall: float) -> SimulationResult:
    with np.load(workdir / "outputs.npz") as saved:
        outputs = [saved[f"b{i}_o0"] for i in range(count)]
    return SimulationResult(
        outputs=outputs,
        build_seconds=float(report["build_seconds"]),
        simulate_seconds=[float(s) for s in report["simulate_seconds"]],
        warnings=parse_warnings(log.read_text(encoding="utf-8", errors="replace")),
        toolkit_version=str(report["toolkit_version"]),
        platform=str(report["platform"]),
        wall_seconds=wall,
        log=log,
    )


def compile_and_simulate(
    tc: Toolchain,
    onnx_path: Path,
    input_name: str,
    shape: list[int],
    batches: list[np.ndarray],
    *,
    workdir: Path,
    platform: str = "rk3588",
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> SimulationResult:
    """Build `onnx_path` for `platform` (fp16, no quantization) and run every batch on rknn's x86 simulator, in one
    worker process: the simulator only runs a graph built in the same process, so all inputs go in one call.
    Images (4-D) are passed as NCHW; other inputs (int32 token ids) as they are. The worker's output, tqdm bars
    included, goes to `workdir/worker.log`, never to the terminal."""
    _check_batches(shape, batches)
    workdir.mkdir(parents=True, exist_ok=True)
    request = {
        "onnx": str(Path(onnx_path).resolve()),
        "input_name": input_name,
        "shape": [int(s) for s in shape],
        "platform": platform,
        "data_format": "nchw" if len(shape) == 4 else None,
        "inputs": "inputs.npz",
        "outputs": "outputs.npz",
        "report": "report.json",
    }
    path = _write_request(workdir, request, batches)
    log = workdir / "worker.log"
    start = time.monotonic()
    code = _run_worker(tc.python, path, log, timeout_s)
    wall = time.monotonic() - start
    report = _read_report(workdir)
    if code != 0 or report is None or report.get("error"):
        stage = f" at {report['stage']}" if report and report.get("stage") else ""
        if report and report.get("error"):  # rknn's errors carry their traceback: its last line is the news
            lines = [line.strip() for line in str(report["error"]).splitlines() if line.strip()]
            raise ToolchainError(f"the rknn worker failed{stage} (exit {code}): {lines[-1] if lines else '?'}")
        raise ToolchainError(f"the rknn worker failed{stage} (exit {code}); the last lines of {log}:\n{tail(log)}")
    return _result(workdir, report, len(batches), log, wall)
