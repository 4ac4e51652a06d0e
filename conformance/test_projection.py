import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance import inputs
from conformance.checks.projection import (
    check_projection_file,
    check_projection_roundtrip,
    check_split_matches_full,
    check_token_dtype,
)
from conformance.encoders import EncoderKind
from conformance.tolerances import tolerance

split_only = pytest.mark.encoders(EncoderKind.TEXT_SPLIT)


@split_only
def test_projection_file(subject, record_check):
    record_check(check_projection_file(subject.artifact, subject.model, subject.variant))


@split_only
@pytest.mark.parametrize("case", sorted(inputs.EDGE_TEXTS))
def test_projection_roundtrip(subject, record_check, case):
    tol = tolerance("projection", **subject.context)
    record_check(check_projection_roundtrip(subject.artifact, subject.model, subject.variant,
                                            inputs.EDGE_TEXTS[case], tol))


@split_only
@given(texts=st.lists(inputs.text_strategy(), min_size=1, max_size=4))
def test_projection_roundtrip_drawn(subject, record_check, texts):
    tol = tolerance("projection", **subject.context)
    record_check(check_projection_roundtrip(subject.artifact, subject.model, subject.variant, texts, tol))


@pytest.mark.encoders(EncoderKind.TEXT_SPLIT, EncoderKind.TEXT_FULL)
def test_token_dtype(subject, record_check, request):
    record_check(check_token_dtype(subject.artifact, subject.variant, request.config.getoption("token_dtype")))


def test_split_matches_full(pair, record_check):
    if EncoderKind.TEXT_FULL not in pair:
        pytest.skip("a release bundle ships image and text-split graphs only; no text-full to compare")
    full, split = pair[EncoderKind.TEXT_FULL], pair[EncoderKind.TEXT_SPLIT]
    tol = tolerance("split_vs_full", **full.context)
    record_check(check_split_matches_full(full.artifact, split.artifact, full.variant, tol))
