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


@dataclass(frozen=True)
class Allowed:
    reason: str  # a substring of the skip's reason
    why: str  # why CI cannot run that self-test on some machine it may have


def load(path: Path) -> list[Allowed]:
    with path.open("rb") as file:
        rows = tomllib.load(file).get("allow", [])
    allowed = [Allowed(str(row["reason"]), str(row["why"])) for row in rows]
    if not all(a.reason.strip() and a.why.strip() for a in allowed):
        raise pytest.UsageError(f"{path}: every [[allow]] entry needs a reason to match and a why")
    return allowed


class SkipGate:
    """Collects every skip the run reports (the controller sees its workers' too) and judges them at the end."""

    def __init__(self, allowed: list[Allowed], source: Path) -> None:
        self.allowed, self.source = allowed, source
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
        return [(node, why) for node, why in self.skips if not any(a.reason in why for a in self.allowed)]

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
