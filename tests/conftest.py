from __future__ import annotations

from pathlib import Path

import pytest

from conformance.export import ExportCache


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> ExportCache:
    """Tiny-variant exports shared by the self-tests of one session."""
    return ExportCache(tmp_path_factory.mktemp("exports"), progress=lambda message: None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
