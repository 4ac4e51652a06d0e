"""Known answers the reference cannot drift along with: golden outputs for the tiny variants, and openai's
published zero-shot probabilities for CLIP.png (official ViT-B/32 weights only)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from conformance import inputs
from conformance.case import Exporter
from conformance.checks.known_answer import check_known_answer, clip_png
from conformance.encoders import EncoderKind
from conformance.runtime import run_onnx, run_torch
from conformance.variants import get
from conformance.weights import Provenance
from tests.support.helpers import TINY_RN, TINY_VIT, good, synthetic

EXPECT = Path(__file__).resolve().parent / "expect"
REGENERATE = "CLIP_CONFORMANCE_REGEN_GOLDEN"
# Same seed, same scheme, another torch, onnxruntime or CPU: kernels may differ in the last bits. A change of
# weights init, tokenizer or preprocessing moves outputs by 1e-2 or more.
ATOL, RTOL = 2e-5, 1e-4


def golden_inputs(variant, encoder: EncoderKind) -> np.ndarray:
    if encoder == EncoderKind.IMAGE:
        return inputs.images(variant, 3, offset=500)
    return inputs.tokens([*inputs.prompts(3, offset=500), *inputs.EDGE_TEXTS["eot-in-text"]], variant)


def _expected(variant, folder: Path = EXPECT) -> dict[str, np.ndarray]:
    path = folder / f"{variant.name}.npz"
    if os.environ.get(REGENERATE):
        model = synthetic(variant).model
        outputs = {str(k): run_torch(model, k, golden_inputs(variant, k)) for k in EncoderKind}
        np.savez_compressed(path, **outputs)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        # Compared with itself it would pass: a run that regenerates can never be the run that passes.
        pytest.fail(f"wrote {path}, not compared: unset {REGENERATE}, run again, and commit the file saying why")
    if not path.exists():
        pytest.fail(f"{path} is missing: run `{REGENERATE}=1 python -m pytest tests/test_golden.py` and commit it")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _assert_golden(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    within = np.isfinite(actual).all() and np.allclose(actual, expected, atol=ATOL, rtol=RTOL)
    assert within, (
        f"{what} moved from its golden output by {np.abs(actual - expected).max():.3g} (atol {ATOL}, "
        f"rtol {RTOL}). If the change is intended (new weights scheme, tokenizer, torch), regenerate "
        f"with {REGENERATE}=1 python -m pytest tests/test_golden.py, and say why in the commit."
    )


@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN], ids=lambda v: v.name)
def test_torch_reference_matches_its_golden_outputs(variant):
    expected, model = _expected(variant), synthetic(variant).model
    for encoder in EncoderKind:
        _assert_golden(
            run_torch(model, encoder, golden_inputs(variant, encoder)),
            expected[str(encoder)],
            f"{variant.name} {encoder} torch reference",
        )


@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN], ids=lambda v: v.name)
def test_onnx_exports_match_the_golden_outputs(tiny_cache, variant):
    expected = _expected(variant)
    for encoder in EncoderKind:
        for exporter in Exporter:
            artifact = good(tiny_cache, variant, encoder, exporter)
            _assert_golden(
                run_onnx(artifact, golden_inputs(variant, encoder)),
                expected[str(encoder)],
                f"{variant.name} {encoder} {exporter} export",
            )


def test_golden_comparison_catches_a_changed_reference():
    expected = _expected(TINY_VIT)
    other = run_torch(synthetic(TINY_VIT, seed=1).model, EncoderKind.IMAGE, golden_inputs(TINY_VIT, EncoderKind.IMAGE))
    with pytest.raises(AssertionError, match=REGENERATE):
        _assert_golden(other, expected["image"], "seed 1")


def test_regenerating_writes_the_golden_file_and_fails_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv(REGENERATE, "1")
    with pytest.raises(pytest.fail.Exception, match=f"wrote {tmp_path / 'tiny-vit.npz'}, not compared: unset"):
        _expected(TINY_VIT, tmp_path)
    monkeypatch.delenv(REGENERATE)
    written, committed = _expected(TINY_VIT, tmp_path), _expected(TINY_VIT)
    assert written.keys() == committed.keys()  # what it wrote is the golden file, up to another CPU's last bits
    for key in written:
        _assert_golden(written[key], committed[key], f"regenerated {key}")


def test_known_answer_skips_without_the_official_weights(tiny_cache):
    vit = get("ViT-B/32")
    model = synthetic(TINY_VIT).model
    image, text = good(tiny_cache, TINY_VIT, "image"), good(tiny_cache, TINY_VIT, "text-split")
    as_vit = dataclasses.replace(image, case=dataclasses.replace(image.case, variant=vit))
    result = check_known_answer(as_vit, text, model)
    assert result.status == "skipped" and "needs the official ViT-B/32 checkpoint" in result.message
    assert "for ViT-B/32 only" in check_known_answer(image, text, model).message


def test_known_answer_can_fail(tmp_path):
    """Not vacuous: graphs that are not openai's weights, passed off as official, miss the published answer."""
    vit = get("ViT-B/32")
    from conformance.export import ExportCache

    assert clip_png().shape == (1, 3, 224, 224)
    cache = ExportCache(tmp_path, progress=lambda m: None)
    forged = Provenance(kind="official", sha256=vit.sha256, path="forged.pt")
    model = synthetic(vit).model
    image = good(cache, vit, "image")
    text = good(cache, vit, "text-split")
    result = check_known_answer(dataclasses.replace(image, provenance=forged), text, model)
    assert result.status == "failed" and "differ from openai's published" in result.message
