import dataclasses

from conformance.case import Exporter
from conformance.checks.contract import check_io_contract
from conformance.encoders import EncoderKind
from tests.support.helpers import TINY_RN, TINY_VIT, export_seed_recipe, good, synthetic


def test_good_exports_honour_the_contract(tiny_cache):
    for variant in (TINY_VIT, TINY_RN):
        for encoder in EncoderKind:
            for exporter in Exporter:
                result = check_io_contract(good(tiny_cache, variant, encoder, exporter))
                assert result.passed, result.message


def test_static_batch_export_fails_the_contract(tmp_path):
    artifact = export_seed_recipe(
        synthetic(TINY_VIT).model, TINY_VIT, tmp_path, Exporter.TORCHSCRIPT, batch=2, dynamic=False
    )
    result = check_io_contract(artifact)
    assert not result.passed
    assert "input 'image' has a fixed batch dimension 2" in result.message
    assert "output 'output' has a fixed batch dimension 2" in result.message


def test_artifact_checked_against_the_wrong_variant_fails(tiny_cache):
    vit = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE)
    mislabelled = dataclasses.replace(vit, case=dataclasses.replace(vit.case, variant=TINY_RN))
    result = check_io_contract(mislabelled)
    assert not result.passed
    assert "input 'image' has dims (3, 32, 32), expected (3, 64, 64)" in result.message
    assert "output 'output' has dims (96,), expected (64,)" in result.message
