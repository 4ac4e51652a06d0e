"""Expensive work shared across checks: one onnxruntime session per graph, outputs and references once."""

import numpy as np
import pytest

from conformance import inputs, outputs, runtime
from conformance.case import Exporter
from conformance.encoders import EncoderKind
from tests.support.helpers import TINY_RN, TINY_VIT, copy_artifact, good, synthetic


def test_one_session_per_graph_until_its_variant_is_done(tiny_cache):
    store = runtime.SessionStore(runtime.open_session)
    image, text = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE), good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT)
    other = good(tiny_cache, TINY_RN, EncoderKind.IMAGE)
    first = store.get(image, 1)
    assert store.get(image, 1) is first and len({id(store.get(a, 1)) for a in (image, text, other)}) == 3
    assert store.close_group("tiny-vit") == 2 and len(store) == 1
    assert store.get(image, 1) is not first  # opened again only if asked for again


def test_the_store_stays_bounded_when_nobody_closes_groups(tiny_cache):
    store = runtime.SessionStore(runtime.open_session, limit=2)
    for encoder in EncoderKind:
        store.get(good(tiny_cache, TINY_VIT, encoder), 1)
    assert len(store) == 2


def test_outputs_are_computed_once_per_input_and_cannot_be_edited(tiny_cache, monkeypatch):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO)
    calls: list[int] = []
    real = outputs.run_onnx

    def counted(artifact, x):
        calls.append(1)
        return real(artifact, x)

    monkeypatch.setattr(outputs, "run_onnx", counted)
    x = inputs.batch_for(TINY_VIT, EncoderKind.IMAGE, 3, offset=777)
    first = outputs.onnx_output(artifact, x)
    again = outputs.onnx_output(artifact, x.copy())  # equal bytes: the same input set
    assert again is first and len(calls) == 1
    outputs.onnx_output(artifact, inputs.batch_for(TINY_VIT, EncoderKind.IMAGE, 3, offset=778))
    assert len(calls) == 2
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0] = 1.0
    outputs.drop_group("tiny-vit")
    outputs.onnx_output(artifact, x)
    assert len(calls) == 3


def test_one_torch_reference_per_model_and_input(monkeypatch):
    model = synthetic(TINY_VIT).model
    calls: list[int] = []
    real = outputs.run_torch

    def counted(model, encoder, x):
        calls.append(1)
        return real(model, encoder, x)

    monkeypatch.setattr(outputs, "run_torch", counted)
    x = inputs.batch_for(TINY_VIT, EncoderKind.TEXT_FULL, 2, offset=555)
    a = outputs.torch_output(model, EncoderKind.TEXT_FULL, x)
    b = outputs.torch_output(model, EncoderKind.TEXT_FULL, x)
    assert a is b and len(calls) == 1
    other_model = synthetic(TINY_VIT, seed=1).model  # another model never gets this one's reference
    assert not np.array_equal(outputs.torch_output(other_model, EncoderKind.TEXT_FULL, x), a)


def test_a_changed_external_data_file_gets_a_fresh_session_and_output(tiny_cache, tmp_path):
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO), tmp_path / "a")
    data = next(artifact.folder / name for name in artifact.files if name.endswith(".data"))
    x = inputs.batch_for(TINY_VIT, EncoderKind.IMAGE, 2, offset=4242)
    before, session = outputs.onnx_output(artifact, x), runtime.session(artifact)
    raw = bytearray(data.read_bytes())
    raw[: len(raw) // 2] = bytes(len(raw) // 2)  # the weights zeroed in place; the graph file is untouched
    data.write_bytes(bytes(raw))
    assert runtime.session(artifact) is not session
    assert not np.array_equal(outputs.onnx_output(artifact, x), before)


def test_the_output_store_stays_within_its_byte_budget(monkeypatch):
    monkeypatch.setattr(outputs, "BUDGET_BYTES", 3 * 1024)
    store = outputs._Store()
    for index in range(10):
        store.put(("k", index), "g", np.zeros(256, np.float32))  # 1 KiB each
    assert store.nbytes <= 3 * 1024 and store.get(("k", 9)) is not None and store.get(("k", 0)) is None
    store.drop_group("g")
    assert store.nbytes == 0
