from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from conformance import atomic
from conformance.export import ExportCache
from tests.support import skiplist

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    skiplist.pytest_configure(config)  # CI's skip allow-list, where .ci/run turns it on


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> ExportCache:
    """Tiny-variant exports shared by the self-tests of one session."""
    return ExportCache(tmp_path_factory.mktemp("exports"), progress=lambda message: None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(autouse=True)
def leaves_the_users_reports_alone(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every self-test writes under tmp_path: the checkout's reports/ holds the user's last conformance run."""
    before = _snapshot(REPO / "reports")
    yield
    after = _snapshot(REPO / "reports")
    assert after == before, (
        f"{request.node.nodeid} wrote into {REPO / 'reports'}: {sorted(set(after.items()) ^ set(before.items()))}"
    )


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Path]:
    """tiny-vit exported by Optimum, by transformers.js's script, by Rockchip's and Sophgo's zoo procedures, by
    immich's and onnx_clip's exporters, and to clip-as-service's and fastembed's contracts (the producers extra),
    once per session: under xdist, once for all its workers (the first builds the folders, under a lock, in the
    session's own temporary root; the others wait and read them). Tests copy a folder before they change it."""
    pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
    pytest.importorskip("open_clip", reason="the producers extra: pip install -e '.[producers]'")
    pytest.importorskip("onnxslim", reason="the producers extra: pip install -e '.[producers]'")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if hasattr(request.config, "workerinput") else base  # xdist: <session root>/popen-gwN
    root, listing = shared / "producers-made", shared / "producers-made.json"
    with FileLock(f"{root}.lock"):
        if not listing.exists():
            shutil.rmtree(root, ignore_errors=True)  # a worker that died half-way left it: never trusted
            folders = _make(root)
            atomic.write_json(listing, {name: str(path) for name, path in folders.items()})
    return {name: Path(path) for name, path in json.loads(listing.read_text()).items()}


def _make(root: Path) -> dict[str, Path]:
    from tests.support.consumers import clip_as_service_folder, fastembed_folders
    from tests.support.helpers import TINY_VIT, synthetic
    from tests.support.immich import immich_export
    from tests.support.onnx_clip import onnx_clip_folder
    from tests.support.optimum import optimum_folder
    from tests.support.producer_folders import rknnzoo_folder, sophgo_folder
    from tests.support.transformersjs import convert_both

    model = synthetic(TINY_VIT).model
    optimum = optimum_folder(model, TINY_VIT, root / "optimum", root / "work")
    checkpoint = root / "work" / "hf-checkpoint"  # what optimum exported from
    # transformers.js's script with --split_modalities, and without it: the combined onnx/model*.onnx
    convert_both(checkpoint, root / "transformersjs", root / "transformersjs-combined")
    vision, text = fastembed_folders(checkpoint, root / "fastembed")  # two folders, one tower each
    return {
        "optimum": optimum,
        "transformersjs": root / "transformersjs",
        "transformersjs-combined": root / "transformersjs-combined",
        "rknnzoo": rknnzoo_folder(optimum, root / "rknnzoo"),
        "sophgo": sophgo_folder(model, TINY_VIT, root / "sophgo"),
        "immich": immich_export(model, TINY_VIT, root / "immich"),  # its exporter at 9958ac9
        "onnx-clip": onnx_clip_folder(model, TINY_VIT, root / "onnx_clip" / "data"),  # the package's data/
        "clip-as-service": clip_as_service_folder(model, TINY_VIT, root / "clip" / "ViT-B-32"),  # ~/.cache/clip/
        "fastembed-vision": vision,
        "fastembed-text": text,
        "hf-checkpoint": root / "work" / "hf-checkpoint",  # what optimum and transformers.js exported from
    }
