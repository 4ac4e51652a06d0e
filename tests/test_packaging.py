"""What a plain `pip install .` (not the README's editable one) ships: every package of conformance/ and every data
file it reads. An editable install reads the checkout, so no other self-test would notice one missing."""

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _sources() -> list[Path]:
    return [p for p in (REPO / "conformance").rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def test_every_package_is_listed():
    found = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "conformance").rglob("__init__.py")}
    assert found == set(SETUPTOOLS["packages"]), found ^ set(SETUPTOOLS["packages"])


def test_every_data_file_is_package_data():
    data = SETUPTOOLS["package-data"]
    missing = []
    for path in _sources():
        if path.suffix == ".py":
            continue
        package = path.parent
        while not (package / "__init__.py").exists():  # data in a plain folder (data/) belongs to the package above
            package = package.parent
        globs = data.get(".".join(package.relative_to(REPO).parts), [])
        relative = path.relative_to(package).as_posix()
        if not any(fnmatch.fnmatch(relative, glob) for glob in globs):
            missing.append(relative)
    assert not missing, missing
