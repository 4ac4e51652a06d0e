import os

import onnx
import pytest

from conformance.case import Exporter
from conformance.checks.validity import check_opset_validity
from conformance.encoders import EncoderKind
from tests.support.helpers import TINY_RN, TINY_VIT, copy_artifact, good


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
    assert "model.onnx" in result.message and (
        "not a readable ONNX model" in result.message or "truncated" in result.message
    )


def test_unexpected_domain_fails(tiny_cache, tmp_path):
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE), tmp_path / "a")
    model = onnx.load(str(artifact.onnx_path))
    model.graph.node[0].domain = "com.example.npu"
    onnx.save(model, str(artifact.onnx_path))
    result = check_opset_validity(artifact)
    assert not result.passed and "unexpected operator com.example.npu." in result.message


def _quick_gelu_function(domain: str, name: str) -> onnx.FunctionProto:
    """A model-local function whose body holds onnxruntime's contrib QuickGelu (x * sigmoid(1.702 x))."""
    body = [onnx.helper.make_node("QuickGelu", ["x"], ["y"], domain="com.microsoft", alpha=1.702)]
    return onnx.helper.make_function(
        domain,
        name,
        ["x"],
        ["y"],
        body,
        [onnx.helper.make_opsetid("", 20), onnx.helper.make_opsetid("com.microsoft", 1)],
    )


@pytest.mark.parametrize("where", ["function", "top-level beside a decoy function"])
def test_contrib_operator_hidden_from_a_top_level_scan_fails(tiny_cache, tmp_path, where):
    """onnxruntime runs com.microsoft ops; onnx.reference, TensorRT and NPU compilers do not."""
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.IMAGE), tmp_path / "a")
    model = onnx.load(str(artifact.onnx_path))
    sink = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = ["pre_gelu" if name == sink else name for name in node.output]
    if where == "function":
        model.functions.append(_quick_gelu_function("local.fn", "Act"))
        model.graph.node.append(onnx.helper.make_node("Act", ["pre_gelu"], [sink], domain="local.fn"))
        model.opset_import.append(onnx.helper.make_opsetid("local.fn", 1))
    else:
        model.functions.append(_quick_gelu_function("com.microsoft", "Unused"))
        model.graph.node.append(onnx.helper.make_node("QuickGelu", ["pre_gelu"], [sink], domain="com.microsoft"))
    model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(artifact.onnx_path))
    result = check_opset_validity(artifact)
    assert not result.passed and "unexpected operator com.microsoft.QuickGelu" in result.message
