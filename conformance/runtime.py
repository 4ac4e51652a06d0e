"""Running an Artifact in onnxruntime and its torch reference on the same numpy inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from conformance.artifact import Artifact
from conformance.batching import static_chunks
from conformance.encoders import ClipModel, EncoderKind, reference_module
from conformance.sessions import SessionStore
from conformance.versions import thread_count


class InputContractError(TypeError):
    """An input that does not fit the graph's declared contract; the message says how to fix it."""


def _open(path: Path, threads: int, config: dict[str, str] | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # failures reach the check as exceptions; no stderr spam
    for key, value in (config or {}).items():  # what the graph records it needs (its deployers must set it too)
        options.add_session_config_entry(key, value)
    # Intra-op threads may spin while a run lasts (faster: 7-20% at 2 threads on a Zen 5, 16-26% at 16 threads on
    # a Xeon), but stop spinning when it ends, so they do not steal the next call's cores: spinning left on after
    # each run once slowed the torch round that followed by ~45% (2 cores), and spinning off tilted every ratio
    # against onnxruntime on large machines. docs/latency.md, "Thread policy", has the measurements.
    options.add_session_config_entry("session.force_spinning_stop", "1")  # last: a graph's options cannot undo it
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def open_session(artifact: Artifact, threads: int) -> ort.InferenceSession:
    return _open(artifact.onnx_path, threads, artifact.runtime_options)


SESSIONS: SessionStore[ort.InferenceSession] = SessionStore(open_session)


_threads: int | None = None


def share_cores(workers: int) -> int:
    """Give this process its share of the cores (pytest-xdist workers), for ORT sessions and torch alike:
    two workers with two threads each on two cores would time each other's contention."""
    global _threads
    _threads = max(1, thread_count() // max(1, workers))
    torch.set_num_threads(_threads)
    return _threads


def threads() -> int:
    return _threads or thread_count()


def session(artifact: Artifact, threads_: int | None = None) -> ort.InferenceSession:
    """The artifact's CPU session (threads = this process's share of the cores); re-opened if the file changes."""
    return SESSIONS.get(artifact, threads_ or threads())


_ORT_TYPES: dict[str, np.dtype] = {
    name: np.dtype(t)
    for name, t in (
        ("tensor(float)", np.float32),
        ("tensor(int32)", np.int32),
        ("tensor(int64)", np.int64),
        ("tensor(float16)", np.float16),
        ("tensor(uint8)", np.uint8),  # an image's bytes (immich's fused visual graph)
    )
}


def coerce_input(array: np.ndarray, declared: str, name: str) -> np.ndarray:
    """Token ids may come as int32 (today's `clip.tokenize`) or int64 (older releases); both are cast
    losslessly to what the graph declares. Anything else is refused with a clear message."""
    want = _ORT_TYPES.get(declared)
    if want is None or array.dtype == want:
        return array
    if np.issubdtype(want, np.integer) and np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(want)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise InputContractError(f"input {name!r}: token ids out of range for {np.dtype(want).name}")
        return array.astype(want)
    raise InputContractError(
        f"input {name!r} expects {np.dtype(want).name} but got {array.dtype.name}; "
        f"{'tokenize with clip.tokenize' if np.issubdtype(want, np.integer) else 'cast the input'} and retry"
    )


def run_onnx(artifact: Artifact, array: np.ndarray) -> np.ndarray:
    """The artifact's outputs for `array`, on its target's runtime (onnxruntime, OpenVINO, or the outputs RKNN's
    simulator recorded). A static graph runs at its own batch: `array` is fed in chunks of that batch, the last
    one padded by repeating its final row, and the padding's outputs dropped."""
    batch = artifact.case.static_batch
    if batch is None or len(array) == batch:
        return _run_once(artifact, array)
    outputs = [_run_once(artifact, chunk) for chunk in static_chunks(array, batch)]
    return np.concatenate(outputs)[: len(array)]


def _run_once(artifact: Artifact, array: np.ndarray) -> np.ndarray:
    if artifact.case.emulated is not None:  # recorded by a worker under qemu (--emulate-cpu)
        from conformance.emulation.recorded import emulated_output

        return emulated_output(artifact, array, threads())
    runtime = artifact.case.target.runtime
    if runtime == "openvino":
        from conformance import openvino_runtime

        declared_type = openvino_runtime.declared_type(artifact, threads())
        feed = coerce_input(array, declared_type, artifact.input_name)
        return openvino_runtime.run_openvino(artifact, feed, threads())
    if runtime == "rknn-simulator":
        from conformance.compile.rknn import simulated_output

        return simulated_output(artifact, array)
    sess = session(artifact)
    if artifact.binding is not None:  # another tool's graph: its names, dtypes, mask and padding
        types = {i.name: i.type for i in sess.get_inputs()}
        raw = artifact.binding.feeds(array, artifact.variant.image_resolution)
        # only what the graph takes: a producer's user may have removed an input the layout knows (contract says)
        feeds = {name: coerce_input(a, types[name], name) for name, a in raw.items() if name in types}
        return sess.run([artifact.output_name], feeds)[0]
    declared = sess.get_inputs()[0]
    feed = coerce_input(array, declared.type, declared.name)
    return sess.run([artifact.output_name], {declared.name: feed})[0]


def run_torch(model: ClipModel, encoder: EncoderKind | str, array: np.ndarray) -> np.ndarray:
    """The reference: the same wrapper that was exported (or the unprojected image tower), on the CPU in fp32."""
    module = reference_module(model, encoder)
    with torch.no_grad():
        return module(torch.from_numpy(array)).float().numpy()
