"""`CheckResult`: what every check returns. Every figure a check measures goes in here; reports only render."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class CheckResult:
    check: str
    status: Status
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    reused_from: str | None = None  # when a passed verdict on the same inputs was checked (conformance/verdicts.py)

    @property
    def passed(self) -> bool:
        return self.status == Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data


def verdict(check: str, problems: list[str], figures: dict[str, Any], ok_message: str = "") -> CheckResult:
    """PASSED when `problems` is empty, else FAILED with every problem in the message."""
    if problems:
        return CheckResult(check, Status.FAILED, "; ".join(problems), figures)
    return CheckResult(check, Status.PASSED, ok_message, figures)


def failed(check: str, message: str, **figures: Any) -> CheckResult:
    return CheckResult(check, Status.FAILED, message, dict(figures))


def skipped(check: str, reason: str) -> CheckResult:
    return CheckResult(check, Status.SKIPPED, reason)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" for none): runtime and exporter errors run to pages."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def error_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"
