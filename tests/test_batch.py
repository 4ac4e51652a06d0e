import torch

from conformance.checks.batch import check_dynamic_batch, check_row_independence
from conformance.encoders import EncoderKind
from conformance.export import Exporter
from conformance.numerics import Tolerance
from conformance.tolerances import tolerance
from tests.helpers import TINY_VIT, export_model, export_seed_recipe, good, synthetic

ROWS = tolerance("row_independence", variant="tiny-vit", encoder="image", exporter="torchscript")


def test_good_exports_run_at_every_batch_size_with_independent_rows(tiny_cache):
    for encoder in EncoderKind:
        artifact = good(tiny_cache, TINY_VIT, encoder, Exporter.DYNAMO)
        assert check_dynamic_batch(artifact, TINY_VIT, [1, 2, 7, 16]).passed
        assert check_row_independence(artifact, TINY_VIT, 7, ROWS).passed


def test_seed_recipe_under_dynamo_bakes_batch_one(tmp_path):
    """NOTES.md: torch.export specialises the batch-1 example, so `dynamic_axes` is not enough."""
    artifact = export_seed_recipe(synthetic(TINY_VIT).model, TINY_VIT, tmp_path, Exporter.DYNAMO)
    result = check_dynamic_batch(artifact, TINY_VIT, [1, 2, 7])
    assert not result.passed
    assert "batch 2 fails in onnxruntime" in result.message or "batch 2 gives output batch 1" in result.message
    assert result.figures["batch_sizes"] == [1, 2, 7]


class _BatchMixingVisual(torch.nn.Module):
    """Row i leaks into row j, as a wrong reshape over the batch axis would do."""

    def __init__(self, visual: torch.nn.Module) -> None:
        super().__init__()
        self.visual = visual

    @property
    def conv1(self) -> torch.nn.Module:  # CLIP.dtype reads visual.conv1
        return self.visual.conv1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual(x)
        return out + 0.05 * out.mean(dim=0, keepdim=True)


def test_batch_mixing_model_fails_row_independence_only(tmp_path):
    model = synthetic(TINY_VIT).model
    model.visual = _BatchMixingVisual(model.visual)
    artifact = export_model(model, TINY_VIT, EncoderKind.IMAGE, tmp_path)
    assert check_dynamic_batch(artifact, TINY_VIT, [1, 2, 7]).passed  # shapes alone look fine
    result = check_row_independence(artifact, TINY_VIT, 7, ROWS)
    assert not result.passed and "batch 7 vs batch 1" in result.message
    assert result.figures["max_abs_err"] > 1e-3


def test_row_independence_tolerance_is_not_vacuous(tiny_cache):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE)
    strict = Tolerance(atol=0.0, rtol=0.0, min_cosine=2.0, reason="impossible")
    assert not check_row_independence(artifact, TINY_VIT, 3, strict).passed
