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

    def test_wrong_here():
        pytest.skip("a skip only a CPU without an FPU may take")

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


# The sample's allow-list: the first entry matches test_listed's reason; the second matches test_wrong_here's, but
# only on a CPU without `fpu`, which every x86 CPU lists: here that skip means the suite misread its CPU.
ALLOW = """
[[allow]]
reason = "this CPU has none of avx512_bf16, amx_bf16"
why = "the sample's listed reason"

[[allow]]
reason = "a skip only a CPU without an FPU may take"
why = "the sample's reason for another kind of machine"
unless_cpu_has = ["fpu"]
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_skip_not_on_the_list_fails_the_run_naming_it_and_a_listed_one_does_not(repo_root, tmp_path, workers):
    allow = tmp_path / "allow.toml"
    allow.write_text(ALLOW)
    folder = tmp_path / "project"
    folder.mkdir()
    run = _run(repo_root, folder, *workers, allow=allow)
    assert run.returncode == 1, run.stdout[-2000:]
    unlisted = run.stdout.split("not on", 1)[1]
    assert "3 skip(s) not on" in run.stdout and "test_unlisted: the rknn toolchain is not installed" in unlisted
    assert "test_extra.py: could not import 'no_such_extra_here'" in unlisted  # a module skipped as collected
    assert "test_wrong_here: a skip only a CPU without an FPU may take" in unlisted  # listed, but not for this CPU
    assert "test_listed" not in unlisted
    assert outcomes(run) == {"passed": 1, "skipped": 4, "xfailed": 1}
    wanted = "listed and not unlisted or expected or passes"
    listed = _run(repo_root, folder, *workers, "-k", wanted, allow=allow, only="test_sample.py")
    assert listed.returncode == 0, listed.stdout[-2000:]
    deselected = {} if workers else {"deselected": 2}  # xdist's controller does not count what workers deselect
    assert outcomes(listed) == {"passed": 1, "skipped": 1, "xfailed": 1, **deselected}


def test_without_the_variable_a_skip_stays_a_skip(repo_root, tmp_path):
    run = _run(repo_root, tmp_path)
    assert run.returncode == 0 and outcomes(run) == {"passed": 1, "skipped": 4, "xfailed": 1}, run.stdout[-2000:]


def test_every_entry_says_why_and_no_install_skip_is_allowed(tmp_path):
    entries = skiplist.load(Path(__file__).parent / "support" / "skips.toml")
    assert entries and all(len(e.why) > 40 for e in entries)
    gate = skiplist.SkipGate(entries, Path("skips.toml"), flags=frozenset({"avx2"}))
    never = [  # what CI installs, as the self-tests word its absence: there such a skip means an install broke
        "the producers extra: pip install -e '.[producers]'",
        "Chromium is not installed here (CI installs Debian's chromium)",
        "rknn toolchain not installed: python -m conformance toolchain install rknn",
        "the rknn toolchain is not installed (python -m conformance toolchain install rknn; expected in /x)",
        "testing-cabal's wheels not fetched: CLIP_CONFORMANCE_WHEELS names no folder of its wheels",
        "qemu-user is not installed: apt-get install qemu-user",
    ]
    gate.skips = [(f"t{i}", reason) for i, reason in enumerate(never)]
    assert len(gate.unlisted()) == len(never)
    for bad_entry in ('reason = "anything"\nwhy = ""', 'reason = "the"\nwhy = "far too short a reason to match"'):
        bad = tmp_path / "bad.toml"
        bad.write_text(f"[[allow]]\n{bad_entry}\n")
        with pytest.raises(pytest.UsageError, match="needs a reason to match"):
            skiplist.load(bad)


def test_a_listed_skip_on_a_cpu_that_should_run_it_is_not_allowed():
    entries = skiplist.load(Path(__file__).parent / "support" / "skips.toml")
    bf16 = "openvino-bf16 skipped: this CPU has none of avx512_bf16, amx_bf16 (bf16: ...)"
    for flags, allowed in ((frozenset({"avx2"}), True), (frozenset({"avx2", "avx512_bf16"}), False)):
        gate = skiplist.SkipGate(entries, Path("skips.toml"), flags=flags)
        gate.skips = [("test_x", bf16)]
        assert (gate.unlisted() == []) is allowed
