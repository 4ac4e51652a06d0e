import pytest
import torch

from conformance import variants
from conformance.clipcompat import clip


def test_registry_holds_the_nine_official_variants():
    assert variants.official_names() == [
        "RN50",
        "RN101",
        "RN50x4",
        "RN50x16",
        "RN50x64",
        "ViT-B/32",
        "ViT-B/16",
        "ViT-L/14",
        "ViT-L/14@336px",
    ]
    assert all(len(v.sha256 or "") == 64 for v in variants.OFFICIAL)


def test_all_expands_to_the_nine_without_tiny_ones():
    names = [v.name for v in variants.resolve(["all", "ViT-B/32"])]
    assert names == variants.official_names()


def test_unknown_variant_names_the_valid_ones():
    with pytest.raises(variants.UnknownVariantError, match=r"valid names: RN50, RN101.*ViT-L/14@336px"):
        variants.get("Foo")


@pytest.mark.parametrize("variant", variants.OFFICIAL, ids=lambda v: v.slug)
def test_architecture_reproduces_published_parameter_counts(variant):
    with torch.device("meta"):
        model = clip.model.CLIP(**variant.clip_hyperparameters())
    image = sum(p.numel() for p in model.visual.parameters()) / 1e6
    text = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("visual.")) / 1e6
    text -= model.logit_scale.numel() / 1e6  # counted with neither tower
    assert round(image, 2) == variant.image_params_m
    assert round(text, 2) == variant.text_params_m


def test_projection_shape_follows_the_variant():
    assert variants.get("ViT-B/32").projection_shape == (512, 512)
    assert variants.get("RN50").projection_shape == (512, 1024)
