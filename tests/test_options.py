"""Path options after a space (`--weights /data/ViT-B-32.pt`), as a new user types them, and the hint given
when the suite's options are used outside its folder."""

import subprocess
import sys

from tests.support.helpers import outcomes, pytest_run


def test_a_path_after_a_space_that_would_move_the_rootdir_is_refused_with_the_fix(repo_root, tmp_path):
    """`--weights /data/ViT-B-32.pt`: pytest takes an existing path outside the checkout for a test path and
    settles its rootdir there, before any plugin loads. The run stops and says to write it with '='."""
    checkpoint = tmp_path / "ViT-B-32.pt"
    checkpoint.write_bytes(b"never read: the run stops first")
    run = pytest_run(repo_root, "--weights", str(checkpoint), "--collect-only", "-q")
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"Write the option with '=': --weights={checkpoint}" in run.stderr
    assert "unrecognized arguments" not in run.stderr and "Traceback" not in run.stderr
    report_dir = tmp_path / "reports"
    report_dir.mkdir()
    run = pytest_run(repo_root, "--report-dir", str(report_dir), "--collect-only", "-q")
    assert run.returncode == 4 and f"--report-dir={report_dir}" in run.stderr  # not 300 self-tests collected


def test_a_path_after_a_space_works_where_it_cannot_move_the_rootdir(repo_root, tmp_path):
    """A path that does not exist yet, or one inside the checkout, leaves the rootdir alone."""
    run = pytest_run(
        repo_root,
        "--report-dir",
        str(tmp_path / "new"),
        "--weights",
        "conformance/data/CLIP.png",
        "--collect-only",
        "-q",
        "conformance/test_checks.py::test_opset_validity",
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.count("test_opset_validity[") == 6


def test_the_equals_form_always_works(repo_root, tmp_path):
    checkpoint = tmp_path / "ViT-B-32.pt"
    checkpoint.write_bytes(b"not read by --collect-only")
    run = pytest_run(repo_root, f"--weights={checkpoint}", "--collect-only", "conformance/test_checks.py")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"rootdir: {repo_root}" in run.stdout and f"checkpoint {checkpoint}" in run.stdout


def test_outside_the_suite_the_installed_plugin_registers_nothing(tmp_path):
    """Another project in the same environment keeps its own options (a `--device` of its own), and the suite's
    options there are pytest's own "unrecognized arguments", not a crash."""
    (tmp_path / "conftest.py").write_text(
        'def pytest_addoption(parser):\n    parser.addoption("--device", default="x")\n'
    )
    (tmp_path / "test_other.py").write_text(
        'def test_other(request):\n    assert request.config.getoption("device") == "x"\n'
    )
    run = _pytest_in(tmp_path, "-q")
    assert run.returncode == 0 and outcomes(run) == {"passed": 1}, run.stdout[-2000:] + run.stderr[-2000:]
    assert not (tmp_path / "reports").exists()
    run = _pytest_in(tmp_path, "--weights=/data/ViT-B-32.pt")
    assert run.returncode == 4 and "unrecognized arguments: --weights" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_options_plugin_is_installed_by_the_readme_install():
    """`pip install -e .` registers it (pyproject's pytest11 entry point); without it the space form fails."""
    from importlib import metadata

    assert any(e.value == "pytest_clip_conformance" for e in metadata.entry_points(group="pytest11"))


def _pytest_in(folder, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in another project's folder (no suite options, so no --report-dir either)."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
