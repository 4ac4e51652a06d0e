from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.export import ExportCache

REPO = Path(__file__).resolve().parent.parent


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
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny-vit exported by Optimum, by transformers.js's script, by Rockchip's and Sophgo's zoo procedures and by
    immich's (the producers extra), once per session."""
    pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
    pytest.importorskip("open_clip", reason="the producers extra: pip install -e '.[producers]'")
    pytest.importorskip("onnxslim", reason="the producers extra: pip install -e '.[producers]'")
    from tests.helpers import TINY_VIT, synthetic
    from tests.immich import immich_export
    from tests.optimum import optimum_folder
    from tests.producers import rknnzoo_folder, sophgo_folder
    from tests.transformersjs import convert_both

    root = tmp_path_factory.mktemp("producers")
    model = synthetic(TINY_VIT).model
    optimum = optimum_folder(model, TINY_VIT, root / "optimum", root / "work")
    checkpoint = root / "work" / "hf-checkpoint"  # what optimum exported from
    # transformers.js's script with --split_modalities, and without it: the combined onnx/model*.onnx
    convert_both(checkpoint, root / "transformersjs", root / "transformersjs-combined")
    return {
        "optimum": optimum,
        "transformersjs": root / "transformersjs",
        "transformersjs-combined": root / "transformersjs-combined",
        "rknnzoo": rknnzoo_folder(optimum, root / "rknnzoo"),
        "sophgo": sophgo_folder(model, TINY_VIT, root / "sophgo"),
        "immich": immich_export(model, TINY_VIT, root / "immich"),  # its exporter at 9958ac9
        "hf-checkpoint": root / "work" / "hf-checkpoint",  # what optimum and transformers.js exported from
    }
