"""`ProfileRules`: one profile's toml file, parsed and checked once, with the reason behind every rule."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Rule:
    """Why a rule exists (`reason`) and what says so (`source`: a measurement, an error message, an issue)."""

    reason: str
    source: str

    def describe(self) -> str:
        return f"{self.reason} ({self.source})"


@dataclass(frozen=True)
class ForbiddenOp:
    op: str
    rule: Rule


@dataclass(frozen=True)
class ComputedInput:
    """Input `index` of `op` must be known at compile time; `graph_input` also allows a graph input there."""

    op: str
    index: int
    graph_input: bool
    rule: Rule


@dataclass(frozen=True)
class ProfileRules:
    name: str
    sha256: str  # of the toml file's bytes: what a bundle manifest records
    opset_min: int
    opset_max: int
    opset_rule: Rule
    allowed_ops: frozenset[str]  # default-domain ops that may run on the device
    fold_only_ops: frozenset[str]  # ops that may appear only where every output folds to a compile-time constant
    operators_rule: Rule
    forbidden: tuple[ForbiddenOp, ...]
    computed_inputs: tuple[ComputedInput, ...]
    data_dtypes: frozenset[str]  # numpy spellings of what may flow between nodes at run time
    constant_dtypes: frozenset[str]  # what compile-time constants may be as well (int64 shape constants)
    dtypes_rule: Rule
    token_dtype: str  # the text graphs' input
    max_rank: int
    rank_rule: Rule
    constant_bound: float
    constants_rule: Rule
    default_exporter: str  # what `--target npu-static` exports with when no --exporter is given
    default_opset: dict[str, int]  # per exporter, when no --opset is given

    def forbidden_op(self, op: str) -> ForbiddenOp | None:
        return next((f for f in self.forbidden if f.op == op), None)

    def describe(self) -> str:
        return (
            f"{self.name}: opset {self.opset_min}-{self.opset_max}, {len(self.allowed_ops)} ops, "
            f"{len(self.forbidden)} forbidden, rank <= {self.max_rank}, |constants| <= {self.constant_bound:g} "
            f"(sha256 {self.sha256[:12]})"
        )


def known_profiles() -> list[str]:
    files = resources.files("conformance.profiles").iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def _rule(table: dict[str, Any]) -> Rule:
    return Rule(str(table["reason"]), str(table["source"]))


def _computed_inputs(table: dict[str, Any]) -> tuple[ComputedInput, ...]:
    return tuple(
        ComputedInput(str(entry["op"]), int(index), bool(entry.get("graph_input", False)), _rule(entry))
        for entry in table["rule"]
        for index in entry["inputs"]
    )


def parse_profile(name: str, data: bytes) -> ProfileRules:
    """The rules from a profile file's bytes; a missing field is a KeyError naming it."""
    table = tomllib.loads(data.decode("utf-8"))
    opset, operators, dtypes = table["opset"], table["operators"], table["dtypes"]
    return ProfileRules(
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        opset_min=int(opset["min"]),
        opset_max=int(opset["max"]),
        opset_rule=_rule(opset),
        allowed_ops=frozenset(operators["allowed"]),
        fold_only_ops=frozenset(operators["fold_only"]),
        operators_rule=_rule(operators),
        forbidden=tuple(ForbiddenOp(str(f["op"]), _rule(f)) for f in operators["forbidden"]),
        computed_inputs=_computed_inputs(table["computed_inputs"]),
        data_dtypes=frozenset(dtypes["data"]),
        constant_dtypes=frozenset(dtypes["data"]) | frozenset(dtypes["constants"]),
        dtypes_rule=_rule(dtypes),
        token_dtype=str(dtypes["tokens"]),
        max_rank=int(table["rank"]["max"]),
        rank_rule=_rule(table["rank"]),
        constant_bound=float(table["constants"]["bound"]),
        default_exporter=str(table["defaults"]["exporter"]),
        default_opset={str(k): int(v) for k, v in table["defaults"]["opset"].items()},
        constants_rule=_rule(table["constants"]),
    )


@cache
def load_profile(name: str) -> ProfileRules:
    """The named profile's rules (conformance/profiles/<name>.toml), parsed once per process."""
    known = known_profiles()
    if name not in known:
        raise ValueError(f"unknown profile {name!r}: known profiles are {', '.join(known)}")
    data = resources.files("conformance.profiles").joinpath(f"{name}.toml").read_bytes()
    try:
        return parse_profile(name, data)
    except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"profile {name!r} is malformed: {type(exc).__name__}: {exc}") from None
