"""The shared parts of the verdict-reuse self-tests (tests/test_verdict_reuse.py, tests/test_verdict_store.py)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from conformance.encoders import EncoderKind
from conformance.export import ExportCache
from conformance.registry import BY_NAME
from conformance.subject import Subject
from conformance.verdicts import FileDigests, VerdictStore
from fixtures.reuse import Verdicts, keyed_options
from tests.support.helpers import TINY_VIT, copy_artifact, good, synthetic

GRAPH_ROW, MACHINE_ROW = BY_NAME["opset_validity"], BY_NAME["dynamic_batch"]


def fake_config(**given: Any) -> Any:
    return SimpleNamespace(getoption=lambda name, default=None: given.get(name, default))


def make_verdicts(root: Path, **given: Any) -> Verdicts:
    options = keyed_options(fake_config(**{"device": "cpu", **given})) | {"environment": {}}
    return Verdicts(VerdictStore(root / "verdicts"), FileDigests(), options, given.get("weights"))


def copied_subject(cache: ExportCache, folder: Path) -> Subject:
    """A private copy of the tiny ViT's image graph, its weights moved to external data beside it, free to edit."""
    import onnx

    artifact = copy_artifact(good(cache, TINY_VIT, EncoderKind.IMAGE), folder)
    path = artifact.onnx_path
    onnx.save_model(
        onnx.load(str(path)), str(path), save_as_external_data=True, location="model.onnx.data", size_threshold=0
    )
    return Subject(artifact.case, synthetic(TINY_VIT).model, {EncoderKind.IMAGE: artifact})


def digest_of(v: Verdicts, subject: Subject, check=MACHINE_ROW) -> str:
    key = v.key(check, subject, "")
    assert key is not None
    return key.digest


def flip_last_byte(path: Path) -> None:
    """One bit of the file's last byte flipped, its size and mtime as they were (`touch -r`)."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
