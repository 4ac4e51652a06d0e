"""Building good and deliberately broken tiny artifacts for the self-tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from conformance import weights
from conformance.artifact import Artifact
from conformance.case import Case, Exporter, Target
from conformance.encoders import EncoderKind
from conformance.export import ExportCache, ExportSpec, export_to
from conformance.variants import Variant, get
from conformance.weights import Provenance

TINY_VIT = get("tiny-vit")
TINY_RN = get("tiny-rn")


def synthetic(variant: Variant, seed: int = 0) -> weights.LoadedModel:
    return weights.LoadedModel(weights.build_synthetic(variant, seed), Provenance.synthetic(seed))


def good(
    cache: ExportCache, variant: Variant, encoder: EncoderKind | str, exporter: Exporter = Exporter.TORCHSCRIPT
) -> Artifact:
    loaded = synthetic(variant)
    return cache.get(ExportSpec(Case(variant, EncoderKind(encoder), exporter)), loaded.model, loaded.provenance)


def skip_unless_runnable(case: Case) -> None:
    """A compile target this CPU cannot run as it claims (conformance/isa.toml: openvino-bf16 without bf16), or
    whose toolchain is missing, skips with the recipe's own reason, as the suite does: no self-test may assume
    the developer's CPU."""
    from conformance.compile.recipes import recipe_for

    reason = recipe_for(case.target).unsupported(case) if case.target.compiled else None
    if reason:
        pytest.skip(reason)


def compile_with(
    cache: ExportCache, root: Path, target: Target, encoder: EncoderKind = EncoderKind.IMAGE, **settings: Any
) -> Artifact:
    """tiny-vit's good export compiled for `target` into root/<target>-<encoder>, by the target's recipe with
    `settings` changed (an older or deliberately worse recipe)."""
    from conformance.compile.build import compile_to
    from conformance.compile.recipes import recipe_for

    source = good(cache, TINY_VIT, encoder)
    recipe = recipe_for(target)
    folder = root / f"{target}-{encoder}"
    folder.mkdir(parents=True)
    return compile_to(folder, source.case.on(target), source, replace(recipe, settings={**recipe.settings, **settings}))


def copy_artifact(artifact: Artifact, folder: Path) -> Artifact:
    """A private copy to break, leaving the shared cached one intact."""
    shutil.copytree(artifact.folder, folder)
    return Artifact.load(folder / "artifact.json")


def export_model(
    model: torch.nn.Module,
    variant: Variant,
    encoder: EncoderKind | str,
    folder: Path,
    exporter: Exporter = Exporter.TORCHSCRIPT,
) -> Artifact:
    """Export an arbitrary (possibly broken) model through the suite's own exporter path."""
    folder.mkdir(parents=True, exist_ok=True)
    return export_to(folder, ExportSpec(Case(variant, EncoderKind(encoder), exporter)), model, Provenance.synthetic(0))


def export_seed_recipe(
    model: torch.nn.Module, variant: Variant, folder: Path, exporter: Exporter, batch: int = 1, dynamic: bool = True
) -> Artifact:
    """The seed's image export as written: a batch-1 example and `dynamic_axes` (or none at all)."""
    from conformance.encoders import wrap
    from conformance.export import _quiet_export
    from conformance.inputs import example_batch

    folder.mkdir(parents=True, exist_ok=True)
    axes = {"image": {0: "batch_size"}, "output": {0: "batch_size"}} if dynamic else None
    with _quiet_export():
        torch.onnx.export(
            wrap(model, EncoderKind.IMAGE),
            (example_batch(variant, EncoderKind.IMAGE, batch),),
            str(folder / "model.onnx"),
            dynamo=exporter == Exporter.DYNAMO,
            input_names=["image"],
            output_names=["output"],
            dynamic_axes=axes,
        )
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    return Artifact(
        folder=folder,
        case=Case(variant, EncoderKind.IMAGE, exporter, opset=20),
        provenance=Provenance.synthetic(0),
        token_dtype=None,
        projection_file=None,
        files=files,
    )


class VisualWrapper(torch.nn.Module):
    """Base of the deliberately broken image towers: wraps `model.visual`, whose output `forward` alters."""

    def __init__(self, visual: torch.nn.Module) -> None:
        super().__init__()
        self.visual = visual

    @property
    def conv1(self) -> Any:  # CLIP.dtype reads visual.conv1
        return self.visual.conv1


class OddBatchShift(VisualWrapper):
    """An image tower that is right at batch 1 and at even batch sizes, and off by 0.05 at odd sizes > 1:
    a bug only values at those sizes can show, since every shape is right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual(x)
        batch = x.new_ones(x.shape[0]).sum()
        odd = torch.remainder(batch, 2.0) * (batch > 1.5).to(out.dtype)
        return out + 0.05 * odd


def pytest_run(repo_root: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """A run as the user types it, but its reports go to a temp folder: reports/ holds the user's last run."""
    if not any(arg.startswith("--report-dir") for arg in args):
        args = (*args, f"--report-dir={tempfile.mkdtemp(prefix='selftest-reports-')}")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def outcomes(run: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """A subprocess run's summary line, parsed by pytest itself ({"passed": 3, "skipped": 1}), for asserting on
    counts rather than on substrings of its output. Warnings are left out: they are not outcomes, and a library's
    deprecation on another machine must not fail a self-test about skips or passes."""
    counts = pytest.RunResult.parse_summary_nouns(run.stdout.splitlines())
    return {noun: n for noun, n in counts.items() if noun not in ("warnings", "warning")}


def export_bundle(out: Path, *options: str) -> int:
    """`python -m conformance export --variant tiny-vit --out OUT [options]`, in process."""
    from conformance import cli

    return cli.main(["export", "--variant", "tiny-vit", "--out", str(out), *options])


def reference_models(weights_path: Path | None) -> Any:
    """The session's model store as `--artifacts` runs use it, for `reference_for` (which never exports)."""
    from fixtures.models import Models

    return Models(cache=None, weights_path=weights_path, seed=0, device="cpu", progress=lambda m: None)  # type: ignore[arg-type]


def vendored_blobs(folder: Path) -> dict[str, tuple[str, str]]:
    """Each file a VENDORED.md table lists: (the git blob id it records, the blob id of the file as it is here)."""
    import hashlib
    import re

    table = re.findall(r"\| `([^`]+)` \| `([0-9a-f]{40})` \|", (folder / "VENDORED.md").read_text())
    found = {}
    for name, blob in table:
        data = (folder / name).read_bytes()
        found[name] = (blob, hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
    return found
