"""`rknn`: Rockchip's rknn-toolkit2 builds the npu-static graph for an NPU and runs it in its x86 simulator.

The toolkit pins torch <= 2.4 and numpy <= 1.26, so it lives in its own environment (conformance/toolchains/)
and is driven over a subprocess boundary with files. Its simulator runs only in the process that built the
graph, so the build simulates, there and then, every input the rknn checks will feed (`simulated_inputs`):
parity's, zero-shot's and the extremes, each at the graph's static batch. `simulated_output` answers those
from the recorded outputs and refuses any other input, rather than guessing.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from conformance import inputs
from conformance.artifact import Artifact
from conformance.batching import static_chunks
from conformance.case import Case
from conformance.encoders import INPUT_NAME
from conformance.graph import copy_graph
from conformance.value_inputs import input_key, value_inputs
from conformance.weights import sha256_of

SIMULATED = "simulated.npz"
INSTALL_HINT = "python -m conformance toolchain install rknn"


def rknn_missing(case: Case) -> str | None:
    from conformance.toolchains.rknn import find_toolchain

    if find_toolchain() is None:
        return f"the rknn toolchain is not installed here: {INSTALL_HINT} (about a minute, 1.5 GB)"
    return None


def rknn_version() -> str:
    from conformance.toolchains.rknn import RKNN_VERSION, find_toolchain

    toolchain = find_toolchain()
    return toolchain.version if toolchain else f"{RKNN_VERSION} (not installed)"


def simulated_inputs(case: Case) -> list[np.ndarray]:
    """Every static-batch input the rknn checks feed: parity (with its batch-1 singles), zero-shot, extremes."""
    assert case.encoder is not None and case.static_batch is not None
    batch = inputs.parity_batch(case.variant, case.encoder, case.static_batch)
    arrays = value_inputs(case.variant, case.encoder, batch)
    unique = {input_key(c): c for a in arrays for c in static_chunks(a, case.static_batch)}
    return list(unique.values())


def build_rknn(source: Path, out: Path, case: Case, settings: Mapping[str, Any]) -> dict[str, Any]:
    from conformance.toolchains.rknn import ToolchainError, find_toolchain
    from conformance.toolchains.simulate import compile_and_simulate

    toolchain = find_toolchain()
    if toolchain is None:
        raise ToolchainError(f"rknn toolchain not installed: {INSTALL_HINT}")
    assert case.encoder is not None
    copy_graph(source, out)  # the graph the NPU build took, for the record
    batches = simulated_inputs(case)
    work = out.parent / "rknn-work"
    work.mkdir(exist_ok=True)
    result = compile_and_simulate(
        toolchain,
        source,
        INPUT_NAME[case.encoder],
        list(batches[0].shape),
        [b.astype(np.int32) if b.dtype.kind in "iu" else b for b in batches],  # the profile's int32 ids
        platform=str(settings["platform"]),
        workdir=work,
    )
    recorded: dict[str, Any] = {input_key(x): y for x, y in zip(batches, result.outputs, strict=True)}
    np.savez(out.parent / SIMULATED, **recorded)
    # The outputs stand in for the device from now on: their hash is recorded, and checked before each use.
    simulated_sha256 = sha256_of(out.parent / SIMULATED)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "toolkit_version": result.toolkit_version,
        "platform": result.platform,
        "npu_build_seconds": round(result.build_seconds, 2),
        "simulate_seconds": round(sum(result.simulate_seconds), 2),
        "simulated_inputs": len(batches),
        "simulated_sha256": simulated_sha256,
        "graph_sha256": sha256_of(source),
        "warnings": result.warnings,
        "timing_note": "simulator seconds on the x86 host, not the NPU's latency",
    }


def simulated_output(artifact: Artifact, array: np.ndarray) -> np.ndarray:
    path = artifact.folder / SIMULATED
    recorded_sha256 = (artifact.compiled or {}).get("simulated_sha256")
    if recorded_sha256 != _sha256_once(path, path.stat().st_mtime_ns, path.stat().st_size):
        raise ValueError(f"{artifact.case.id}: {SIMULATED} is not the file its build recorded (edited or replaced)")
    with np.load(path) as recorded:
        key = input_key(array)
        if key not in recorded.files:
            raise LookupError(
                f"{artifact.case.id}: RKNN's simulator runs only where the graph is built, and this input "
                f"(shape {list(array.shape)}) was not among the {len(recorded.files)} it simulated"
            )
        return np.asarray(recorded[key])


@lru_cache(maxsize=16)
def _sha256_once(path: Path, mtime_ns: int, size: int) -> str:
    return sha256_of(path)
