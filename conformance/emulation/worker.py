"""The emulation worker: run inside `qemu-x86_64 -cpu MODEL python worker.py request.json`.

It reports the guest CPU as CPUID shows it, then runs one graph on every input of the request, in onnxruntime or
OpenVINO, and writes the outputs. It imports nothing of the suite but cpuid.py beside it (torch would only slow the
emulated start), and it guards its own honesty: an audit hook fails the run if anything in this process opens
/proc/cpuinfo (the host's, not the guest's) or starts a process (a child runs natively, outside the emulation).

Request (JSON): {"probe": bool, "graph": path, "runtime": "onnxruntime" | "openvino", "hint": "f32" | "bf16",
"options": {onnxruntime config entries}, "output": name, "threads": n, "inputs": "inputs.npz",
"feeds": [[name, array key], ...] per input, "outputs": "outputs.npz", "report": "report.json",
"read_cpuinfo", "spawn": bool (self-tests only: do what is forbidden, which must fail the run)}.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import cpuid

FORBIDDEN_FILES = ("/proc/cpuinfo",)
SPAWN_EVENTS = (
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
)


TRIPPED: list[str] = []  # kept even where a library swallows the exception: the run fails all the same


class GuardError(RuntimeError):
    """Something in the worker tried to learn the CPU from the host, or to leave the emulation."""


def _guard(event: str, args: tuple[Any, ...]) -> None:
    why = None
    if event == "open" and args and isinstance(args[0], str | bytes) and _normal(args[0]) in FORBIDDEN_FILES:
        why = f"the worker opened {args[0]!r}, which under qemu-user is the host's, not the guest's"
    elif event in SPAWN_EVENTS:
        why = f"the worker tried {event}: a child process runs natively, outside the emulation"
    if why:
        TRIPPED.append(why)
        raise GuardError(why)


def _normal(path: str | bytes) -> str:
    """The path as the kernel resolves it (a bytes path, /proc/self/../cpuinfo and links included)."""
    try:
        return os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError, OSError):
        return ""


def _numpy_features() -> dict[str, bool]:
    from numpy._core._multiarray_umath import __cpu_features__  # numpy's own CPUID reading, a cross-check

    return {k: bool(__cpu_features__.get(k)) for k in ("AVX", "AVX2", "FMA3", "AVX512F", "AVX512VNNI")}


def _feeds(types: dict[str, str], arrays: dict[str, Any], feed: list[list[str]]) -> dict[str, Any]:
    """The graph's inputs by name, integer ids cast losslessly to the declared width (int32 or int64)."""
    import numpy as np

    widths = {"tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(float)": np.float32}
    out = {}
    for name, key in feed:
        if name not in types:  # an optional input the graph does not declare (the host filters the same way)
            continue
        array = arrays[key]
        want = widths.get(types[name])
        out[name] = array.astype(want) if want is not None and array.dtype.kind in "iu" else array
    if not out:
        fed = [name for name, _ in feed]
        raise ValueError(f"the graph takes none of the inputs fed ({fed}); it declares {sorted(types)}")
    return out


def _onnxruntime(request: dict[str, Any]) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(request["threads"])
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    for key, value in request.get("options", {}).items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(request["graph"], options, providers=["CPUExecutionProvider"])
    types = {i.name: i.type for i in session.get_inputs()}
    output = request["output"]
    return types, lambda feeds: session.run([output], feeds)[0]


def _openvino(request: dict[str, Any]) -> Any:
    import numpy as np

    # OpenVINO's telemetry (openvino_telemetry) forks a process to send a usage ping when a model is read: a child
    # runs natively, outside the emulation, and the guard would fail the run. Declined: its importers fall back to
    # their stub (measured with openvino 2026.4.1: no fork, the same compiled model).
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": request["hint"],
        "INFERENCE_NUM_THREADS": int(request["threads"]),
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(core.read_model(request["graph"]), "CPU", config)
    applied = compiled.get_property("INFERENCE_PRECISION_HINT")
    applied = applied.to_string() if hasattr(applied, "to_string") else str(applied)
    if applied != request["hint"]:
        raise RuntimeError(f"OpenVINO compiled the graph at {applied}, not {request['hint']}, on this CPU")
    spelled = {np.float32: "tensor(float)", np.int32: "tensor(int32)", np.int64: "tensor(int64)"}
    # every name of every input: a TorchScript export's `image` tensor also goes by '/Cast_output_0', and
    # get_any_name() may answer that one
    names = {
        name: spelled.get(port.get_element_type().to_dtype().type, "?")
        for port in compiled.inputs
        for name in port.get_names()
    }
    return names, lambda feeds: np.asarray(compiled(feeds)[compiled.outputs[0]])


def run(request: dict[str, Any], folder: Path) -> dict[str, Any]:
    import numpy as np

    report: dict[str, Any] = {
        "flags": sorted(cpuid.flags()),
        "vendor": cpuid.vendor(),
        "numpy_features": _numpy_features(),
        "python": sys.version.split()[0],
        "guard": "an audit hook refused /proc/cpuinfo and process starts in this worker",
    }
    if request.get("read_cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as handle:  # the self-tests' forbidden read
            handle.read()
    if request.get("spawn"):
        import subprocess

        subprocess.run(["true"], check=False)  # the self-tests' forbidden child, which would run natively
    if request.get("canary"):  # the int8 canary (canary.py): does this CPU saturate u8 x s8 pairs?
        import numpy as np
        import onnxruntime as ort

        session = ort.InferenceSession(request["canary"], providers=["CPUExecutionProvider"])
        feed = np.full(tuple(request["canary_shape"]), int(request["canary_value"]), np.uint8)
        report["canary"] = int(session.run(None, {"a": feed})[0].max())
    if request.get("probe"):
        return report
    started = time.monotonic()
    opener = _openvino if request["runtime"] == "openvino" else _onnxruntime
    types, infer = opener(request)
    report["load_seconds"] = round(time.monotonic() - started, 2)
    with np.load(folder / request["inputs"]) as saved:
        arrays = {key: saved[key] for key in saved.files}
    outputs: dict[str, Any] = {}
    started = time.monotonic()
    for index, feed in enumerate(request["feeds"]):
        outputs[f"o{index}"] = np.asarray(infer(_feeds(types, arrays, feed)))
    report["run_seconds"] = round(time.monotonic() - started, 2)
    report["library"] = _version(request["runtime"])
    np.savez(folder / request["outputs"], **outputs)
    return report


def _version(runtime: str) -> str:
    if runtime == "openvino":
        import openvino as ov

        return f"openvino {ov.__version__}"
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"


def _no_fork_exec(*_: Any) -> None:
    """multiprocessing's spawn and forkserver start children through _posixsubprocess.fork_exec, which raises no
    audit event on Python 3.11: the function itself is replaced."""
    _guard("os.posix_spawn", ())


def main(path: str) -> int:
    sys.addaudithook(_guard)
    import _posixsubprocess

    _posixsubprocess.fork_exec = _no_fork_exec  # type: ignore[assignment]
    request_path = Path(path)
    request = json.loads(request_path.read_text(encoding="utf-8"))
    out = request_path.parent / request["report"]
    try:
        report = run(request, request_path.parent)
    except Exception as exc:  # noqa: BLE001 - the host reads the reason from the report
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        report = {"error": last, "flags": sorted(cpuid.flags())}
    if TRIPPED:
        report.update(error=f"GuardError: {TRIPPED[0]}", guard_tripped=TRIPPED)
    out.write_text(json.dumps(report), encoding="utf-8")
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
