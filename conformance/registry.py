"""The check registry: one row per check, and the one name each check goes by.

A row's `name` is the test function (`test_<name>` in conformance/test_checks.py, so it is also in the
test ID and the key of an expected failure), the `check` of its results.json records, its report column
(columns follow the rows' order) and, unless the row names another, its table in tolerances.toml.
Adding a check is a function in `conformance/checks/` plus one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hypothesis import strategies as st

from conformance import inputs
from conformance.case import Case, Profile, Target
from conformance.checks.batch import check_dynamic_batch, check_row_independence
from conformance.checks.bundle import check_bundle_integrity
from conformance.checks.contract import check_io_contract
from conformance.checks.known_answer import check_known_answer
from conformance.checks.latency import check_latency_of
from conformance.checks.parity import check_parity, check_zero_shot_agreement
from conformance.checks.projection import (
    check_projection_file,
    check_projection_roundtrip,
    check_split_matches_full,
    check_token_dtype,
)
from conformance.checks.validity import check_opset_validity
from conformance.encoders import EncoderKind
from conformance.results import CheckResult, skipped
from conformance.subject import Subject
from conformance.tolerances import limits


class Scope(StrEnum):
    GRAPH = "graph"  # one graph: Subject with case.encoder set
    PAIR = "pair"  # the encoders of one variant, exporter and opset together
    BUNDLE = "bundle"  # a bundle folder, before anything in it is trusted
    TIMED = "timed"  # one graph at one batch size, timed (the parameter is a latency.Timing)


# (subject, parameter) -> result. The parameter is the row's `params` value, Hypothesis's `data` for a
# drawn row, a bundle folder, or the timing plan.
Run = Callable[[Any, Any], CheckResult]
TEXT = frozenset({EncoderKind.TEXT_SPLIT, EncoderKind.TEXT_FULL})


@dataclass(frozen=True)
class Check:
    name: str
    run: Run
    scope: Scope = Scope.GRAPH
    encoders: frozenset[EncoderKind] = frozenset(EncoderKind)
    targets: frozenset[Target] | None = None  # None: every target
    profiles: frozenset[Profile] | None = None  # None: every shape profile
    tolerance: str | None = None  # tolerances.toml table, when not the check's own name
    params: tuple[str, ...] = ()  # one test per value (e.g. the edge-text cases)
    drawn: bool = False  # a Hypothesis test: the parameter is its `data`

    def applies(self, case: Case) -> bool:
        return (
            (case.encoder is None or case.encoder in self.encoders)
            and (self.targets is None or case.target in self.targets)
            and (self.profiles is None or case.profile in self.profiles)
        )

    def tolerance_of(self, subject: Subject) -> Any:
        return subject.tolerance(self.tolerance or self.name)


def _largest(s: Subject) -> int:
    return max(inputs.batch_sizes(s.variant, s.artifact.encoder))


def _split_full(s: Subject) -> CheckResult:
    if EncoderKind.TEXT_FULL not in s.artifacts:
        return skipped(
            "split_matches_full", "a release bundle ships image and text-split graphs only; no text-full to compare"
        )
    full = s.artifacts[EncoderKind.TEXT_FULL]
    return check_split_matches_full(full, s.artifacts[EncoderKind.TEXT_SPLIT], s.tolerance("split_matches_full"))


def _zero_shot(s: Subject) -> CheckResult:
    n_images = min(4, inputs.max_batch(s.variant, EncoderKind.IMAGE))
    return check_zero_shot_agreement(
        s.artifacts[EncoderKind.IMAGE],
        s.artifacts[EncoderKind.TEXT_SPLIT],
        s.model,
        n_images=n_images,
        tie=limits().zero_shot_tie,
    )


DYNAMIC = frozenset({Profile.DYNAMIC})
SPLIT = frozenset({EncoderKind.TEXT_SPLIT})

CHECKS: tuple[Check, ...] = (
    Check("opset_validity", lambda s, _: check_opset_validity(s.artifact)),
    Check("io_contract", lambda s, _: check_io_contract(s.artifact)),
    Check(
        "dynamic_batch",
        lambda s, _: check_dynamic_batch(
            s.artifact, inputs.batch_sizes(s.variant, s.artifact.encoder), s.tolerance("dynamic_batch")
        ),
        profiles=DYNAMIC,
    ),
    Check(
        "dynamic_batch_drawn",
        lambda s, data: check_dynamic_batch(
            s.artifact,
            [data.draw(inputs.batch_size_strategy(s.variant, s.artifact.encoder), label="batch")],
            s.tolerance("dynamic_batch"),
        ),
        profiles=DYNAMIC,
        tolerance="dynamic_batch",
        drawn=True,
    ),
    Check(
        "row_independence",
        lambda s, _: check_row_independence(s.artifact, _largest(s), s.tolerance("row_independence")),
        profiles=DYNAMIC,
    ),
    Check(
        "parity",
        lambda s, _: check_parity(
            s.artifact, s.model, s.tolerance("parity"), batch=min(4, inputs.max_batch(s.variant, s.artifact.encoder))
        ),
    ),
    Check("zero_shot_agreement", lambda s, _: _zero_shot(s), scope=Scope.PAIR),
    Check(
        "known_answer",
        lambda s, _: check_known_answer(s.artifacts[EncoderKind.IMAGE], s.artifacts[EncoderKind.TEXT_SPLIT], s.model),
        scope=Scope.PAIR,
    ),
    Check("projection_file", lambda s, _: check_projection_file(s.artifact, s.model), encoders=SPLIT),
    Check(
        "projection_roundtrip",
        lambda s, case: check_projection_roundtrip(
            s.artifact, s.model, inputs.EDGE_TEXTS[case], s.tolerance("projection_roundtrip")
        ),
        encoders=SPLIT,
        params=tuple(sorted(inputs.EDGE_TEXTS)),
    ),
    Check(
        "projection_roundtrip_drawn",
        lambda s, data: check_projection_roundtrip(
            s.artifact,
            s.model,
            data.draw(st.lists(inputs.text_strategy(), min_size=1, max_size=4), label="texts"),
            s.tolerance("projection_roundtrip"),
        ),
        encoders=SPLIT,
        tolerance="projection_roundtrip",
        drawn=True,
    ),
    Check("token_dtype", lambda s, _: check_token_dtype(s.artifact, s.token_dtype), encoders=TEXT),
    Check("split_matches_full", lambda s, _: _split_full(s), scope=Scope.PAIR),
    Check(
        "bundle_integrity", lambda weights, folder: check_bundle_integrity(folder, weights=weights), scope=Scope.BUNDLE
    ),
    Check(
        "latency",
        lambda s, t: check_latency_of(s.artifact, s.model, t.plan, t.gate, t.timer, t.baseline, t.baseline_tolerance),
        scope=Scope.TIMED,
    ),
)

BY_NAME: dict[str, Check] = {check.name: check for check in CHECKS}
COLUMNS: tuple[str, ...] = tuple(BY_NAME)


def run_check(name: str, subject: Any, parameter: Any = None) -> CheckResult:
    """Run one registered check outside pytest; the result carries the registry's name."""
    result = BY_NAME[name].run(subject, parameter)
    result.check = name
    return result
