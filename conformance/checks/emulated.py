"""A check run on an emulated CPU (--emulate-cpu): the same check function, fed the outputs a qemu worker recorded.

The guest is probed first (its own CPUID must show what conformance/emulation.toml says), then each graph of the
subject runs its input set under qemu, saying so, and the check runs as on the host, at its target's budget. The
result names the emulated CPU and what emulating cost; a guest that is refused, or a graph the runtime cannot run
under emulation, fails with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance import isa
from conformance.emulation import EmulationError, guest
from conformance.emulation.recorded import prepare, stats
from conformance.results import CheckResult, failed, skipped
from conformance.runtime import threads


def run_emulated(name: str, run: Callable[[Any, Any], CheckResult], subject: Any, parameter: Any) -> CheckResult:
    alias = subject.case.emulated
    try:
        found = guest(alias)
    except EmulationError as exc:
        return failed(name, str(exc), emulated_cpu={"alias": alias})
    unsupported = isa.unsupported_target(str(subject.case.target), found.flags)
    if unsupported:  # openvino-bf16 on a CPU without bf16: it would compile at f32 and claim bf16
        return skipped(name, f"on {alias} ({found.cpu.qemu_model}): {unsupported}")
    if subject.case.encoder is not None:  # say what the long run is doing (a pair's graphs ran in their own cases)
        prepare(subject.artifact, threads(), subject.progress)
    result = run(subject, parameter)
    result.figures["emulated_cpu"] = found.record()
    result.figures["emulation"] = {a.encoder.value: stats(a) for a in subject.artifacts.values() if stats(a)}
    if result.passed:
        cosine = result.figures.get("min_cosine")
        detail = result.message or (f"min cosine {cosine:.6f}" if isinstance(cosine, float) else "passed")
        result.message = f"on {alias} ({found.cpu.qemu_model}, emulated): {detail}"
    return result
