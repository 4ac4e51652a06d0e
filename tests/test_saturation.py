"""int8_saturation: full-range int8 weights, which x86 kernels without VNNI saturate, fail on any CPU; the 7-bit
recipes pass; a recorded runtime option or a declared deployment ISA accepts the risk, and says so."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conformance import inputs
from conformance.case import Case, Exporter, Precision, Target
from conformance.checks.saturation import check_int8_saturation
from conformance.encoders import EncoderKind
from conformance.isa import saturation_rule
from conformance.registry import BY_NAME
from conformance.runtime import run_onnx, session
from conformance.subject import Subject
from tests.support.helpers import TINY_VIT, compile_with, copy_artifact, good, synthetic

INT8 = [Target.INT8_DYNAMIC, Target.INT8_STATIC, Target.OPENVINO_INT8]
# What each recipe wrote before version 2: full-range int8 weights.
VERSION_1: dict[Target, dict[str, Any]] = {
    Target.INT8_DYNAMIC: {"reduce_range": False},
    Target.INT8_STATIC: {"reduce_range": False},
    Target.OPENVINO_INT8: {"overflow_fix": "disable"},
}


def vpmaddubsw_then_sum(activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """x86's u8 x s8 dot product without VNNI: each adjacent pair of products is added in int16 with saturation
    (vpmaddubsw), the saturated pairs then summed in int32 (vpmaddwd with ones)."""
    products = activations.astype(np.int32)[:, :, None] * weights.astype(np.int32)[None, :, :]
    pairs = np.clip(products[:, 0::2] + products[:, 1::2], -32768, 32767)
    return pairs.sum(axis=1)


def test_the_rules_bound_is_exactly_where_pairs_of_products_stop_fitting_in_int16():
    """The arithmetic behind isa.toml's [-64, 64]: worst-case activations (255) against weights at the bound are
    exact; one step beyond, the emulated AVX2 kernel differs from the exact dot product."""
    rule = saturation_rule()
    worst = np.full((1, 64), 255, dtype=np.uint8)
    for bound in (rule.weight_min, rule.weight_max):
        weights = np.full((64, 3), bound, dtype=np.int8)
        exact = worst.astype(np.int64) @ weights.astype(np.int64)
        assert np.array_equal(vpmaddubsw_then_sum(worst, weights), exact)
    beyond = np.full((64, 3), rule.weight_max + 1, dtype=np.int8)
    assert not np.array_equal(vpmaddubsw_then_sum(worst, beyond), worst.astype(np.int64) @ beyond.astype(np.int64))


@pytest.mark.parametrize("target", INT8, ids=str)
def test_each_recipes_full_range_output_fails_and_its_7_bit_output_passes(tiny_cache, tmp_path, target):
    """The negative control per recipe: what it wrote before version 2 fails, whatever CPU runs the check."""
    old = compile_with(tiny_cache, tmp_path, target, **VERSION_1[target])
    result = check_int8_saturation(old)
    assert not result.passed, result.message
    assert "leave [-64, 64]" in result.message and "reduce_range" in result.message and "source:" in result.message
    assert result.figures["outside_range"] > 0 and result.figures["examples"]
    (tmp_path / "new").mkdir()
    new = compile_with(tiny_cache, tmp_path / "new", target)
    result = check_int8_saturation(new)
    assert result.passed and result.figures["outside_range"] == 0, result.message


def test_uint8_weights_pass_and_a_graph_without_8_bit_weights_fails(tiny_cache, tmp_path):
    """U8U8 widens to 16 bits before multiplying; an "int8" graph with no 8-bit weight is not one."""
    u8u8 = compile_with(tiny_cache, tmp_path, Target.INT8_DYNAMIC, weight_type="QUInt8", reduce_range=False)
    result = check_int8_saturation(u8u8)
    assert result.passed and result.figures["uint8_weight_tensors"] > 0 and "uint8" in result.message
    fp32 = copy_artifact(good(tiny_cache, TINY_VIT, "image"), tmp_path / "fp32")
    fp32.case = fp32.case.on(Target.INT8_DYNAMIC)
    result = check_int8_saturation(fp32)
    assert not result.passed and "no 8-bit weight" in result.message


def test_a_recorded_runtime_option_is_set_by_the_suite_and_accepts_the_risk_on_onnxruntime_only(tiny_cache, tmp_path):
    old = compile_with(tiny_cache, tmp_path, Target.INT8_DYNAMIC, reduce_range=False)
    assert old.compiled is not None
    old.compiled["runtime_options"] = {"session.x64quantprecision": "1"}
    result = check_int8_saturation(old)
    assert result.passed and "session.x64quantprecision=1" in result.message and "deployment" in result.message
    opened = session(old)
    assert opened.get_session_options().get_session_config_entry("session.x64quantprecision") == "1"
    assert np.isfinite(run_onnx(old, inputs.batch_for(TINY_VIT, EncoderKind.IMAGE, 2))).all()
    old.compiled["runtime_options"] = {"session.x64quantprecision": "0"}
    assert not check_int8_saturation(old).passed
    ov = compile_with(tiny_cache, tmp_path, Target.OPENVINO_INT8, overflow_fix="disable")
    assert ov.compiled is not None
    ov.compiled["runtime_options"] = {"session.x64quantprecision": "1"}  # OpenVINO would ignore it
    assert not check_int8_saturation(ov).passed


def test_a_declared_deployment_isa_with_vnni_accepts_the_risk_and_one_without_does_not(tiny_cache, tmp_path):
    old = compile_with(tiny_cache, tmp_path, Target.INT8_STATIC, reduce_range=False)
    accepted = check_int8_saturation(old, deploy_isa=frozenset({"avx512_vnni", "avx2"}))
    assert accepted.passed and "risk accepted" in accepted.message and "avx512_vnni" in accepted.message
    assert not check_int8_saturation(old, deploy_isa=frozenset({"avx2", "avx512f"})).passed
    subject = Subject(old.case, synthetic(TINY_VIT).model, {EncoderKind.IMAGE: old}, deploy_isa=frozenset({"amx_int8"}))
    assert BY_NAME["int8_saturation"].execute(subject, None).passed


def test_the_rule_applies_to_every_int8_target_and_nothing_else():
    """And to the weight-only 4-bit targets, where it says why it does not apply (tests/test_four_bit.py)."""
    check = BY_NAME["int8_saturation"]
    for target in Target:
        case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO).on(target)
        quantised = target.precision in (Precision.INT8, Precision.INT4, Precision.NF4)
        assert check.applies(case) == quantised, target


def _load_time_quantised(folder, scale: float):
    """float weights -> QuantizeLinear -> DequantizeLinear -> MatMul: the integers exist only once a runtime folds
    the QuantizeLinear at load, which the rule must compute (round(w / scale) + zero point) to see."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from conformance.artifact import Artifact
    from conformance.weights import Provenance

    weights = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["w", "scale", "zero"], ["w_q"]),
            helper.make_node("DequantizeLinear", ["w_q", "scale", "zero"], ["w_dq"]),
            helper.make_node("MatMul", ["image", "w_dq"], ["output"]),
        ],
        "load-time",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3])],
        [
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array(scale, np.float32), "scale"),
            numpy_helper.from_array(np.array(0, np.int8), "zero"),
        ],
    )
    folder.mkdir()
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), folder / "model.onnx"
    )
    case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO).on(Target.INT8_STATIC)
    return Artifact(folder, case, Provenance.synthetic(0), None, None)


def test_weights_quantised_at_load_time_are_computed_not_missed(tmp_path):
    full = check_int8_saturation(_load_time_quantised(tmp_path / "full", 1.0 / 127))
    assert not full.passed and "spans [-127, 127]" in full.message
    seven_bit = check_int8_saturation(_load_time_quantised(tmp_path / "seven", 1.0 / 64))
    assert seven_bit.passed and seven_bit.figures["int8_weight_tensors"] == 1, seven_bit.message


def _layout(folder, extra_nodes, extra_inits, opset=17):
    """One safe 7-bit MatMulInteger, plus the full-range weight `extra_nodes` reach some other way."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from conformance.artifact import Artifact
    from conformance.weights import Provenance

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-64, 65, (8, 8)).astype(np.int8), "safe"), *extra_inits]
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "safe"], ["y0"]), *extra_nodes],
        "layout",
        [
            helper.make_tensor_value_info("x", TensorProto.UINT8, ["b", 8]),
            helper.make_tensor_value_info("xf", 1, ["b", 8]),
        ],
        [helper.make_tensor_value_info("y0", TensorProto.INT32, None), helper.make_tensor_value_info("y1", 1, None)],
        inits,
    )
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
    folder.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=10), folder / "model.onnx")
    case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO).on(Target.INT8_STATIC)
    return Artifact(folder, case, Provenance.synthetic(0), None, None)


def _layouts():
    from onnx import helper, numpy_helper

    full = np.random.default_rng(1).integers(-128, 128, (8, 8)).astype(np.int8)
    floats = full.astype(np.float32) / 127
    w, wf, s = (
        numpy_helper.from_array(full, "w"),
        numpy_helper.from_array(floats, "wf"),
        numpy_helper.from_array(np.array(1 / 127, np.float32), "s"),
    )
    z = numpy_helper.from_array(np.array(0, np.int8), "z")
    node = helper.make_node
    then = helper.make_graph(
        [node("DequantizeLinear", ["wsub", "s", "z"], ["d"]), node("MatMul", ["xf", "d"], ["yt"])],
        "then",
        [],
        [helper.make_tensor_value_info("yt", 1, None)],
        [numpy_helper.from_array(full, "wsub")],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    return {
        "transpose-then-matmulinteger": (
            [
                node("Transpose", ["w"], ["t"]),
                node("MatMulInteger", ["x", "t"], ["yi"]),
                node("Cast", ["yi"], ["y1"], to=1),
            ],
            [w],
            17,
            "spans",
        ),
        "qattention": (
            [node("QAttention", ["x", "w3", "bias", "s", "s"], ["y1"], domain="com.microsoft", num_heads=2)],
            [
                numpy_helper.from_array(np.tile(full, (1, 3)), "w3"),
                numpy_helper.from_array(np.zeros(24, np.float32), "bias"),
                s,
            ],
            17,
            "spans",
        ),
        "transpose-then-quantise": (
            [
                node("Transpose", ["wf"], ["t"]),
                node("QuantizeLinear", ["t", "s", "z"], ["q"]),
                node("DequantizeLinear", ["q", "s", "z"], ["d"]),
                node("MatMul", ["xf", "d"], ["y1"]),
            ],
            [wf, s, z],
            17,
            "spans",
        ),
        "output-dtype-int8": (
            [
                node("QuantizeLinear", ["wf", "s"], ["q"], output_dtype=3),
                node("DequantizeLinear", ["q", "s"], ["d"]),
                node("MatMul", ["xf", "d"], ["y1"]),
            ],
            [wf, s],
            21,
            "spans",
        ),
        "zero-point-computed": (
            [
                node("Neg", ["z"], ["z2"]),
                node("QuantizeLinear", ["wf", "s", "z2"], ["q"]),
                node("DequantizeLinear", ["q", "s", "z2"], ["d"]),
                node("MatMul", ["xf", "d"], ["y1"]),
            ],
            [wf, s, z],
            17,
            "cannot be checked",
        ),
        "inside-an-if": ([node("If", ["cond"], ["y1"], then_branch=then, else_branch=then)], [cond, s, z], 17, "spans"),
    }


@pytest.mark.parametrize("layout", list(_layouts()), ids=str)
def test_full_range_weights_fail_however_the_graph_reaches_them(tmp_path, layout):
    """Layouts other tools write (found by attacking the rule): through a Transpose, in com.microsoft's QAttention,
    quantised at load by an opset-21 QuantizeLinear with output_dtype int8, inside a subgraph; a zero point computed
    at run time is not guessed at."""
    nodes, inits, opset, expected = _layouts()[layout]
    result = check_int8_saturation(_layout(tmp_path / layout, nodes, inits, opset))
    assert not result.passed and expected in result.message, result.message
    assert check_int8_saturation(_layout(tmp_path / "safe-only", [], [])).passed
