import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import inputs
from conformance.case import Case, Exporter
from conformance.checks.projection import (
    check_projection_file,
    check_projection_roundtrip,
    check_split_matches_full,
    check_token_dtype,
)
from conformance.encoders import EncoderKind, project_text, projection_filename, text_projection
from conformance.runtime import InputContractError, run_onnx
from conformance.tolerances import tolerance
from tests.support.helpers import TINY_RN, TINY_VIT, copy_artifact, good, synthetic

PROJ = tolerance("projection_roundtrip", {"variant": "tiny-vit", "encoder": "text-split", "exporter": "torchscript"})
SPLIT_FULL = tolerance("split_matches_full", {"variant": "tiny-vit", "encoder": "text-full", "exporter": "torchscript"})


def test_projection_file_is_named_and_shaped_by_the_variant():
    assert projection_filename(TINY_VIT) == "text_projection_64_96.npy"
    from conformance.variants import get

    assert projection_filename(get("RN50")) == "text_projection_512_1024.npy"


@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN], ids=lambda v: v.name)
def test_good_projection_passes(tiny_cache, variant):
    artifact = good(tiny_cache, variant, EncoderKind.TEXT_SPLIT)
    result = check_projection_file(artifact, synthetic(variant).model)
    assert result.passed, result.message
    assert result.figures["shape"] == list(variant.projection_shape)


@pytest.mark.parametrize("case", sorted(inputs.EDGE_TEXTS))
def test_roundtrip_reproduces_encode_text_on_edge_cases(tiny_cache, case):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT, Exporter.DYNAMO)
    result = check_projection_roundtrip(artifact, synthetic(TINY_VIT).model, inputs.EDGE_TEXTS[case], PROJ)
    assert result.passed, result.message


def test_full_context_text_puts_eot_last(tiny_cache):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT)
    texts = inputs.EDGE_TEXTS["full-context"]
    result = check_projection_roundtrip(artifact, synthetic(TINY_VIT).model, texts, PROJ)
    assert result.figures["eot_positions"] == [TINY_VIT.context_length - 1]


def _replace_projection(artifact, array: np.ndarray) -> None:
    np.save(artifact.projection_path, array)


@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN], ids=lambda v: v.name)
def test_transposed_projection_fails(tiny_cache, tmp_path, variant):
    """tiny-rn's projection is square (64x64), as ViT-B/32's is: only the values give it away."""
    model = synthetic(variant).model
    artifact = copy_artifact(good(tiny_cache, variant, EncoderKind.TEXT_SPLIT), tmp_path / "a")
    _replace_projection(artifact, text_projection(model).T.copy())
    result = check_projection_file(artifact, model)
    assert not result.passed
    expected = "differs from model.text_projection" if variant is TINY_RN else "has shape (96, 64), expected (64, 96)"
    assert expected in result.message
    assert not check_projection_roundtrip(artifact, model, inputs.prompts(3), PROJ).passed


def test_projection_from_another_seed_fails(tiny_cache, tmp_path):
    model = synthetic(TINY_VIT).model
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT), tmp_path / "a")
    _replace_projection(artifact, text_projection(synthetic(TINY_VIT, seed=1).model))
    assert "differs from model.text_projection" in check_projection_file(artifact, model).message
    assert not check_projection_roundtrip(artifact, model, inputs.prompts(3), PROJ).passed
    full = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_FULL)
    assert not check_split_matches_full(full, artifact, SPLIT_FULL).passed


def test_missing_projection_file_fails_clearly(tiny_cache, tmp_path):
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT), tmp_path / "a")
    assert artifact.projection_path is not None
    artifact.projection_path.unlink()
    result = check_projection_file(artifact, synthetic(TINY_VIT).model)
    assert not result.passed and "text_projection_64_96.npy" in result.message


def test_projection_of_wrong_dtype_fails(tiny_cache, tmp_path):
    model = synthetic(TINY_VIT).model
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT), tmp_path / "a")
    _replace_projection(artifact, text_projection(model).astype(np.float16))
    assert "has dtype float16, the model has float32" in check_projection_file(artifact, model).message


def test_split_plus_helper_equals_full(tiny_cache):
    for exporter in Exporter:
        full, split = (good(tiny_cache, TINY_VIT, kind, exporter) for kind in ("text-full", "text-split"))
        result = check_split_matches_full(full, split, SPLIT_FULL)
        assert result.passed, result.message


def test_run_onnx_casts_token_ids_losslessly_and_refuses_floats(tiny_cache):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT)
    tokens = inputs.tokens(inputs.prompts(2), TINY_VIT)
    np.testing.assert_array_equal(run_onnx(artifact, tokens.astype(np.int64)), run_onnx(artifact, tokens))
    with pytest.raises(InputContractError, match="input 'text' expects int32 but got float32"):
        run_onnx(artifact, np.zeros((1, 77), dtype=np.float32))


def test_token_dtype_check_catches_a_wrong_record(tiny_cache, tmp_path):
    artifact = copy_artifact(good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT), tmp_path / "a")
    artifact.token_dtype = "int64"
    result = check_token_dtype(artifact, "int32")
    assert not result.passed and "graph takes int32 tokens but the artifact records int64" in result.message


def test_project_text_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="does not match projection"):
        project_text(np.zeros((1, 77, 64)), np.zeros((1, 77), np.int32), np.zeros((96, 64)))


@settings(max_examples=10, deadline=None, derandomize=True)
@given(texts=st.lists(inputs.text_strategy(), min_size=1, max_size=3))
def test_roundtrip_holds_for_drawn_texts(tiny_cache, texts):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT)
    result = check_projection_roundtrip(artifact, synthetic(TINY_VIT).model, texts, PROJ)
    assert result.passed, result.message


def test_graph_declaring_int64_tokens_fails_the_int32_contract(tmp_path):
    """`run_onnx` casts, so the old int32-vs-int64 comparison fed one array twice: the check must feed raw."""
    from conformance.export import ExportSpec, export_to
    from conformance.weights import Provenance

    folder = tmp_path / "int64"
    folder.mkdir()
    spec = ExportSpec(Case(TINY_VIT, EncoderKind.TEXT_SPLIT, Exporter.TORCHSCRIPT), token_dtype="int64")
    artifact = export_to(folder, spec, synthetic(TINY_VIT).model, Provenance.synthetic(0))
    result = check_token_dtype(artifact, "int32")
    assert not result.passed and "int64" in result.message
    assert check_token_dtype(artifact, "int64").passed


def test_default_export_takes_int32_tokens_raw(tiny_cache):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT)
    result = check_token_dtype(artifact, "int32")
    assert result.passed, result.message
    assert result.figures["fed_dtype"] == "int32"


def test_eot_edge_texts_have_two_eots_and_exact_lengths(tiny_cache):
    from conformance.tokenizer import EOT, SOT

    tokens = inputs.tokens(inputs.EDGE_TEXTS["eot-in-text"], TINY_VIT)
    assert all((row == EOT).sum() >= 2 for row in tokens)
    lengths = {
        name: [int((row != 0).sum()) for row in inputs.tokens(inputs.EDGE_TEXTS[name], TINY_VIT)]
        for name in ("76-tokens", "77-tokens", "over-context")
    }
    assert lengths == {"76-tokens": [76], "77-tokens": [77], "over-context": [77]}
    assert tokens[0, 0] == SOT


def _last_eot_wins(artifact, folder):
    """The text-full graph with ArgMax picking the *last* maximum: right for every text with one EOT."""
    from tests.support.graph_edits import edit_graph, pool_last_argmax

    return edit_graph(artifact, folder, pool_last_argmax)


def test_last_eot_wins_graph_fails_split_vs_full(tiny_cache, tmp_path):
    split = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT)
    broken = _last_eot_wins(good(tiny_cache, TINY_VIT, EncoderKind.TEXT_FULL), tmp_path / "b")
    result = check_split_matches_full(broken, split, SPLIT_FULL)
    assert not result.passed, result.figures


@pytest.mark.parametrize("case", ["eot-in-text", "76-tokens", "77-tokens", "over-context"])
def test_eot_edge_texts_agree_between_helper_full_graph_and_torch(tiny_cache, case):
    model = synthetic(TINY_VIT).model
    split = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT)
    texts = inputs.EDGE_TEXTS[case]
    assert check_projection_roundtrip(split, model, texts, PROJ).passed
