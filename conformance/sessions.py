"""One open runtime object per graph file (an onnxruntime session, an OpenVINO compiled model), kept while its
variant's tests run."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from conformance.artifact import Artifact

Opened = TypeVar("Opened")


class SessionStore(Generic[Opened]):
    """One object per graph file, reused by every check of its case and closed when its group (a variant) is
    done (`close_group`), so memory stays bounded under `--variant all`. A changed graph or external-data file
    (by mtime and size) gets a fresh one; `limit` bounds the store when nobody closes groups (library use)."""

    def __init__(self, opener: Callable[[Artifact, int], Opened], limit: int = 8) -> None:
        self.opener = opener
        self.limit = limit
        self._open: OrderedDict[tuple[object, ...], tuple[str, Opened]] = OrderedDict()

    def get(self, artifact: Artifact, threads: int) -> Opened:
        key = (artifact.onnx_path, artifact.fingerprint(), threads)
        if key not in self._open:
            self._open[key] = (artifact.case.group, self.opener(artifact, threads))
            while len(self._open) > self.limit:
                self._open.popitem(last=False)
        self._open.move_to_end(key)
        return self._open[key][1]

    def close_group(self, group: str) -> int:
        keys = [key for key, (owner, _) in self._open.items() if owner == group]
        for key in keys:
            del self._open[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._open)
