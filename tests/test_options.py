"""Path options after a space (`--weights /data/ViT-B-32.pt`), as a new user types them, and the hint given
when the suite's options are used outside its folder."""

import subprocess
import sys

from tests.helpers import pytest_run


def test_path_option_after_a_space_parses_in_the_suite_folder(repo_root, tmp_path):
    checkpoint = tmp_path / "ViT-B-32.pt"
    checkpoint.write_bytes(b"not read by --collect-only")
    run = pytest_run(
        repo_root,
        "--weights",
        str(checkpoint),
        "--export-cache",
        str(tmp_path / "c"),
        "--collect-only",
        "-q",
        "conformance/test_checks.py::test_opset_validity",
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "unrecognized arguments" not in run.stderr
    assert f"rootdir: {repo_root}" in run.stdout or "test_opset_validity[ViT-B-32-image" in run.stdout


def test_suite_options_outside_the_suite_folder_say_where_to_run(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--weights", "/data/ViT-B-32.pt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
    assert "--weights" in run.stderr and "Run pytest from the suite's checkout" in run.stderr
    assert "unrecognized arguments" not in run.stderr and "Traceback" not in run.stderr


def test_the_installed_options_plugin_is_inert_in_other_projects(tmp_path):
    """Without the suite's options, another project's tests run as if the plugin were not there."""
    (tmp_path / "test_other.py").write_text("def test_other():\n    assert True\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-2000:]
    assert not (tmp_path / "reports").exists()


def test_the_options_plugin_is_installed_by_the_readme_install():
    """`pip install -e .` registers it (pyproject's pytest11 entry point); without it the space form fails."""
    from importlib import metadata

    assert any(e.value == "fixtures.options" for e in metadata.entry_points(group="pytest11"))
