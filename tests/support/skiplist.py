"""CI's allow-list of self-test skips. With $CLIP_CONFORMANCE_SKIPS_ALLOWED naming a TOML file (`.ci/run` sets it
to tests/support/skips.toml), a self-test that skips for a reason no entry of the file names fails the run, at its end,
with the test and its reason. Without the variable a skip stays a skip: a laptop without Chromium or the RKNN
toolchain still runs the rest. `.ci/run` installs both, so there their skip means an install broke, and must fail.

tests/conftest.py turns it on for `pytest tests`; `-p tests.support.skiplist` loads it into any other run."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV = "CLIP_CONFORMANCE_SKIPS_ALLOWED"
NAME = "clip-conformance-skip-allow-list"


MIN_REASON = 24  # characters: a reason short enough to match anything ("the", "not") would allow any skip


@dataclass(frozen=True)
class Allowed:
    reason: str  # a substring of the skip's reason
    why: str  # why CI cannot run that self-test on some machine it may have
    # The CPU flags (as /proc/cpuinfo spells them) whose presence makes the skip wrong: on a CPU with any of them the
    # self-test must run, so a skip there means the suite misread its CPU, and fails CI. Read here, from
    # /proc/cpuinfo itself, not through the suite's own detection, which is what such a skip would hide.
    unless_cpu_has: tuple[str, ...] = ()

    def allows(self, reason: str, flags: frozenset[str]) -> bool:
        return self.reason in reason and not flags & set(self.unless_cpu_has)


def load(path: Path) -> list[Allowed]:
    with path.open("rb") as file:
        rows = tomllib.load(file).get("allow", [])
    allowed = [Allowed(str(r["reason"]), str(r["why"]), tuple(r.get("unless_cpu_has", ()))) for r in rows]
    if not all(len(a.reason.strip()) >= MIN_REASON and a.why.strip() for a in allowed):
        raise pytest.UsageError(
            f"{path}: every [[allow]] entry needs a reason to match (at least {MIN_REASON} characters) and a why"
        )
    return allowed


def host_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


class SkipGate:
    """Collects every skip the run reports (the controller sees its workers' too) and judges them at the end."""

    def __init__(self, allowed: list[Allowed], source: Path, flags: frozenset[str] | None = None) -> None:
        self.allowed, self.source = allowed, source
        self.flags = host_flags() if flags is None else flags
        self.skips: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A whole module skipped as it is collected (`pytest.importorskip` at its top: a missing extra)."""
        if report.skipped:
            self._record(report)

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        self.skips.append((report.nodeid, reason.removeprefix("Skipped: ")))

    def unlisted(self) -> list[tuple[str, str]]:
        return [(node, why) for node, why in self.skips if not any(a.allows(why, self.flags) for a in self.allowed)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):  # a worker sees only its share; the controller decides
            return
        unlisted = self.unlisted()
        if not unlisted:
            return
        reporter = session.config.pluginmanager.getplugin("terminalreporter")
        lines = [f"[skips] {len(unlisted)} skip(s) not on {self.source} ({ENV}): each is a self-test CI never ran"]
        lines += [f"[skips]   {node}: {why}" for node, why in unlisted]
        for line in lines:
            if reporter is not None:
                reporter.write_line(line, red=True)
            else:
                print(line)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):  # keep 2, 3 and 4
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get(ENV)
    if path and not config.pluginmanager.has_plugin(NAME):
        config.pluginmanager.register(SkipGate(load(Path(path)), Path(path)), NAME)
