"""CI's skip allow-list (tests/support/skiplist.py, tests/support/skips.toml): a skip outside it fails the run; one
on it, or any skip where the list is not turned on, does not."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import skiplist
from tests.support.helpers import outcomes

TESTS = textwrap.dedent(
    """
    import pytest

    def test_listed():
        pytest.skip("this CPU has none of avx512_bf16, amx_bf16 (bf16: ...)")

    @pytest.mark.skipif(True, reason="the rknn toolchain is not installed")
    def test_unlisted():
        pass

    @pytest.mark.xfail(reason="an expected failure is not a skip", strict=True)
    def test_expected_failure():
        assert False

    def test_passes():
        pass
    """
)


def _run(repo_root, tmp_path, *keyword, allow=None, only=""):
    (tmp_path / "test_sample.py").write_text(TESTS)
    (tmp_path / "test_extra.py").write_text('import pytest\n\npytest.importorskip("no_such_extra_here")\n')
    env = {k: v for k, v in os.environ.items() if k != skiplist.ENV}
    if allow is not None:
        env[skiplist.ENV] = str(allow)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.support.skiplist",
            "-p",
            "no:cacheprovider",
            str(tmp_path / only),
            *keyword,
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_a_skip_not_on_the_list_fails_the_run_naming_it_and_a_listed_one_does_not(repo_root, tmp_path):
    allow = repo_root / "tests" / "support" / "skips.toml"
    run = _run(repo_root, tmp_path, allow=allow)
    assert run.returncode == 1, run.stdout[-2000:]
    assert "2 skip(s) not on" in run.stdout and "test_unlisted: the rknn toolchain is not installed" in run.stdout
    assert "test_extra.py: could not import 'no_such_extra_here'" in run.stdout  # a module skipped as collected
    assert "test_listed" not in run.stdout.split("not on", 1)[1]
    assert outcomes(run) == {"passed": 1, "skipped": 3, "xfailed": 1}
    wanted = "listed and not unlisted or expected or passes"
    listed = _run(repo_root, tmp_path, "-k", wanted, allow=allow, only="test_sample.py")
    assert listed.returncode == 0, listed.stdout[-2000:]
    assert outcomes(listed) == {"passed": 1, "skipped": 1, "xfailed": 1, "deselected": 1}


def test_without_the_variable_a_skip_stays_a_skip(repo_root, tmp_path):
    run = _run(repo_root, tmp_path)
    assert run.returncode == 0 and outcomes(run) == {"passed": 1, "skipped": 3, "xfailed": 1}, run.stdout[-2000:]


def test_every_entry_says_why(tmp_path):
    entries = skiplist.load(Path(__file__).parent / "support" / "skips.toml")
    assert entries and all(len(e.why) > 40 for e in entries)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[allow]]\nreason = "anything"\nwhy = ""\n')
    with pytest.raises(pytest.UsageError, match="needs a reason to match and a why"):
        skiplist.load(bad)
