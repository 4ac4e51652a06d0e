"""Build an ONNX graph with rknn-toolkit2 and run inputs on its x86 simulator; run by the rknn venv's python.

Standalone on purpose (stdlib, numpy and rknn only, no `conformance` imports): it runs in a venv pinned to rknn's
numpy/onnx/protobuf. Usage: `python -I rknn_worker.py request.json`; the request names its .npz and report
files relative to its own folder.
The simulator needs build and init_runtime in the same process, so one call builds and runs every batch.
Writes `outputs.npz` (`b{batch}_o{output}`) and `report.json` atomically (temp file, then rename); on failure the
report carries `stage` and `error` and the exit code is non-zero. rknn's own log lines go to stdout/stderr, which
the caller sends to a log file and parses for warnings.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

# This file sits next to the suite's rknn.py, which would shadow the `rknn` package when the script's folder is
# sys.path[0] (the caller runs `python -I`, which leaves it out; this covers a run by hand).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402 - after the sys.path fix above

EXIT_BAD_REQUEST, EXIT_STAGE_FAILED = 2, 3


class StageError(RuntimeError):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


def _atomic(target: Path, write: Any) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as out:
        write(out)
    os.replace(tmp, target)


def _write_report(target: Path, report: dict[str, Any]) -> None:
    _atomic(target, lambda out: out.write((json.dumps(report, indent=2, sort_keys=True) + "\n").encode()))


def _checked(stage: str, code: Any) -> None:
    """rknn's API returns 0 on success and logs the reason otherwise (to the captured log)."""
    if code != 0:
        raise StageError(stage, f"{stage} returned {code}")


def _log(message: str) -> None:
    print(f"[worker] {message}", flush=True)


def _build(rknn: Any, request: dict[str, Any]) -> float:
    _checked("config", rknn.config(target_platform=request["platform"]))
    start = time.perf_counter()
    model = request["onnx"]
    _checked(
        "load_onnx", rknn.load_onnx(model=model, inputs=[request["input_name"]], input_size_list=[request["shape"]])
    )
    _checked("build", rknn.build(do_quantization=False))
    seconds = time.perf_counter() - start
    _checked("init_runtime", rknn.init_runtime())
    return seconds


def _simulate(rknn: Any, batches: list[np.ndarray], data_format: str | None) -> tuple[dict[str, Any], list[float]]:
    outputs: dict[str, Any] = {}
    seconds: list[float] = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        result = rknn.inference(inputs=[batch], data_format=data_format)
        seconds.append(time.perf_counter() - start)
        if not result:
            raise StageError("inference", f"inference on batch {i} returned {result!r}")
        for j, out in enumerate(result):
            outputs[f"b{i}_o{j}"] = np.asarray(out)
        _log(f"batch {i}: {seconds[-1]:.2f} s, outputs {[list(np.shape(o)) for o in result]}")
    return outputs, seconds


def run(request_path: Path) -> dict[str, Any]:
    request = json.loads(request_path.read_text(encoding="utf-8"))
    folder = request_path.parent
    with np.load(folder / request["inputs"]) as saved:
        batches = [saved[f"b{i}"] for i in range(len(saved.files))]
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    try:
        from rknn.api import RKNN
    except Exception as exc:
        raise StageError("import", f"cannot import rknn: {type(exc).__name__}: {exc}") from exc
    rknn = RKNN(verbose=False)
    try:
        build_seconds = _build(rknn, request)
        outputs, seconds = _simulate(rknn, batches, request.get("data_format"))
    finally:
        rknn.release()
    _atomic(folder / request["outputs"], lambda out: np.savez(out, **outputs))
    return {
        "toolkit_version": metadata.version("rknn-toolkit2"),
        "platform": request["platform"],
        "build_seconds": build_seconds,
        "simulate_seconds": seconds,
        "batches": len(batches),
        "outputs_per_batch": len(outputs) // max(len(batches), 1),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: rknn_worker.py request.json", file=sys.stderr)
        return EXIT_BAD_REQUEST
    request_path = Path(argv[1]).resolve()
    report_path = request_path.parent / "report.json"
    try:
        report_path = request_path.parent / json.loads(request_path.read_text(encoding="utf-8"))["report"]
        report = run(request_path)
    except StageError as exc:
        traceback.print_exc()
        _write_report(report_path, {"stage": exc.stage, "error": str(exc)})
        return EXIT_STAGE_FAILED
    except Exception as exc:  # noqa: BLE001 - reported to the caller, which raises ToolchainError
        traceback.print_exc()
        _write_report(report_path, {"stage": "worker", "error": f"{type(exc).__name__}: {exc}"})
        return EXIT_STAGE_FAILED
    _write_report(report_path, report)
    _log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
