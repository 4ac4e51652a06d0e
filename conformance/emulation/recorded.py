"""A graph's outputs on an emulated CPU: one qemu worker per graph and CPU runs every input its emulated checks
feed (value_inputs: parity's, its singles, zero-shot's, the extremes), and the checks read the recorded outputs.

An input outside that set is refused, never guessed. Outputs live for the run only: an emulated verdict is never
reused across runs, so nothing here can outlive a change of graph, qemu, library or input.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from conformance import inputs
from conformance.artifact import Artifact
from conformance.batching import static_chunks
from conformance.emulation import EmulationError, guest, resolve, run_worker
from conformance.results import error_line
from conformance.value_inputs import input_key, value_inputs

# Emulation ran ViT-B/32's int8 graphs at about 1 GFLOP/s on a 2-core Zen 3 (docs/emulation.md): one graph's whole
# input set gets ten times that, and never less than ten minutes, before the worker is stopped as hung.
SECONDS_PER_GFLOP = 10.0
MIN_TIMEOUT_S = 600.0
# What OpenVINO's CPU plugin is asked for, per target (openvino_runtime.HINTS, repeated as names: no import of
# OpenVINO's runtime module here, which would load it in the host for nothing).
HINTS = {"openvino": "f32", "openvino-bf16": "bf16", "openvino-int8": "f32"}

Say = Callable[[str], None]
_RECORDED: dict[tuple[object, ...], tuple[str, dict[str, np.ndarray] | str]] = {}  # key -> (group, outputs or why)
_STATS: dict[tuple[object, ...], dict[str, Any]] = {}


def _key(artifact: Artifact) -> tuple[object, ...]:
    return (artifact.onnx_path, artifact.output_name, artifact.fingerprint(), artifact.case.emulated)


def emulated_inputs(artifact: Artifact) -> list[np.ndarray]:
    """value_inputs, and for a graph fixed at a batch, in the chunks runtime.run_onnx feeds it (padded as it pads)."""
    static = artifact.case.static_batch
    batch = inputs.parity_batch(artifact.variant, artifact.encoder, static)
    arrays = value_inputs(artifact.variant, artifact.encoder, batch, artifact.binding is not None)
    if static is None:
        return arrays
    return list({input_key(c): c for a in arrays for c in static_chunks(a, static)}.values())


def _feeds(artifact: Artifact, arrays: list[np.ndarray]) -> tuple[dict[str, Any], list[list[list[str]]]]:
    """Arrays to save and, per input, (graph input name, saved key) pairs: another tool's graph takes its layout's
    names, mask and padding, computed here exactly as runtime.run_onnx feeds them."""
    saved: dict[str, Any] = {}
    feeds = []
    for index, array in enumerate(arrays):
        named = (
            artifact.binding.feeds(array, artifact.variant.image_resolution)
            if artifact.binding is not None
            else {artifact.input_name: array}
        )
        pairs = []
        for slot, (name, value) in enumerate(named.items()):
            saved[f"i{index}_{slot}"] = np.ascontiguousarray(value)
            pairs.append([name, f"i{index}_{slot}"])
        feeds.append(pairs)
    return saved, feeds


def _run(artifact: Artifact, threads: int, say: Say | None) -> dict[str, np.ndarray]:
    alias = artifact.case.emulated
    assert alias is not None
    cpu = resolve(alias)
    probed = guest(alias)  # refuses a guest that is not the CPU its row claims, before any graph runs
    arrays = emulated_inputs(artifact)
    runtime = artifact.case.target.runtime
    if runtime not in ("onnxruntime", "openvino"):
        raise EmulationError(f"{artifact.case.target} runs on {runtime}, which qemu cannot emulate")
    items = int(sum(len(a) for a in arrays))
    gflop = items * inputs.gflops_per_item(artifact.variant, artifact.encoder)
    if say:
        say(
            f"{artifact.case.id}: running {len(arrays)} inputs ({items} items, {gflop:.0f} GFLOP) under qemu "
            f"({cpu.qemu_model}); emulation runs about 1 GFLOP/s on 2 cores ..."
        )
    saved, feeds = _feeds(artifact, arrays)
    request = {
        "graph": str(artifact.onnx_path.resolve()),
        "runtime": runtime,
        "hint": HINTS.get(str(artifact.case.target), "f32"),
        "options": artifact.runtime_options,
        "output": artifact.output_name,
        "threads": threads,
        "inputs": "inputs.npz",
        "outputs": "outputs.npz",
        "feeds": feeds,
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clip-emulate-") as scratch:
        folder = Path(scratch)
        np.savez(folder / "inputs.npz", **saved)
        report = run_worker(cpu, request, folder, max(MIN_TIMEOUT_S, SECONDS_PER_GFLOP * gflop))
        if tuple(sorted(report["flags"])) != probed.flags:  # the run's own CPUID, not only the probe's
            raise EmulationError(f"the worker that ran the graph saw flags {report['flags']}, the probe {probed.flags}")
        with np.load(folder / "outputs.npz") as out:
            outputs = [np.asarray(out[f"o{i}"]) for i in range(len(arrays))]
    _STATS[_key(artifact)] = {
        "inputs": len(arrays),
        "items": items,
        "gflop": round(gflop, 1),
        "wall_seconds": round(time.monotonic() - started, 1),
        "load_seconds": report.get("load_seconds"),
        "run_seconds": report.get("run_seconds"),
        "library": report.get("library"),
        "threads": threads,
    }
    return {input_key(x): y for x, y in zip(arrays, outputs, strict=True)}


def prepare(artifact: Artifact, threads: int, say: Say | None = None) -> None:
    """Run the graph's whole input set on its emulated CPU, once; a failure is remembered with the worker's words."""
    key = _key(artifact)
    if key not in _RECORDED:
        try:
            _RECORDED[key] = (artifact.case.group, _run(artifact, threads, say))
        except EmulationError as exc:
            _RECORDED[key] = (artifact.case.group, str(exc))
        except Exception as exc:  # noqa: BLE001 - one clear line per emulated test, never a traceback
            _RECORDED[key] = (artifact.case.group, f"emulating {artifact.case.id} failed: {error_line(exc)}")


def emulated_output(artifact: Artifact, array: np.ndarray, threads: int) -> np.ndarray:
    """The graph's output for `array` on the case's emulated CPU (prepared on first use); a failed run is raised
    again for every input."""
    prepare(artifact, threads)
    recorded = _RECORDED[_key(artifact)][1]
    if isinstance(recorded, str):
        raise EmulationError(recorded)
    found = recorded.get(input_key(array))
    if found is None:
        raise LookupError(
            f"{artifact.case.id}: an emulated CPU answers only the {len(recorded)} inputs its worker ran "
            f"(conformance/value_inputs.py), and this one (shape {list(array.shape)}) was not among them"
        )
    return found


def stats(artifact: Artifact) -> dict[str, Any]:
    """What emulating this graph cost, for the check's figures (empty before it ran)."""
    return dict(_STATS.get(_key(artifact), {}))


def forget(group: str) -> None:
    """A variant's tests are done: drop its recorded outputs."""
    for key in [k for k, (owner, _) in _RECORDED.items() if owner == group]:
        del _RECORDED[key]
