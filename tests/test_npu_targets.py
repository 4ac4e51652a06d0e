"""The NPU and OpenVINO targets: static graphs at their batch, dynamic claims skipped on them, compilers whose
broken output parity catches, RKNN over its subprocess boundary, and release runs that require a target."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from onnx import helper, numpy_helper

from conformance import inputs
from conformance.case import Case, Exporter, Profile, Target
from conformance.checks.contract import check_io_contract
from conformance.checks.parity import check_parity
from conformance.compile import rknn as rknn_recipe
from conformance.encoders import EncoderKind
from conformance.export import ExportSpec
from conformance.registry import BY_NAME
from conformance.results import Status
from conformance.runtime import run_onnx, run_torch
from conformance.subject import Subject
from conformance.tolerances import tolerance
from conformance.toolchains.rknn import find_toolchain
from conformance.value_inputs import input_key
from conformance.weights import sha256_of
from tests.support.graph_edits import add_noise, edit_graph, rewire_output
from tests.support.helpers import TINY_VIT, skip_unless_runnable, synthetic


def made(cache, target: Target, encoder: EncoderKind = EncoderKind.IMAGE, batch: int | None = None, opset: int = 17):
    loaded = synthetic(TINY_VIT)
    case = Case(TINY_VIT, encoder, Exporter.TORCHSCRIPT, opset).on(target, batch)
    skip_unless_runnable(case)
    return cache.get(ExportSpec(case), loaded.model, loaded.provenance)


def budget(artifact, check: str = "parity"):
    return tolerance(check, artifact.case.context())


def test_a_static_target_fixes_its_profile_batch_and_encoders():
    case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT, 17).on(Target.RKNN, 8)
    assert case.profile == Profile.NPU_STATIC and case.static_batch == 8 and case.id.endswith("-rknn-b8")
    assert case.source.target == Target.NPU_STATIC and case.source.static_batch == 8
    assert Case.from_record(case.record()) == case
    assert Profile.NPU_STATIC.encoders == (EncoderKind.IMAGE, EncoderKind.TEXT_SPLIT)
    with pytest.raises(ValueError, match="static profile has one"):
        Case.from_record({**case.record(), "static_batch": None})
    with pytest.raises(ValueError, match="does not go with target"):
        Case.from_record({**case.record(), "profile": "dynamic"})
    assert "static_batch" not in Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO).record()  # old keys stay warm


@pytest.mark.parametrize("encoder", [EncoderKind.IMAGE, EncoderKind.TEXT_SPLIT], ids=str)
def test_a_static_graph_runs_any_batch_in_chunks_of_its_own(tiny_cache, encoder):
    artifact = made(tiny_cache, Target.NPU_STATIC, encoder, batch=2)
    x = inputs.batch_for(TINY_VIT, encoder, 5)  # two full chunks and one padded
    np.testing.assert_allclose(run_onnx(artifact, x), run_torch(synthetic(TINY_VIT).model, encoder, x), atol=1e-5)
    assert check_io_contract(artifact).passed
    assert check_parity(artifact, synthetic(TINY_VIT).model, budget(artifact)).passed


def test_a_static_graph_at_the_wrong_batch_fails_the_contract(tiny_cache, tmp_path):
    artifact = made(tiny_cache, Target.NPU_STATIC, batch=2)
    labelled = edit_graph(artifact, tmp_path / "relabelled", lambda model: None)
    labelled.case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT, 17).on(Target.NPU_STATIC, 1)
    result = check_io_contract(labelled)
    assert not result.passed and "fixed batch of 1" in result.message and "batch dimension 2" in result.message


@pytest.mark.parametrize("name", ["dynamic_batch", "row_independence"])
def test_dynamic_claims_skip_on_a_static_graph_with_the_reason(tiny_cache, name):
    artifact = made(tiny_cache, Target.NPU_STATIC, batch=1)
    subject = Subject(artifact.case, synthetic(TINY_VIT).model, {EncoderKind.IMAGE: artifact})
    result = BY_NAME[name].execute(subject, None)
    assert result.status == Status.SKIPPED and "fixed at batch 1" in result.message and result.check == name


@pytest.mark.parametrize("target", [Target.OPENVINO, Target.OPENVINO_BF16, Target.OPENVINO_INT8], ids=str)
def test_openvino_targets_run_in_openvino_within_their_budget(tiny_cache, target):
    artifact = made(tiny_cache, target, opset=20)
    assert artifact.compiled is not None and artifact.compiled["device"] == "CPU"
    assert artifact.compiled["inference_precision"] == ("bf16" if target == Target.OPENVINO_BF16 else "f32")
    assert check_parity(artifact, synthetic(TINY_VIT).model, budget(artifact)).passed


def test_an_openvino_compile_whose_output_is_perturbed_fails_parity(tiny_cache, tmp_path):
    artifact = made(tiny_cache, Target.OPENVINO, opset=20)
    broken = add_noise(artifact, tmp_path / "noisy", scale=1e-3)
    result = check_parity(broken, synthetic(TINY_VIT).model, budget(broken))
    assert broken.case.target.runtime == "openvino"
    assert not result.passed and "max abs error" in result.message


def test_openvino_int8_with_smoothquant_fails_the_int8_budget(tiny_cache, monkeypatch):
    """The recipe turns SmoothQuant off for a reason: with it (NNCF's default for transformers) the split text
    graph misses the int8 budget (cosine 0.980 on tiny-vit, 0.976 on ViT-B/32)."""
    from conformance.compile import recipes

    recipe = recipes.RECIPES[Target.OPENVINO_INT8]
    worse = dataclasses.replace(recipe, settings={**recipe.settings, "smooth_quant": True})
    monkeypatch.setitem(recipes.RECIPES, Target.OPENVINO_INT8, worse)
    artifact = made(tiny_cache, Target.OPENVINO_INT8, EncoderKind.TEXT_SPLIT, opset=20)
    result = check_parity(artifact, synthetic(TINY_VIT).model, budget(artifact))
    assert not result.passed and "min cosine" in result.message


def _coarse_weights(model) -> None:
    """Every float weight rounded to 4 significant bits (an fp8-like compile): 16x coarser than bf16."""
    from onnx import numpy_helper

    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32 and array.size > 1:
            mantissa, exponent = np.frexp(array)
            tensor.CopyFrom(numpy_helper.from_array(np.ldexp(np.round(mantissa * 16) / 16, exponent), tensor.name))


def test_a_coarser_compile_under_the_bf16_name_fails_the_bf16_budget(tiny_cache, tmp_path):
    artifact = made(tiny_cache, Target.OPENVINO_BF16, opset=20)
    coarse = edit_graph(artifact, tmp_path / "coarse", _coarse_weights)
    result = check_parity(coarse, synthetic(TINY_VIT).model, budget(coarse))
    assert not result.passed, result.message


def test_rknn_answers_only_the_inputs_its_build_simulated_from_the_file_it_recorded(tiny_cache, tmp_path):
    case = Case(TINY_VIT, EncoderKind.TEXT_SPLIT, Exporter.TORCHSCRIPT, 17).on(Target.RKNN, 1)
    wanted = rknn_recipe.simulated_inputs(case)
    assert all(len(x) == 1 for x in wanted)  # each at the static batch
    artifact = made(tiny_cache, Target.NPU_STATIC, EncoderKind.TEXT_SPLIT, batch=1)
    recorded: dict[str, Any] = {input_key(wanted[0]): np.zeros((1, 3))}
    npz = tmp_path / rknn_recipe.SIMULATED
    np.savez(npz, **recorded)
    compiled = {"simulated_sha256": sha256_of(npz)}
    artifact = dataclasses.replace(artifact, folder=tmp_path, case=case, compiled=compiled)  # the cache's stays
    assert rknn_recipe.simulated_output(artifact, wanted[0]).shape == (1, 3)
    with pytest.raises(LookupError, match="was not among the 1 it simulated"):
        rknn_recipe.simulated_output(artifact, wanted[1])
    recorded[input_key(wanted[0])] = np.ones((1, 3))
    np.savez(npz, **recorded)  # same size, other values
    with pytest.raises(ValueError, match="not the file its build recorded"):
        rknn_recipe.simulated_output(artifact, wanted[0])


def _rows_0_to_2_repeated(model) -> None:
    """A static batch-6 graph whose rows 3-5 repeat rows 0-2: right for any batch of up to 3 distinct items."""
    sink = model.graph.output[0].name
    raw = rewire_output(model, sink)
    model.graph.initializer.append(numpy_helper.from_array(np.array([0, 1, 2, 0, 1, 2], dtype=np.int64), "rows"))
    model.graph.node.append(helper.make_node("Gather", [raw, "rows"], [sink], axis=0, name="repeat_rows"))


@pytest.mark.parametrize("check", ["parity", "row_independence"])
def test_a_static_graph_wrong_in_its_last_slots_fails(tiny_cache, tmp_path, check):
    """Every slot of a static batch is compared: parity feeds at least the static batch of distinct items, and
    row_independence compares each item in a mixed batch with the item in a batch of its own copies."""
    artifact = made(tiny_cache, Target.NPU_STATIC, batch=6)
    broken = edit_graph(artifact, tmp_path / "rows", _rows_0_to_2_repeated)
    subject = Subject(broken.case, synthetic(TINY_VIT).model, {EncoderKind.IMAGE: broken})
    assert BY_NAME[check].execute(Subject(artifact.case, subject.model, {EncoderKind.IMAGE: artifact}), None).passed
    result = BY_NAME[check].execute(subject, None)
    assert result.status == Status.FAILED, result.message


def test_openvino_bf16_that_compiles_at_f32_fails(tiny_cache, monkeypatch):
    from conformance import openvino_runtime

    artifact = made(tiny_cache, Target.OPENVINO_BF16, opset=20)
    with pytest.raises(RuntimeError, match="at f32, not bf16"):
        openvino_runtime.compile_graph(artifact, 1, hint="f32")


def test_rknn_without_its_toolchain_is_a_skip_naming_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("CLIP_CONFORMANCE_TOOLCHAINS", str(tmp_path))
    case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT, 17).on(Target.RKNN, 1)
    reason = rknn_recipe.rknn_missing(case)
    assert reason is not None and "python -m conformance toolchain install rknn" in reason
    opset20 = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT, 20).on(Target.RKNN, 1)
    from conformance.compile.recipes import recipe_for

    assert "takes opset <= 19" in (recipe_for(Target.RKNN).unsupported(opset20) or "")


@pytest.mark.skipif(
    find_toolchain() is None, reason="rknn toolchain not installed: python -m conformance toolchain install rknn"
)
def test_rknn_builds_and_simulates_within_the_fp16_budget(tiny_cache):
    artifact = made(tiny_cache, Target.RKNN, EncoderKind.TEXT_SPLIT, batch=1)
    assert artifact.compiled is not None and artifact.compiled["toolkit_version"] == "2.5.0"
    assert artifact.compiled["simulated_inputs"] > 0 and isinstance(artifact.compiled["warnings"], list)
    assert check_parity(artifact, synthetic(TINY_VIT).model, budget(artifact)).passed
