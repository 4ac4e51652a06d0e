"""Fusions: an optimised graph holds the fused operators a good optimisation of its tower produces."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from conformance.artifact import Artifact, ArtifactError
from conformance.encoders import EncoderKind
from conformance.graph import load_structure
from conformance.results import CheckResult, failed, skipped, verdict
from conformance.tolerances import data_file

CHECK = "fusions"


@dataclass(frozen=True)
class Expectation:
    op: str
    towers: tuple[str, ...]
    per_layer: int
    offset: int
    reason: str


@cache
def expectations() -> dict[str, Expectation]:
    rows = data_file("fusions.toml")["expect"]
    return {
        row["op"]: Expectation(
            row["op"], tuple(row["towers"]), int(row["per_layer"]), int(row["offset"]), row["reason"]
        )
        for row in rows
    }


FUSED_OPS: tuple[str, ...] = tuple(expectations())


def tower(artifact: Artifact) -> tuple[str, int]:
    """The tower kind and its number of transformer blocks (0 where it has none)."""
    variant = artifact.variant
    if artifact.encoder != EncoderKind.IMAGE:
        return "text", variant.transformer_layers
    if isinstance(variant.vision_layers, int):
        return "image-vit", variant.vision_layers
    return "image-rn", 0


def check_fusions(artifact: Artifact, op: str) -> CheckResult:
    """The graph holds at least the expected number of `op` nodes (fusions.toml)."""
    expected = expectations()[op]
    kind, layers = tower(artifact)
    if kind not in expected.towers:
        return skipped(CHECK, f"no {op} expectation for {kind} towers in fusions.toml (not measured)")
    try:
        model = load_structure(artifact)
    except ArtifactError as exc:
        return failed(CHECK, str(exc))
    want = expected.per_layer * layers + expected.offset
    found = sum(node.op_type == op for node in model.graph.node)
    figures = {"op": op, "found": found, "expected": want, "layers": layers, "reason": expected.reason}
    problems = [] if found >= want else [f"{found} {op} nodes, expected {want} ({expected.reason})"]
    return verdict(CHECK, problems, figures, f"{found} {op} (expected {want})")
