"""Outputs shared across checks: each graph's output and each torch reference, computed once per input set.

Parity, the batch checks, the projection checks and zero-shot feed the same items to the same graphs and
models; the two exporters of one variant share one torch model. Memoising on the input's bytes makes
that work happen once. Timed code (latency) calls `runtime.run_onnx` directly, never these.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict

import numpy as np

from conformance.artifact import Artifact
from conformance.encoders import UNPROJECTED, ClipModel, EncoderKind
from conformance.runtime import run_onnx, run_torch

BUDGET_BYTES = 512 * 2**20  # per store: ViT-L/14's text-split outputs run to 4 MB a batch of 16


def _digest(array: np.ndarray) -> str:
    return f"{array.dtype}{array.shape}{hashlib.sha1(np.ascontiguousarray(array).data).hexdigest()}"


class _Store:
    """Least recently used first out, once the arrays held exceed `BUDGET_BYTES`."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[object, ...], tuple[str, np.ndarray]] = OrderedDict()
        self.nbytes = 0

    def get(self, key: tuple[object, ...]) -> np.ndarray | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        self._items.move_to_end(key)
        return hit[1]

    def put(self, key: tuple[object, ...], group: str, value: np.ndarray) -> np.ndarray:
        value.setflags(write=False)  # shared: a check that edits its copy in place would corrupt the others'
        self._items[key] = (group, value)
        self.nbytes += value.nbytes
        while self.nbytes > BUDGET_BYTES and len(self._items) > 1:
            self.nbytes -= self._items.popitem(last=False)[1][1].nbytes
        return value

    def drop_group(self, group: str) -> None:
        for key in [k for k, (owner, _) in self._items.items() if owner == group]:
            self.nbytes -= self._items.pop(key)[1].nbytes


_ONNX = _Store()
_TORCH: weakref.WeakKeyDictionary[ClipModel, _Store] = weakref.WeakKeyDictionary()


def onnx_output(artifact: Artifact, array: np.ndarray) -> np.ndarray:
    key = (artifact.onnx_path, artifact.output_name, artifact.fingerprint(), artifact.case.emulated, _digest(array))
    hit = _ONNX.get(key)
    return hit if hit is not None else _ONNX.put(key, artifact.case.group, run_onnx(artifact, array))


def torch_output(model: ClipModel, encoder: EncoderKind | str, array: np.ndarray) -> np.ndarray:
    """The torch reference of `model` (kept only while the model lives) on these inputs."""
    store = _TORCH.setdefault(model, _Store())
    key = (str(encoder), _digest(array))
    hit = store.get(key)
    return hit if hit is not None else store.put(key, "", run_torch(model, encoder, array))


def reference_output(artifact: Artifact, model: ClipModel, array: np.ndarray) -> np.ndarray:
    """What `artifact`'s graph must give for `array`: the torch reference of its encoder on the ids as its layout's
    host fits them to its context, before the projection where its layout's output is (Optimum's vision tower alone),
    L2-normalised where its layout's output is (another tool's embeddings often are)."""
    fitted = artifact.binding.fitted(array) if artifact.binding is not None else array  # the host's context
    unprojected = artifact.binding is not None and not artifact.binding.projected
    expected = torch_output(model, UNPROJECTED if unprojected else artifact.encoder, fitted)
    if artifact.binding is None or not artifact.binding.normalized:
        return expected
    return expected / np.linalg.norm(expected, axis=-1, keepdims=True)


def drop_group(group: str) -> None:
    """Forget a finished variant's ONNX outputs (its models' references go with the models)."""
    _ONNX.drop_group(group)
