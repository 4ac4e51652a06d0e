"""The Case: one spelling of a test case, shared by test IDs, the export cache, results and baselines."""

from pathlib import Path

from conformance.case import Case, Exporter, Precision, Profile, Target
from conformance.encoders import EncoderKind
from conformance.variants import get
from tests.support.helpers import TINY_VIT


def test_id_key_and_record_spell_one_case():
    case = Case(get("ViT-B/32"), EncoderKind.TEXT_SPLIT, Exporter.DYNAMO, 20)
    assert case.id == "ViT-B-32-text-split-dynamo-op20"
    assert case.record() == {
        "case": case.id,
        "variant": "ViT-B/32",
        "encoder": "text-split",
        "exporter": "dynamo",
        "opset": 20,
        "precision": "fp32",
        "target": "onnx",
        "profile": "dynamic",
        "bundle": None,
    }
    assert case.key() == {k: v for k, v in case.record().items() if k not in ("case", "bundle")}
    assert Case.from_record(case.record()) == case


def test_a_pair_has_no_encoder_and_its_members_do():
    pair = Case(TINY_VIT, None, Exporter.TORCHSCRIPT, 20)
    assert pair.id == "tiny-vit-torchscript-op20"
    member = pair.member(EncoderKind.IMAGE)
    assert member.id == "tiny-vit-image-torchscript-op20" and member.group == pair.group == "tiny-vit"


def test_a_bundle_prefixes_the_id_and_groups_apart_but_keeps_the_graphs_identity(tmp_path):
    fresh = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO, 20)
    bundled = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO, 20, bundle=tmp_path / "v1")
    assert bundled.id == "v1-tiny-vit-image-dynamo-op20" and bundled.group == "v1:tiny-vit"
    assert bundled.key() == fresh.key()  # a baseline from a fresh run matches the bundle's graph
    assert Case.from_record(bundled.record(), bundle=Path(tmp_path / "v1")) == bundled


def test_axes_default_to_a_raw_dynamic_fp32_export_and_match_tolerance_context():
    case = Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO)
    assert case.axes == (Precision.FP32, Target.ONNX, Profile.DYNAMIC)
    assert case.context() == {
        "variant": "tiny-vit",
        "encoder": "image",
        "exporter": "dynamo",
        "precision": "fp32",
        "target": "onnx",
        "profile": "dynamic",
    }
