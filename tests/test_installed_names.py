"""No generic name installed (issue 27). With testing-cabal's `fixtures` (and testtools, which pulls it in) on the
path, the suite still runs in its checkout, by `python -m pytest` and by the `pytest` script, and another project's
test that uses `fixtures.Fixture` runs elsewhere, getting testing-cabal's package, not ours."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.helpers import outcomes

WHEELS_ENV = "CLIP_CONFORMANCE_WHEELS"  # a folder of the wheels tests/support/collision-requirements.txt pins (.ci/run)
REQUIREMENTS = Path(__file__).parent / "support" / "collision-requirements.txt"
SCRIPT = Path(sys.executable).with_name("pytest")

OTHER_PROJECT = textwrap.dedent(
    """
    import fixtures
    import testtools


    class Counter(fixtures.Fixture):
        def _setUp(self):
            self.count = 1
            self.addCleanup(setattr, self, "count", 0)


    class TestWithFixtures(testtools.TestCase):
        def test_uses_a_fixture(self):
            counter = self.useFixture(Counter())
            self.assertEqual(counter.count, 1)


    def test_it_is_testing_cabals_package():
        assert fixtures.__file__.startswith(__import__("os").environ["CABAL_SITE"]), fixtures.__file__
        assert hasattr(fixtures, "TempDir") and not hasattr(fixtures, "options")
    """
)


@pytest.fixture(scope="module")
def cabal_site(tmp_path_factory):
    wheels = os.environ.get(WHEELS_ENV)
    if not wheels:
        pytest.skip(
            f"testing-cabal's wheels not fetched: set {WHEELS_ENV} to a folder of the wheels {REQUIREMENTS.name} pins"
        )
    site = tmp_path_factory.mktemp("cabal-site")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels, "--target", str(site)]
    install = subprocess.run([*pip, "-r", str(REQUIREMENTS)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    assert (site / "fixtures" / "__init__.py").is_file() and (site / "testtools").is_dir()
    return site


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(site), "CABAL_SITE": str(site)}


@pytest.mark.parametrize("launcher", ["python -m pytest", "pytest script"])
def test_the_suite_runs_in_its_checkout_beside_testing_cabals_fixtures(repo_root, cabal_site, tmp_path, launcher):
    command = [sys.executable, "-m", "pytest"] if launcher == "python -m pytest" else [str(SCRIPT)]
    args = ["--variant=tiny-vit", "--exporter=torchscript", "--latency=none", "-k", "opset_validity and image"]
    args += [f"--export-cache={tmp_path / 'cache'}", f"--report-dir={tmp_path / 'reports'}", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*command, *args], cwd=repo_root, env=_env(cabal_site), capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert outcomes(run).get("passed", 0) >= 1 and "failed" not in outcomes(run)


@pytest.mark.parametrize("launcher", ["python -m pytest", "pytest script"])
def test_another_projects_test_gets_testing_cabals_fixtures(cabal_site, tmp_path, launcher):
    project = tmp_path / "other-project"
    project.mkdir()
    (project / "test_other.py").write_text(OTHER_PROJECT)
    command = [sys.executable, "-m", "pytest"] if launcher == "python -m pytest" else [str(SCRIPT)]
    run = subprocess.run(
        [*command, "-p", "no:cacheprovider", "-q"], cwd=project, env=_env(cabal_site), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert outcomes(run) == {"passed": 2}


def test_the_install_puts_no_fixtures_package_on_the_path(tmp_path):
    """Outside the checkout, with nothing added to the path, `fixtures` is nobody's: the distribution installs
    `conformance` and the entry point module, not a top-level `fixtures` (PYTHONPATH beats an editable finder,
    so the runs above alone would not show a `fixtures` put back into pyproject's packages)."""
    probe = (
        "import importlib.util as u; print(u.find_spec('fixtures'), u.find_spec('pytest_clip_conformance') is not None)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.stdout.split() == ["None", "True"], run.stdout + run.stderr[-2000:]


def test_a_foreign_fixtures_imported_before_the_entry_point_is_a_usage_error_naming_it(tmp_path, monkeypatch):
    """Where another plugin has imported testing-cabal's `fixtures` before the suite's options load, the run stops
    with the reason instead of a traceback from the wrong package."""
    import types

    import pytest_clip_conformance as entry

    foreign = types.ModuleType("fixtures")
    foreign.__file__ = str(tmp_path / "site" / "fixtures" / "__init__.py")
    monkeypatch.setitem(sys.modules, "fixtures", foreign)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the entry point puts the checkout first
    monkeypatch.chdir(entry.SUITE_ROOT)
    with pytest.raises(pytest.UsageError, match=r"a package named 'fixtures' \(.*site/fixtures/__init__.py\)"):
        entry.pytest_addoption(None, None)  # type: ignore[arg-type]
