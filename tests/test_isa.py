"""The CPU is part of the record, and a target tied to an ISA skips, with the reason, on a CPU without it."""

from __future__ import annotations

from conformance import isa, versions
from conformance.case import Case, Exporter, Target
from conformance.compile import recipes
from conformance.encoders import EncoderKind
from tests.support.helpers import TINY_VIT

ZEN3 = {"fpu", "sse2", "avx", "avx2", "fma"}  # family 25 model 1: no AVX-512, no VNNI, no bf16
ZEN4 = ZEN3 | {"avx512f", "avx512_vnni", "avx512_bf16"}


def test_the_recorded_flags_are_the_ones_that_matter_in_a_fixed_order():
    assert versions.recorded_flags(ZEN3 | {"sse4_2", "aes"}) == ["avx2", "fma"]
    assert versions.recorded_flags(ZEN4) == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    env = versions.environment()
    assert env["cpu_isa"] == (" ".join(versions.recorded_flags()) or "none of the recorded flags")
    assert {"cpu", "cpu_family", "cpu_model_number", "cpu_isa"} <= set(env)


def test_precisions_know_which_flags_accelerate_them():
    int8, bf16 = isa.feature("int8"), isa.feature("bf16")
    assert int8 is not None and bf16 is not None and isa.feature("fp32") is None
    assert not int8.present(ZEN3) and int8.present(ZEN4) and int8.present({"avx_vnni"}) and int8.present({"amx_int8"})
    assert not bf16.present(ZEN3) and bf16.present(ZEN4) and bf16.present({"amx_bf16"})
    assert "avx512_vnni" in (int8.missing(ZEN3) or "") and int8.missing(ZEN4) is None


def test_openvino_bf16_is_unsupported_without_bf16_and_nothing_else_is():
    reason = isa.unsupported_target("openvino-bf16", ZEN3)
    assert reason is not None and "avx512_bf16" in reason and "f32" in reason
    assert isa.unsupported_target("openvino-bf16", ZEN4) is None
    for target in Target:
        if target != Target.OPENVINO_BF16:
            assert isa.unsupported_target(str(target), ZEN3) is None, target  # int8 runs, and must be accurate


def test_a_recipe_on_a_cpu_without_its_isa_is_an_unsupported_case(monkeypatch):
    """What the suite and every self-test skip on (Models.subject raises UnsupportedCase from it)."""
    monkeypatch.setattr(isa, "cpu_flags", lambda: frozenset(ZEN3))
    case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT).on(Target.OPENVINO_BF16)
    reason = recipes.recipe_for(Target.OPENVINO_BF16).unsupported(case)
    assert reason is not None and reason.startswith("openvino-bf16 skipped: this CPU has none of avx512_bf16")
    assert recipes.recipe_for(Target.INT8_DYNAMIC).unsupported(case.on(Target.INT8_DYNAMIC)) is None
