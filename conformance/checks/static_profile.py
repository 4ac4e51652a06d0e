"""A static profile's rules (conformance/profiles/<name>.toml), checked on the graph before any compiler sees it.

NPU compilers (RKNN, Sophgo, ...) want fixed shapes, int32 ids, a bounded operator set and finite constants
(checks/constants.py), and each refuses what it cannot take with an error after minutes of building, or
rewrites it silently. These checks say it up front, on the graph as a compiler folds it
(conformance/profiles/fold.py), naming the node and the rule (with its reason) a graph breaks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator

import onnx

from conformance.artifact import Artifact
from conformance.checks.constants import check_finite_constants
from conformance.encoders import EncoderKind
from conformance.graph import STANDARD_DOMAINS, all_nodes, default_opset
from conformance.profiles.fold import (
    CompileTimeView,
    ValueType,
    grouped,
    label,
    named,
    value_type,
    view_or_failure,
)
from conformance.profiles.rules import ProfileRules, load_profile
from conformance.results import CheckResult, verdict
from conformance.subject import Subject

CHECK_OPS = "profile_ops"
CHECK_SHAPES = "static_shapes"
CHECK_DTYPES = "profile_dtypes"
CHECK_FINITE = "finite_constants"

# --- profile_ops -------------------------------------------------------------------------------------------


def _opset_problems(model: onnx.ModelProto, rules: ProfileRules) -> list[str]:
    opset = default_opset(model)
    if opset is not None and rules.opset_min <= opset <= rules.opset_max:
        return []
    return [
        f"default-domain opset {opset} is outside the {rules.name} range {rules.opset_min}..{rules.opset_max}: "
        f"{rules.opset_rule.describe()}"
    ]


def _operator_problems(view: CompileTimeView, rules: ProfileRules) -> list[str]:
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in all_nodes(view.model):
        forbidden = rules.forbidden_op(node.op_type)
        if node.domain not in STANDARD_DOMAINS:
            key = (f"{node.domain}.{node.op_type} is not a default-domain operator", rules.operators_rule.describe())
        elif forbidden is not None:
            key = (f"{node.op_type} is forbidden by {rules.name}", forbidden.rule.describe())
        elif node.op_type in rules.allowed_ops:
            continue
        elif view.folded(node) and node.op_type in rules.fold_only_ops:
            continue
        elif node.op_type in rules.fold_only_ops:
            what = f"{node.op_type} computes from activations at run time ({rules.name} allows it only folded)"
            key = (what, rules.operators_rule.describe())
        else:
            key = (f"{node.op_type} is not in the {rules.name} operator set", rules.operators_rule.describe())
        found[key].append(label(node))
    return grouped(found)


def _computed_input_problems(view: CompileTimeView, rules: ProfileRules) -> list[str]:
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in view.model.graph.node:
        for rule in (r for r in rules.computed_inputs if r.op == node.op_type and r.index < len(node.input)):
            name = node.input[rule.index]
            # A graph input may index only a weight table (the token embedding), never activations.
            table_lookup = rule.graph_input and name in view.graph_inputs and node.input[0] in view.constant
            if not name or name in view.constant or table_lookup:
                continue
            what = f"{node.op_type} input {rule.index} is computed from activations inside the graph"
            if name in view.graph_inputs:
                what = f"{node.op_type} indexes activations (not a weight table) by the graph input {name!r}"
            found[(what, rule.rule.describe())].append(f"{label(node)} input {name!r}")
    return grouped(found)


def check_profile_ops(artifact: Artifact, rules: ProfileRules) -> CheckResult:
    """Opset in range, default-domain operators only, none forbidden, every run-time one in the profile's set,
    and the index and shape inputs a compiler must know (Reshape's shape, Gather's indices, ...) known."""
    view = view_or_failure(artifact, CHECK_OPS)
    if isinstance(view, CheckResult):
        return view
    runtime = Counter(n.op_type for n in view.model.graph.node if not view.folded(n))
    folded = Counter(n.op_type for n in view.model.graph.node if view.folded(n))
    figures = {
        "profile": rules.name,
        "profile_sha256": rules.sha256,
        "opset_import": default_opset(view.model),
        "runtime_ops": dict(sorted(runtime.items())),
        "folded_ops": dict(sorted(folded.items())),
        "fold_rounds": view.rounds,
    }
    problems = _opset_problems(view.model, rules) + _operator_problems(view, rules)
    problems += _computed_input_problems(view, rules)
    ok = f"{sum(runtime.values())} run-time nodes of {len(runtime)} ops, {sum(folded.values())} folded ({rules.name})"
    return verdict(CHECK_OPS, problems, figures, ok)


# --- static_shapes -----------------------------------------------------------------------------------------


def _node_outputs(model: onnx.ModelProto) -> Iterator[tuple[onnx.NodeProto, str]]:
    for node in model.graph.node:
        yield from ((node, name) for name in node.output if name)


def _not_static(value: ValueType | None) -> str | None:
    """Why a value's shape is not fixed, or None if it is."""
    if value is None or value.dims is None:
        return "no inferred shape"
    loose = [d for d in value.dims if not isinstance(d, int)]
    if loose:
        return f"shape {list(value.dims)} has {len(loose)} symbolic or unknown dims"
    return None


def _boundary_problems(view: CompileTimeView, artifact: Artifact, rules: ProfileRules) -> list[str]:
    problems = []
    batch = artifact.case.static_batch
    for kind, declared in (("input", view.model.graph.input), ("output", view.model.graph.output)):
        for value in declared:
            if kind == "input" and value.name not in view.graph_inputs:
                continue
            dims = value_type(value).dims or ()
            why = _not_static(value_type(value))
            if why:
                problems.append(f"graph {kind} {value.name!r} is not static: {why}")
            if kind == "input" and batch is not None and (not dims or dims[0] != batch):
                problems.append(
                    f"graph input {value.name!r} has batch {dims[0] if dims else None}, the case's "
                    f"static batch is {batch}"
                )
            if len(dims) > rules.max_rank:
                problems.append(f"graph {kind} {value.name!r} has rank {len(dims)}: {rules.rank_rule.describe()}")
    return problems


def check_static_shapes(artifact: Artifact, rules: ProfileRules) -> CheckResult:
    """Every dimension fixed: on the graph's inputs and outputs as declared, and on every value once shapes are
    inferred (after folding); the inputs' batch is the case's static batch; no run-time value above the
    profile's rank."""
    view = view_or_failure(artifact, CHECK_SHAPES)
    if isinstance(view, CheckResult):
        return view
    loose: dict[str, list[str]] = defaultdict(list)
    deep: list[str] = []
    ranks: Counter[int] = Counter()
    for node, name in _node_outputs(view.model):
        value = view.values.get(name)
        why = _not_static(value)
        if why:
            loose["symbolic" if value and value.dims is not None else "unknown"].append(f"{name!r} of {label(node)}")
            continue
        assert value is not None and value.dims is not None
        if not view.folded(node):
            ranks[len(value.dims)] += 1
            if len(value.dims) > rules.max_rank:
                deep.append(f"{name!r} {list(value.dims)} of {label(node)}")
    problems = _boundary_problems(view, artifact, rules)
    problems += [
        f"{len(items)} values with {kind} dims after shape inference ({named(items)})" for kind, items in loose.items()
    ]
    if deep:
        problems.append(
            f"{len(deep)} run-time values above rank {rules.max_rank} ({named(deep)}): {rules.rank_rule.describe()}"
        )
    figures = {
        "static_batch": artifact.case.static_batch,
        "inputs": {
            v.name: list(value_type(v).dims or ()) for v in view.model.graph.input if v.name in view.graph_inputs
        },
        "outputs": {v.name: list(value_type(v).dims or ()) for v in view.model.graph.output},
        "values": sum(1 for _ in _node_outputs(view.model)),
        "symbolic_values": len(loose["symbolic"]),
        "unknown_values": len(loose["unknown"]),
        "runtime_ranks": dict(sorted(ranks.items())),
        "max_rank": max(ranks, default=0),
    }
    return verdict(
        CHECK_SHAPES, problems, figures, f"all {figures['values']} values static, rank <= {figures['max_rank']}"
    )


# --- profile_dtypes ----------------------------------------------------------------------------------------


def _boundary_dtype_problems(view: CompileTimeView, artifact: Artifact, rules: ProfileRules) -> list[str]:
    problems = []
    boundary = [("input", v) for v in view.model.graph.input if v.name in view.graph_inputs]
    for kind, value in [*boundary, *(("output", v) for v in view.model.graph.output)]:
        dtype = value_type(value).dtype
        if dtype not in rules.data_dtypes:
            problems.append(f"graph {kind} {value.name!r} is {dtype}: {rules.dtypes_rule.describe()}")
        elif kind == "input" and artifact.encoder != EncoderKind.IMAGE and dtype != rules.token_dtype:
            problems.append(
                f"token input {value.name!r} is {dtype}, the {rules.name} profile takes "
                f"{rules.token_dtype} ids: {rules.dtypes_rule.describe()}"
            )
    return problems


def check_profile_dtypes(artifact: Artifact, rules: ProfileRules) -> CheckResult:
    """Only the profile's data types at run time (int64 only as compile-time shape constants), and the text
    graphs' ids as the profile's token type."""
    view = view_or_failure(artifact, CHECK_DTYPES)
    if isinstance(view, CheckResult):
        return view
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    runtime: Counter[str] = Counter()
    constants: Counter[str] = Counter()
    for node, name in _node_outputs(view.model):
        value = view.values.get(name)
        if value is None or value.dtype == "undefined":
            continue
        folded = view.folded(node)
        (constants if folded else runtime)[value.dtype] += 1
        if value.dtype not in (rules.constant_dtypes if folded else rules.data_dtypes):
            what = f"{value.dtype} {'constant' if folded else 'flows between nodes at run time'}"
            found[(what, rules.dtypes_rule.describe())].append(f"{name!r} of {label(node)}")
    problems = _boundary_dtype_problems(view, artifact, rules) + grouped(found)
    figures = {"runtime_dtypes": dict(runtime), "constant_dtypes": dict(constants)}
    return verdict(CHECK_DTYPES, problems, figures, f"run-time types {sorted(runtime)}")


# The registry's adapters, (subject, parameter) -> result: each rule set is the subject's shape profile's.


def _rules(s: Subject) -> ProfileRules:
    return load_profile(str(s.case.profile))


def run_profile_ops(s: Subject, _: None) -> CheckResult:
    return check_profile_ops(s.artifact, _rules(s))


def run_static_shapes(s: Subject, _: None) -> CheckResult:
    return check_static_shapes(s.artifact, _rules(s))


def run_profile_dtypes(s: Subject, _: None) -> CheckResult:
    return check_profile_dtypes(s.artifact, _rules(s))


def run_finite_constants(s: Subject, _: None) -> CheckResult:
    return check_finite_constants(s.artifact, _rules(s))
