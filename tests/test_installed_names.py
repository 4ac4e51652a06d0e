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
