import os

import onnx

from conformance.checks.validity import check_opset_validity
from conformance.encoders import EncoderKind
from conformance.export import Exporter
from tests.helpers import TINY_RN, TINY_VIT, copy_artifact, good


def test_good_exports_are_valid(tiny_cache):
    for exporter in Exporter:
        result = check_opset_validity(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE, exporter))
        assert result.passed, result.message
        assert result.figures["opset_import"] == 20


def test_opset_import_below_an_operators_since_version_fails(tiny_cache, tmp_path):
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE), tmp_path / "a")
    model = onnx.load(str(artifact.onnx_path))
    model.opset_import[0].version = 16  # LayerNormalization exists since opset 17
    onnx.save(model, str(artifact.onnx_path))
    result = check_opset_validity(artifact)
    assert not result.passed
    assert "operator LayerNormalization has no schema at opset 16" in result.message
    assert "opset import is 16, expected 20" in result.message


def test_truncated_external_data_fails_with_a_clear_message(tiny_cache, tmp_path):
    artifact = copy_artifact(good(tiny_cache, TINY_RN, EncoderKind.IMAGE, Exporter.DYNAMO), tmp_path / "a")
    data = artifact.folder / "model.onnx.data"
    os.truncate(data, data.stat().st_size - 100)
    result = check_opset_validity(artifact)
    assert not result.passed
    assert "model.onnx.data is truncated: tensor" in result.message


def test_missing_external_data_fails_with_a_clear_message(tiny_cache, tmp_path):
    artifact = copy_artifact(good(tiny_cache, TINY_RN, EncoderKind.IMAGE, Exporter.DYNAMO), tmp_path / "a")
    (artifact.folder / "model.onnx.data").unlink()
    result = check_opset_validity(artifact)
    assert not result.passed and "external data file model.onnx.data" in result.message


def test_truncated_graph_file_fails_with_a_clear_message(tiny_cache, tmp_path):
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE), tmp_path / "a")
    os.truncate(artifact.onnx_path, artifact.onnx_path.stat().st_size // 3)
    result = check_opset_validity(artifact)
    assert not result.passed
    assert "model.onnx" in result.message and ("not a readable ONNX model" in result.message
                                              or "truncated" in result.message)


def test_unexpected_domain_fails(tiny_cache, tmp_path):
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE), tmp_path / "a")
    model = onnx.load(str(artifact.onnx_path))
    model.graph.node[0].domain = "com.example.npu"
    onnx.save(model, str(artifact.onnx_path))
    result = check_opset_validity(artifact)
    assert not result.passed and "unexpected operator domain 'com.example.npu'" in result.message
