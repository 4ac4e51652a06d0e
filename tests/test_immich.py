"""immich's folders as its exporters have shipped them, each made by that exporter's own code (vendored:
tests/vendor/immich/VENDORED.md): the interim exporter's `embedding` graphs (9958ac9, layout immich), ml-models'
`image_embedding`/`text_embedding` graphs (29208ae, immich-towers), and its visual graph taking the image's bytes,
uint8 NHWC, with the normalisation folded into the patch convolution (fuse_visual_input at 807c9b1,
immich-fused). All three have immich's file names; their graphs say which. The fused graph is fed the bytes and
judged against clip's model on the same bytes normalised as clip does: a fold of other constants, or pixels read
in another order, fails parity."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from conformance.encoders import EncoderKind
from conformance.folders import identify
from conformance.layouts import get
from conformance.registry import run_check
from tests.support.helpers import TINY_VIT, pytest_run, vendored_blobs

pytest.importorskip("open_clip", reason="the producers extra: pip install -e '.[producers]'")
pytest.importorskip("onnx_ir", reason="onnxscript's onnx_ir (a dependency of the dynamo exporter)")
from tests.support.immich import VENDOR, fuse_visual, immich_export
from tests.support.producer_folders import edit_file, layout_subjects


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    from tests.support.helpers import synthetic

    return immich_export(synthetic(TINY_VIT).model, TINY_VIT, tmp_path_factory.mktemp("immich") / "t", "29208ae")


def _fused(towers, path, mean=None, std=None):
    folder = shutil.copytree(towers, path)
    if mean is not None:  # another model's constants in the preprocess config the fold reads
        config = folder / "visual" / "preprocess_cfg.json"
        config.write_text(json.dumps(json.loads(config.read_text()) | {"mean": mean, "std": std}))
    fuse_visual(folder / "visual" / "model.onnx")
    return folder


@pytest.fixture(scope="module")
def fused(towers, tmp_path_factory):
    return _fused(towers, tmp_path_factory.mktemp("immich-fused") / "f")


def test_the_vendored_files_are_the_recorded_ones():
    blobs = vendored_blobs(VENDOR)
    assert len(blobs) == 7 and all(recorded == found for recorded, found in blobs.values()), blobs


def test_each_exporters_folder_is_told_apart_by_its_graphs(made, towers, fused):
    assert identify.detect(made["immich"]) == "immich"
    assert identify.detect(towers) == "immich-towers"
    assert identify.detect(fused) == "immich-fused"
    assert (fused / "visual" / "model.onnx.data").is_file()  # 807c9b1 saves the weights beside the graph


def test_a_text_tower_alone_is_one_verdict_whichever_pixels_its_image_graph_would_take(towers, tmp_path):
    """immich-towers and immich-fused read a text graph alike: a folder holding it alone is not ambiguous."""
    folder = shutil.copytree(towers, tmp_path / "t")
    shutil.rmtree(folder / "visual")
    assert identify.detect(folder) in ("immich-fused", "immich-towers")


def test_a_run_on_the_three_passes(made, towers, fused, repo_root, tmp_path):
    reports = tmp_path / "reports"
    folders = [f"--artifacts={f}" for f in (made["immich"], towers, fused)]
    run = pytest_run(
        repo_root, "--variant=tiny-vit", "--latency=none", "--synthetic-reference", *folders, f"--report-dir={reports}"
    )
    assert run.returncode == 0, run.stdout[-3000:]
    tests = json.loads((reports / "results.json").read_text())["tests"]
    outcome = {(t.get("layout"), t.get("encoder"), t["check"]): t["outcome"] for t in tests}
    for layout in ("immich", "immich-towers", "immich-fused"):
        for key in [
            (layout, "image", "parity"),
            (layout, "text-full", "parity"),
            (layout, None, "zero_shot_agreement"),
        ]:
            assert outcome[key] == "passed", key
        assert outcome[(layout, None, "host_preprocessing")] == "passed"


def test_the_fused_graph_is_fed_the_images_bytes_and_the_reference_the_same_bytes():
    binding = get("immich-fused").binding(EncoderKind.IMAGE)
    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32) * 2  # some off 0..255
    pixels = binding.feeds(images, 32)["image"]
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 32, 32, 3)
    seen = binding.fitted(images)  # what the reference is given: those bytes, normalised as clip does
    mean, std = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
    normalised = (pixels.transpose(0, 3, 1, 2) / 255 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(seen, normalised, atol=1e-6)
    assert np.abs(seen - images).max() > 0.1  # the clipped ones moved: the reference sees them clipped too


def test_a_fold_of_another_models_constants_fails_parity(towers, tmp_path):
    """ImageNet's mean and std folded in (a preprocess config of another model): a user cannot see it but in the
    embeddings."""
    folder = _fused(towers, tmp_path / "f", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    assert identify.detect(folder) == "immich-fused"
    graphs, _ = layout_subjects(folder, "immich-fused")
    result = run_check("parity", graphs["image"])
    assert not result.passed and result.status != "skipped", result.message
    assert run_check("io_contract", graphs["image"]).passed  # nothing in its interface says so


def test_pixels_read_in_another_order_fail_parity(fused, tmp_path):
    """Height and width swapped by the front Transpose (NWHC read as NHWC)."""
    folder = shutil.copytree(fused, tmp_path / "f")

    def swap(model) -> None:
        node = next(n for n in model.graph.node if n.op_type == "Transpose")
        node.attribute[0].CopyFrom(onnx.helper.make_attribute("perm", [0, 3, 2, 1]))

    edit_file(folder / "visual" / "model.onnx", swap)
    graphs, _ = layout_subjects(folder, "immich-fused")
    result = run_check("parity", graphs["image"])
    assert not result.passed and result.status != "skipped", result.message


def test_a_fused_graph_with_a_symbolic_batch_gets_the_batch_checks(tmp_path):
    """807c9b1 exports at a dynamic batch, which fuse_visual_input keeps."""
    from tests.support.helpers import synthetic

    folder = immich_export(synthetic(TINY_VIT).model, TINY_VIT, tmp_path / "f", "29208ae", fuse=True, dynamic=True)
    graphs, _ = layout_subjects(folder, "immich-fused")
    image = graphs["image"]
    assert image.case.static_batch is None
    for check in ("io_contract", "dynamic_batch", "row_independence", "parity"):
        assert run_check(check, image).passed, (check, run_check(check, image).message)
