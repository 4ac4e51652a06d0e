"""The check registry: one row per check, and the one name each check goes by.

A row's `name` is the test function (`test_<name>` in conformance/test_checks.py, so it is also in the
test ID and the key of an expected failure), the `check` of its results.json records, its report column
(columns follow the rows' order) and, unless the row names another, its table in tolerances.toml.
Adding a check is a function in `conformance/checks/` plus one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from conformance import inputs
from conformance.case import Case, Precision, Profile, Scope, Target
from conformance.checks.batch import check_dynamic_batch, check_repeatability, check_row_independence
from conformance.checks.bundle import check_bundle_integrity
from conformance.checks.contract import check_io_contract, check_layout_contract
from conformance.checks.emulated import run_emulated
from conformance.checks.extremes import check_finite_extremes
from conformance.checks.fusions import FUSED_OPS, check_fusions
from conformance.checks.host import run_host_preprocessing, run_host_tokenizer, run_logits, run_producer_reference
from conformance.checks.known_answer import check_known_answer
from conformance.checks.latency_gate import check_latency_of
from conformance.checks.parity import check_parity, check_source_agreement, check_zero_shot_agreement
from conformance.checks.precision import check_realised_precision
from conformance.checks.projection import (
    check_projection_file,
    check_projection_roundtrip,
    check_split_matches_full,
    check_token_dtype,
)
from conformance.checks.saturation import check_int8_saturation
from conformance.checks.static_profile import (
    run_finite_constants,
    run_profile_dtypes,
    run_profile_ops,
    run_static_shapes,
)
from conformance.checks.validity import check_opset_validity
from conformance.compile.recipes import allowed_domains
from conformance.encoders import EncoderKind
from conformance.numerics import Tolerance
from conformance.results import CheckResult, skipped
from conformance.subject import Subject
from conformance.verdicts import Reuse

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
    static_skip: str | None = None  # a dynamic-shape claim: on a static profile it skips, saying this
    reference: bool = False  # compares with the torch model: skips, saying why, where there are no weights for one
    layouts_only: bool = False  # a host-contract check: only for another tool's layout (--artifacts)
    emulated: bool = False  # precision-sensitive: also runs on each --emulate-cpu, on outputs recorded under qemu
    needs: frozenset[str] = frozenset()  # graphs it reads besides its own (image, text, source): skips without them
    reuse: Reuse = Reuse.NEVER  # what a stored pass depends on, where it may stand for a run (conformance/verdicts.py)

    def applies(self, case: Case) -> bool:
        return (
            (case.encoder is None or case.encoder in self.encoders)
            and (self.targets is None or case.target in self.targets)
            and (self.profiles is None or case.profile in self.profiles)
            and (case.layout is not None or not self.layouts_only)
            and (case.emulated is None or self.emulated)
        )

    def execute(self, subject: Any, parameter: Any) -> CheckResult:
        """Run it, except on a static graph when it checks a dynamic claim: a skip with the reason, never a
        vacuous pass."""
        case = getattr(subject, "case", None)
        layout = getattr(subject, "layout", None)  # another tool's, as its graphs carry it
        reason = layout.skip_reason(self.name) if layout else None
        if reason and layout is not None:
            return skipped(self.name, f"layout {layout.name}: {reason}")
        lacking = [file for role, file in getattr(subject, "missing", {}).items() if role in self.needs]
        if lacking:
            return skipped(self.name, f"needs {', '.join(lacking)}, which the folder does not hold")
        if self.static_skip and case is not None and case.static_batch is not None:
            where = "the graph (its layout's batch)" if layout else f"{case.profile} graph"
            return skipped(self.name, f"{where} fixed at batch {case.static_batch}: {self.static_skip}")
        if self.reference and getattr(subject, "model", True) is None:
            return skipped(self.name, subject.no_reference or "no reference weights")
        if case is not None and case.emulated is not None:  # the same check, on outputs recorded under qemu
            result = run_emulated(self.name, self.run, subject, parameter)
        else:
            result = self.run(subject, parameter)
        result.check = self.name
        return result

    def tolerance_of(self, subject: Subject) -> Tolerance:
        return subject.tolerance(self.tolerance or self.name)


def _tolerance(s: Subject, check: str) -> Tolerance:
    """The tolerance its row names (its own table unless the row says another): one place decides."""
    return BY_NAME[check].tolerance_of(s)


# How each check is called: (subject, parameter) -> result. One adapter per check (the host checks' are in
# checks/host.py) keeps the table below one line a row; the checks stay plain functions of artifacts and models.


def _opset_validity(s: Subject, _: None) -> CheckResult:
    return check_opset_validity(s.artifact, allowed_domains=allowed_domains(s.case.target))


def _io_contract(s: Subject, _: None) -> CheckResult:
    layout = s.artifact.layout  # another tool's: its layout's own contract
    return check_layout_contract(s.artifact, layout) if layout else check_io_contract(s.artifact)


def _dynamic_batch(s: Subject, _: None) -> CheckResult:
    sizes = inputs.batch_sizes(s.variant, s.artifact.encoder, s.batch_max)
    cap = max(inputs.max_batch(s.variant, s.artifact.encoder), inputs.swept_up_to(s.variant, s.artifact.encoder))
    return check_dynamic_batch(s.artifact, sizes, _tolerance(s, "dynamic_batch"), say=s.progress, quiet_up_to=cap)


def _dynamic_batch_drawn(s: Subject, data: Any) -> CheckResult:
    if inputs.drawn_batch_range(s.variant, s.artifact.encoder) is None:
        top = inputs.swept_up_to(s.variant, s.artifact.encoder)
        why = f"nothing left to draw: dynamic_batch runs every size 1 .. {top}, the cost cap of this tower"
        return skipped("dynamic_batch_drawn", why)
    size = data.draw(inputs.batch_size_strategy(s.variant, s.artifact.encoder), label="batch")
    return check_dynamic_batch(s.artifact, [size], _tolerance(s, "dynamic_batch_drawn"))


def _row_independence(s: Subject, _: None) -> CheckResult:
    """A static graph's rows: each item in a batch of others against the same item in a batch of its own copies
    (runtime.run_onnx pads a short batch by repeating its last row); at batch 1 there is nothing to mix."""
    static = s.case.static_batch
    if static == 1:
        return skipped("row_independence", f"{s.case.profile} graph fixed at batch 1: one row per run, none to mix")
    largest = static or max(inputs.batch_sizes(s.variant, s.artifact.encoder))
    return check_row_independence(s.artifact, largest, _tolerance(s, "row_independence"))


def _parity(s: Subject, _: None) -> CheckResult:
    batch = inputs.parity_batch(s.variant, s.artifact.encoder, s.case.static_batch)
    return check_parity(s.artifact, s.model, _tolerance(s, "parity"), batch=batch)


def _source_agreement(s: Subject, _: None) -> CheckResult:
    batch = inputs.parity_batch(s.variant, s.artifact.encoder, s.case.static_batch)
    return check_source_agreement(s.artifact, s.source, _tolerance(s, "source_agreement"), batch=batch)


def _zero_shot_agreement(s: Subject, _: None) -> CheckResult:
    n_images = min(4, inputs.max_batch(s.variant, EncoderKind.IMAGE))
    image = s.artifacts[EncoderKind.IMAGE]
    text = s.artifacts.get(EncoderKind.TEXT_SPLIT) or s.artifacts[EncoderKind.TEXT_FULL]  # a layout's embeddings
    return check_zero_shot_agreement(image, text, s.model, _tolerance(s, "zero_shot_agreement"), n_images=n_images)


def _known_answer(s: Subject, _: None) -> CheckResult:
    return check_known_answer(s.artifacts[EncoderKind.IMAGE], s.artifacts[EncoderKind.TEXT_SPLIT], s.model)


def _projection_file(s: Subject, _: None) -> CheckResult:
    return check_projection_file(s.artifact, s.model)


def _projection_roundtrip(s: Subject, case: str) -> CheckResult:
    texts, tol = inputs.EDGE_TEXTS[case], _tolerance(s, "projection_roundtrip")
    return check_projection_roundtrip(s.artifact, s.model, texts, tol)


def _projection_roundtrip_drawn(s: Subject, data: Any) -> CheckResult:
    texts = data.draw(st.lists(inputs.text_strategy(), min_size=1, max_size=4), label="texts")
    return check_projection_roundtrip(s.artifact, s.model, texts, _tolerance(s, "projection_roundtrip_drawn"))


def _token_dtype(s: Subject, _: None) -> CheckResult:
    return check_token_dtype(s.artifact, s.artifact.binding.text.dtype if s.artifact.binding else s.token_dtype)


def _split_matches_full(s: Subject, _: None) -> CheckResult:
    if EncoderKind.TEXT_FULL not in s.artifacts:
        static = f"the {s.case.profile} profile has no text-full graph (its EOT ArgMax runs on the host)"
        bundle = "a release bundle ships image and text-split graphs only; no text-full to compare"
        return skipped("split_matches_full", static if s.case.static_batch is not None else bundle)
    full, split = s.artifacts[EncoderKind.TEXT_FULL], s.artifacts[EncoderKind.TEXT_SPLIT]
    return check_split_matches_full(full, split, _tolerance(s, "split_matches_full"))


def _bundle_integrity(given: tuple[Path | None, str | None], folder: Path) -> CheckResult:
    return check_bundle_integrity(folder, weights=given[0], layout=given[1])  # (--weights, --layout)


def _latency(s: Subject, t: Any) -> CheckResult:
    return check_latency_of(s.artifact, s.model, t.plan, t.gates, t.timer, source=s.source)


def _repeatability(s: Subject, _: None) -> CheckResult:
    return check_repeatability(s.artifact)


def _realised_precision(s: Subject, _: None) -> CheckResult:
    return check_realised_precision(s.artifact)


def _int8_saturation(s: Subject, _: None) -> CheckResult:
    return check_int8_saturation(s.artifact, s.deploy_isa)


def _finite_extremes(s: Subject, _: None) -> CheckResult:
    return check_finite_extremes(s.artifact, s.model, _tolerance(s, "finite_extremes"))


def _fusions(s: Subject, op: str) -> CheckResult:
    return check_fusions(s.artifact, op)


STATIC = frozenset({Profile.NPU_STATIC})
SPLIT = frozenset({EncoderKind.TEXT_SPLIT})
EDGE_CASES = tuple(sorted(inputs.EDGE_TEXTS))
# RKNN's simulator runs only where the graph is built, so an rknn graph answers just the inputs its build simulated
# (compile/rknn.py): parity's, zero-shot's, the extremes. The rest run on the npu-static graph it was built from.
SIMULATED = frozenset({Target.RKNN})
ANY_INPUT = frozenset(Target) - SIMULATED
# Where the precision is the compiler's (OpenVINO's bf16 hint, RKNN's fp16 build), the ONNX stores fp32.
STORED_PRECISION = ANY_INPUT - {Target.OPENVINO_BF16}
INT8 = frozenset(t for t in Target if t.precision in (Precision.INT8, Precision.INT4, Precision.NF4))  # 4-bit: skips
COMPILED = frozenset(t for t in ANY_INPUT if t.compiled)
EXPORT = frozenset({Target.ONNX})  # the host checks: another tool's fp32 graphs, not again per compiled sibling
SOURCE, BOTH = frozenset({"source"}), frozenset({"image", "text"})  # what a folder may lack (Subject.missing)
NOT_ON_STATIC = "no dynamic batch to check (the batch checks compare its batch with batch 1 of the same graph)"
G, M = Reuse.GRAPH, Reuse.MACHINE  # the rest: Reuse.NEVER (a measurement, a folder not yet trusted, a host's venv)

# fmt: off
CHECKS: tuple[Check, ...] = (
    Check("opset_validity", _opset_validity, targets=ANY_INPUT, reuse=G),
    Check("io_contract", _io_contract, targets=ANY_INPUT, reuse=G),
    Check("profile_ops", run_profile_ops, profiles=STATIC, targets=ANY_INPUT, reuse=G),
    Check("static_shapes", run_static_shapes, profiles=STATIC, targets=ANY_INPUT, reuse=G),
    Check("profile_dtypes", run_profile_dtypes, profiles=STATIC, targets=ANY_INPUT, reuse=G),
    Check("finite_constants", run_finite_constants, profiles=STATIC, targets=ANY_INPUT, reuse=G),
    Check("realised_precision", _realised_precision, targets=STORED_PRECISION, reuse=G),
    Check("int8_saturation", _int8_saturation, targets=INT8, reuse=G),
    Check("repeatability", _repeatability, targets=ANY_INPUT, reuse=M),
    Check("dynamic_batch", _dynamic_batch, targets=ANY_INPUT, static_skip=NOT_ON_STATIC, reuse=M),
    Check("dynamic_batch_drawn", _dynamic_batch_drawn, targets=ANY_INPUT, tolerance="dynamic_batch", drawn=True,
          static_skip=NOT_ON_STATIC, reuse=M),
    Check("row_independence", _row_independence, targets=ANY_INPUT, reuse=M),
    Check("parity", _parity, reference=True, emulated=True, reuse=M),
    Check("source_agreement", _source_agreement, targets=COMPILED, tolerance="parity", emulated=True, needs=SOURCE,
          reuse=M),
    Check("finite_extremes", _finite_extremes, emulated=True, reuse=M),
    Check("fusions", _fusions, targets=frozenset({Target.ORT_OPT}), params=FUSED_OPS, reuse=G),
    Check("zero_shot_agreement", _zero_shot_agreement, scope=Scope.PAIR, reference=True, emulated=True, needs=BOTH,
          reuse=M),
    Check("known_answer", _known_answer, scope=Scope.PAIR, targets=ANY_INPUT, reference=True, needs=BOTH, reuse=M),
    Check("projection_file", _projection_file, encoders=SPLIT, reference=True, reuse=G),
    Check("projection_roundtrip", _projection_roundtrip, encoders=SPLIT, params=EDGE_CASES, targets=ANY_INPUT,
          reference=True, reuse=M),
    Check("projection_roundtrip_drawn", _projection_roundtrip_drawn, encoders=SPLIT,
          tolerance="projection_roundtrip", drawn=True, targets=ANY_INPUT, reference=True, reuse=M),
    Check("token_dtype", _token_dtype, encoders=TEXT, targets=ANY_INPUT, reuse=M),
    Check("split_matches_full", _split_matches_full, scope=Scope.PAIR, targets=ANY_INPUT, reuse=M),
    Check("host_preprocessing", run_host_preprocessing, scope=Scope.PAIR, layouts_only=True, targets=EXPORT,
          needs=frozenset({"image-tower"})),
    Check("host_tokenizer", run_host_tokenizer, scope=Scope.PAIR, layouts_only=True, targets=EXPORT,
          needs=frozenset({"text-tower"})),
    Check("logits", run_logits, scope=Scope.PAIR, layouts_only=True, targets=EXPORT, needs=BOTH),
    Check("producer_reference", run_producer_reference, scope=Scope.PAIR, layouts_only=True, reference=True,
          targets=EXPORT, tolerance="parity"),
    Check("bundle_integrity", _bundle_integrity, scope=Scope.BUNDLE),
    Check("latency", _latency, scope=Scope.TIMED, targets=ANY_INPUT, reference=True),
)
# fmt: on

BY_NAME: dict[str, Check] = {check.name: check for check in CHECKS}
COLUMNS: tuple[str, ...] = tuple(BY_NAME)


def run_check(name: str, subject: Any, parameter: Any = None) -> CheckResult:
    """Run one registered check outside pytest; the result carries the registry's name."""
    return BY_NAME[name].execute(subject, parameter)
