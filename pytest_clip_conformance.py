"""The suite's installed pytest entry point (`pytest11` in pyproject.toml), under a name no other distribution uses.

It registers the suite's options (fixtures/options.py) early enough for pytest to parse them, but only when pytest
runs inside the suite's checkout, the folder this module lives in. Anywhere else it does nothing at all: another
project in the same environment never sees the suite's options (`--device`, `--seed`, ... would clash with its
own), and keeps its own `fixtures` package (testing-cabal's, which testtools and stestr pull in). The suite's
`fixtures/` is not installed under that generic name: inside the checkout this module puts the checkout first on
sys.path and imports it from there (tests/test_installed_names.py runs both sides with testing-cabal's installed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SUITE_ROOT = Path(__file__).resolve().parent
OPTIONS_PLUGIN = "fixtures.options"


def inside_the_suite(folder: Path) -> bool:
    folder = folder.resolve()
    return folder == SUITE_ROOT or SUITE_ROOT in folder.parents


def _ours(module: object) -> bool:
    path = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), None)
    return path is not None and SUITE_ROOT in Path(path).resolve().parents


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not inside_the_suite(Path.cwd()) or not (SUITE_ROOT / "fixtures" / "options.py").is_file():
        return
    if sys.path[:1] != [str(SUITE_ROOT)]:
        sys.path.insert(0, str(SUITE_ROOT))
    loaded = sys.modules.get("fixtures")
    if loaded is not None and not _ours(loaded):
        raise pytest.UsageError(
            f"a package named 'fixtures' ({getattr(loaded, '__file__', loaded)}) was imported before the suite's "
            f"plugin: the suite's own fixtures/ ({SUITE_ROOT / 'fixtures'}) cannot load. Run without the plugin that "
            "imports it (-p no:NAME)."
        )
    # Registered under its module name, so the suite's conftest (`pytest_plugins`) finds it loaded already.
    pluginmanager.import_plugin(OPTIONS_PLUGIN)
