import dataclasses

import pytest
import torch

from conformance import inputs
from conformance.case import Exporter
from conformance.checks.batch import check_dynamic_batch, check_repeatability, check_row_independence
from conformance.encoders import EncoderKind
from conformance.numerics import Tolerance
from conformance.registry import BY_NAME
from conformance.results import Status
from conformance.subject import Subject
from conformance.tolerances import tolerance
from tests.support.graph_edits import add_noise
from tests.support.helpers import TINY_VIT, VisualWrapper, export_model, export_seed_recipe, good, synthetic

ROWS = tolerance("dynamic_batch", {"variant": "tiny-vit", "encoder": "image", "exporter": "torchscript"})


def test_good_exports_run_at_every_batch_size_with_independent_rows(tiny_cache):
    for encoder in EncoderKind:
        artifact = good(tiny_cache, TINY_VIT, encoder, Exporter.DYNAMO)
        assert check_dynamic_batch(artifact, [1, 2, 7, 16], ROWS).passed
        assert check_row_independence(artifact, 7, ROWS).passed


def test_seed_recipe_under_dynamo_bakes_batch_one(tmp_path):
    """The seed's recipe: a batch-1 example. torch.export specialises dimensions of size 1, so the dynamo graph
    comes out with batch 1 fixed whatever `dynamic_axes` says."""
    artifact = export_seed_recipe(synthetic(TINY_VIT).model, TINY_VIT, tmp_path, Exporter.DYNAMO)
    result = check_dynamic_batch(artifact, [1, 2, 7], ROWS)
    assert not result.passed
    assert "batch 2 fails in onnxruntime" in result.message or "batch 2 gives output batch 1" in result.message
    assert result.figures["batch_sizes"] == [1, 2, 7]


class _BatchMixingVisual(VisualWrapper):
    """Row i leaks into row j, as a wrong reshape over the batch axis would do."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual(x)
        return out + 0.05 * out.mean(dim=0, keepdim=True)


def test_batch_mixing_model_fails_row_independence_and_dynamic_batch(tmp_path):
    model = synthetic(TINY_VIT).model
    model.visual = _BatchMixingVisual(model.visual)
    artifact = export_model(model, TINY_VIT, EncoderKind.IMAGE, tmp_path)
    mixed = check_dynamic_batch(artifact, [1, 2, 7], ROWS)  # every shape is right; the values are not
    assert not mixed.passed and "batch 2 vs batch 1" in mixed.message and "batch 7 vs batch 1" in mixed.message
    result = check_row_independence(artifact, 7, ROWS)
    assert not result.passed and "batch 7 vs batch 1" in result.message
    assert result.figures["max_abs_err"] > 1e-3


def test_row_independence_tolerance_is_not_vacuous(tiny_cache):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE)
    strict = Tolerance(atol=0.0, rtol=0.0, min_cosine=2.0, reason="impossible")
    assert not check_row_independence(artifact, 3, strict).passed


def test_values_wrong_only_at_odd_batch_sizes_fail_dynamic_batch(tmp_path):
    """Every shape is right and batch 1, 2 and 16 are right: only comparing values at size 7 shows it."""
    from tests.support.helpers import OddBatchShift

    model = synthetic(TINY_VIT).model
    model.visual = OddBatchShift(model.visual)
    artifact = export_model(model, TINY_VIT, EncoderKind.IMAGE, tmp_path)
    assert check_row_independence(artifact, 16, ROWS).passed  # the old single size misses it
    result = check_dynamic_batch(artifact, [1, 2, 7, 16], ROWS)
    assert not result.passed
    assert "batch 7" in result.message and "batch 16" not in result.message


class _RowSwap(VisualWrapper):
    """Swaps the first two rows of the batch: every shape is right, no row is mixed with another."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual(x)
        return torch.cat([out[1:2], out[0:1], out[2:]])


def test_swapped_rows_fail_at_every_batch_size_above_one(tmp_path):
    model = synthetic(TINY_VIT).model
    model.visual = _RowSwap(model.visual)
    artifact = export_model(model, TINY_VIT, EncoderKind.IMAGE, tmp_path)
    result = check_dynamic_batch(artifact, [1, 2, 3], ROWS)
    assert not result.passed
    assert all(f"batch {n}" in result.message for n in (2, 3)) and "rows [0, 1]" in result.message


def test_repeatability_passes_a_good_graph_and_fails_one_that_draws_noise(tiny_cache, tmp_path):
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE)
    assert check_repeatability(artifact).passed
    noisy = add_noise(artifact, tmp_path / "noisy", scale=1e-3)
    result = check_repeatability(noisy)
    assert not result.passed and "not deterministic" in result.message
    assert result.figures["differing_runs"] == 1


class _WrongAtOneSize(torch.nn.Module):
    """Right at every batch size but one, where every row is off by 0.05: a shape-specialised path (a kernel
    picked by M, an If on the batch axis, a subgraph cached for one size) gone wrong. Wraps the image tower, or
    ln_final, which both text graphs go through."""

    def __init__(self, inner: torch.nn.Module, size: int) -> None:
        super().__init__()
        self.visual, self.size = inner, size  # `visual`: CLIP.dtype reads visual.conv1 through it

    @property
    def conv1(self):
        return self.visual.conv1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual(x)
        batch = x.new_ones(x.shape[0]).sum()
        return out + 0.05 * (batch == self.size).to(out.dtype)


def _wrong_at(encoder: EncoderKind, size: int, folder):
    model = synthetic(TINY_VIT).model
    if encoder == EncoderKind.IMAGE:
        model.visual = _WrongAtOneSize(model.visual, size)
    else:
        model.ln_final = _WrongAtOneSize(model.ln_final, size)
    return export_model(model, TINY_VIT, encoder, folder)


@pytest.mark.parametrize("encoder", list(EncoderKind), ids=str)
def test_a_graph_wrong_at_exactly_one_size_in_3_to_8_fails_the_default_sweep(tmp_path, encoder):
    """Batch 5 is neither the old fixed sizes (1, 2, 7, 16) nor sure to be drawn: only running every size shows it."""
    artifact = _wrong_at(encoder, 5, tmp_path)
    assert check_dynamic_batch(artifact, [1, 2, 7, 16], ROWS).passed  # the hole the sweep closes
    sizes = inputs.batch_sizes(TINY_VIT, encoder)
    assert set(range(1, 9)) <= set(sizes)
    result = check_dynamic_batch(artifact, sizes, ROWS)
    assert not result.passed and "batch 5 vs batch 1" in result.message
    assert all(f"batch {n} " not in result.message for n in (4, 6, 8))


def test_a_graph_wrong_only_past_the_cost_cap_fails_with_batch_max_and_passes_without(tmp_path, monkeypatch):
    """A size servers use (33) past the tower's cost cap (made 16 here): the default run cannot see it, a release
    run with --batch-max 64 runs it, saying its cost first."""
    monkeypatch.setattr(inputs, "max_batch", lambda variant, encoder: 16)
    artifact = _wrong_at(EncoderKind.IMAGE, 33, tmp_path)
    check = BY_NAME["dynamic_batch"]
    default = Subject(artifact.case, synthetic(TINY_VIT).model, {EncoderKind.IMAGE: artifact})
    result = check.execute(default, None)
    assert result.passed and max(result.figures["batch_sizes"]) == 16, result.message
    said: list[str] = []
    release = dataclasses.replace(default, batch_max=64, progress=said.append)
    result = check.execute(release, None)
    assert result.figures["batch_sizes"] == [*range(1, 9), 16, 32, 33, 64]
    assert not result.passed and "batch 33 vs batch 1" in result.message and "batch 64 " not in result.message
    assert [line.split(": ")[1].split(",")[0] for line in said] == [f"dynamic_batch at batch {n}" for n in (32, 33, 64)]
    assert all("GFLOP" in line for line in said)


def test_batch_max_also_fills_the_sweep_the_cost_cap_cut_short():
    """ViT-L/14's image tower sweeps only 1 .. 3 by default (its cap is 2): a release run sweeps 1 .. 8 there too."""
    from conformance.variants import get

    vit_l = get("ViT-L/14")
    assert inputs.batch_sizes(vit_l, EncoderKind.IMAGE) == [1, 2, 3]
    assert inputs.batch_sizes(vit_l, EncoderKind.IMAGE, batch_max=64) == [*range(1, 9), 16, 32, 33, 64]
    assert inputs.batch_sizes(vit_l, EncoderKind.IMAGE, batch_max=5) == [1, 2, 3, 4, 5]


def test_release_sizes_stop_at_batch_max_and_include_it():
    assert inputs.release_sizes(40) == [16, 32, 33, 40]
    assert inputs.release_sizes(64) == [16, 32, 33, 64]
    assert inputs.release_sizes(8) == [8]


def test_the_drawn_sizes_start_above_the_sweep_and_skip_where_the_sweep_reaches_the_cap(tiny_cache, monkeypatch):
    span = inputs.drawn_batch_range(TINY_VIT, EncoderKind.IMAGE)
    assert span is not None and span[0] == 9
    monkeypatch.setattr(inputs, "max_batch", lambda variant, encoder: 6)
    assert inputs.drawn_batch_range(TINY_VIT, EncoderKind.IMAGE) is None
    artifact = good(tiny_cache, TINY_VIT, EncoderKind.IMAGE)
    subject = Subject(artifact.case, synthetic(TINY_VIT).model, {EncoderKind.IMAGE: artifact})
    result = BY_NAME["dynamic_batch_drawn"].execute(subject, None)
    assert result.status == Status.SKIPPED and "every size 1 .. 6" in result.message
