"""The suite's inputs: distinct within a batch, varied in content, and the same item at every batch size."""

import numpy as np
import pytest

from conformance import inputs
from conformance.encoders import EncoderKind
from conformance.variants import OFFICIAL, get
from tests.support.helpers import TINY_RN, TINY_VIT


@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN, get("ViT-B/32")], ids=lambda v: v.name)
def test_token_rows_within_a_batch_are_all_distinct(variant):
    tokens = inputs.batch_for(variant, EncoderKind.TEXT_SPLIT, 64)
    assert len({row.tobytes() for row in tokens}) == 64


@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN], ids=lambda v: v.name)
def test_images_within_a_batch_differ_in_content(variant):
    images = inputs.batch_for(variant, EncoderKind.IMAGE, 16).reshape(16, -1).astype(np.float64)
    centred = images - images.mean(axis=1, keepdims=True)
    corr = np.corrcoef(centred)
    off_diagonal = corr[~np.eye(16, dtype=bool)]
    assert off_diagonal.max() < 0.9, "two images in the batch are near-identical"


def test_item_i_is_the_same_at_every_batch_size():
    small, large = (inputs.batch_for(TINY_VIT, EncoderKind.IMAGE, n) for n in (3, 7))
    np.testing.assert_array_equal(small, large[:3])


def test_every_encoder_runs_a_size_other_than_one_and_the_traced_size():
    for variant in OFFICIAL:
        for encoder in EncoderKind:
            sizes = inputs.batch_sizes(variant, encoder)
            assert any(s not in (1, 2) and s % 2 for s in sizes), (variant.name, encoder, sizes)


def test_every_graph_of_every_variant_sweeps_each_size_up_to_8_or_its_cost_cap():
    for variant in OFFICIAL:
        for encoder in EncoderKind:
            cap, sizes = inputs.max_batch(variant, encoder), inputs.batch_sizes(variant, encoder)
            top = inputs.swept_up_to(variant, encoder)
            assert top == max(3, min(8, cap)) and set(range(1, top + 1)) <= set(sizes), (variant.name, encoder)
            assert max(sizes) <= max(cap, 3), (variant.name, encoder, sizes)  # never past the cap by default
