"""CPUs the suite does not have, emulated: `--emulate-cpu=ALIAS` runs a compiled graph's precision-sensitive checks a
second time under `qemu-x86_64 -cpu MODEL` (conformance/emulation.toml), so that an int8 graph that saturates on
CPUs without VNNI fails before it ships to them.

This module is the host's side: the table of aliases, qemu's discovery, and the probe that makes sure the guest is
the CPU its row claims (its CPUID flags, read inside the guest by worker.py). `recorded.py` runs the graphs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from conformance.emulation import canary
from conformance.tolerances import data_file

INSTALL_LINE = "apt-get install qemu-user"  # Debian's package: QEMU 7.2's user-mode emulator, qemu-x86_64
QEMU_ENV = "CLIP_CONFORMANCE_QEMU"  # the emulator's path, where it is not `qemu-x86_64` on PATH
WORKER = Path(__file__).resolve().parent / "worker.py"
PROBE_TIMEOUT_S = 300.0


class EmulationError(RuntimeError):
    """An alias outside the table, no qemu, a guest that is not the CPU it claims, or a worker that failed."""


@dataclass(frozen=True)
class EmulatedCpu:
    alias: str
    qemu_model: str
    has: tuple[str, ...]
    lacks: tuple[str, ...]
    reason: str
    int8_saturates: bool  # its u8 x s8 kernels add pairs in 16 bits (no VNNI): the canary's saturated answer


@dataclass(frozen=True)
class Guest:
    """The guest as its own CPUID reported it, inside the emulation."""

    cpu: EmulatedCpu
    qemu_version: str
    flags: tuple[str, ...]
    vendor: str
    numpy_features: dict[str, bool]
    int8_canary: int  # canary.py's MatMulInteger as the guest computed it

    def record(self) -> dict[str, Any]:
        """What results.json and the report show beside the host's CPU."""
        return {
            "alias": self.cpu.alias,
            "qemu_model": self.cpu.qemu_model,
            "qemu_version": self.qemu_version,
            "guest_flags": " ".join(self.flags),
            "guest_vendor": self.vendor,
            "int8_canary": f"{self.int8_canary} (exact {canary.EXACT}, saturated {canary.SATURATED})",
            "reason": self.cpu.reason,
        }


def table(data: dict[str, Any] | None = None) -> dict[str, EmulatedCpu]:
    rows = (data if data is not None else data_file("emulation.toml"))["cpu"]
    return {
        alias: EmulatedCpu(
            alias,
            str(r["qemu"]),
            tuple(r["has"]),
            tuple(r.get("lacks", ())),
            str(r["reason"]),
            bool(r.get("int8_saturates", False)),
        )
        for alias, r in rows.items()
    }


def resolve(alias: str, data: dict[str, Any] | None = None) -> EmulatedCpu:
    known = table(data)
    if alias not in known:
        raise EmulationError(
            f"--emulate-cpu {alias!r} is not in conformance/emulation.toml; choose from "
            + ", ".join(f"{a} ({c.qemu_model})" for a, c in known.items())
            + " (QEMU's TCG emulates no AVX-512, so no AVX-512 CPU can be listed)"
        )
    return known[alias]


def qemu_binary() -> Path:
    """qemu-x86_64, or an error that says how to install it: a run that asks for emulation must not skip it."""
    named = os.environ.get(QEMU_ENV)
    found = named if named and Path(named).is_file() else (None if named else shutil.which("qemu-x86_64"))
    if found is None:
        where = f"{QEMU_ENV}={named} is not a file" if named else "qemu-x86_64 is not on PATH"
        raise EmulationError(f"--emulate-cpu needs qemu-user's qemu-x86_64, and {where}: {INSTALL_LINE}")
    return Path(found)


@cache
def qemu_version(binary: Path) -> str:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmulationError(f"{binary} --version failed: {exc}") from None
    match = re.search(r"version (\S+)", out.stdout)
    if out.returncode != 0 or match is None:
        raise EmulationError(f"{binary} is not a working qemu-x86_64: {(out.stderr or out.stdout).strip()[:200]}")
    return match.group(1)


def command(binary: Path, cpu: EmulatedCpu, request: Path) -> list[str]:
    """The venv's interpreter started directly under qemu (sys.prefix is then the venv and its .pth files load);
    the worker runs as a script whose folder holds only itself and cpuid.py."""
    return [str(binary), "-cpu", cpu.qemu_model, sys.executable, "-u", str(WORKER), str(request)]


def quiet(stderr: str) -> str:
    """qemu's stderr without its warnings about CPUID features TCG does not emulate (noise on every start)."""
    return "\n".join(line for line in stderr.splitlines() if "TCG doesn't support requested feature" not in line)


def run_worker(cpu: EmulatedCpu, request: dict[str, Any], folder: Path, timeout_s: float) -> dict[str, Any]:
    """Run the worker on one request in `folder`; its report, or an EmulationError with the worker's reason."""
    binary = qemu_binary()
    path = folder / "request.json"
    path.write_text(json.dumps({"report": "report.json", **request}), encoding="utf-8")
    try:
        done = subprocess.run(
            command(binary, cpu, path), capture_output=True, text=True, timeout=timeout_s, check=False, cwd=folder
        )
    except subprocess.TimeoutExpired:
        raise EmulationError(f"the worker under {cpu.alias} ({cpu.qemu_model}) ran past {timeout_s:.0f} s") from None
    except OSError as exc:  # not executable, another architecture's binary, ...
        raise EmulationError(f"{binary} could not be started: {exc}") from None
    try:
        report: dict[str, Any] = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tail = quiet(done.stderr).strip().splitlines()[-3:]
        raise EmulationError(
            f"the worker under {cpu.alias} ({cpu.qemu_model}) died (exit {done.returncode}) without a report"
            + (f": {' / '.join(tail)}" if tail else "")
        ) from None
    if report.get("error"):
        raise EmulationError(f"under {cpu.alias} ({cpu.qemu_model}): {report['error']}")
    return report


def mismatch(cpu: EmulatedCpu, flags: set[str]) -> str | None:
    """Why a guest is not the CPU its row claims, or None."""
    missing = sorted(set(cpu.has) - flags)
    extra = sorted(set(cpu.lacks) & flags)
    if not missing and not extra:
        return None
    parts = [f"lacks {', '.join(missing)}" if missing else "", f"has {', '.join(extra)}" if extra else ""]
    return (
        f"--emulate-cpu {cpu.alias} refused: qemu's {cpu.qemu_model} guest {' and '.join(p for p in parts if p)} by "
        f"its own CPUID (it shows {', '.join(sorted(flags)) or 'none of the flags'}), so it is not the CPU "
        "conformance/emulation.toml says; QEMU's TCG emulates no AVX-512 and runs such models as AVX2"
    )


# numpy's names for the flags it reads from CPUID itself: a second reader the worker's must agree with.
NUMPY_NAMES = {"avx": "AVX", "avx2": "AVX2", "fma": "FMA3", "avx512f": "AVX512F", "avx512_vnni": "AVX512VNNI"}


def readers_disagree(flags: set[str], numpy_features: dict[str, bool]) -> str | None:
    wrong = [f for f, n in NUMPY_NAMES.items() if n in numpy_features and (f in flags) != numpy_features[n]]
    if not wrong:
        return None
    return f"the worker's CPUID reader and numpy's disagree on {', '.join(wrong)}: neither can be trusted here"


def canary_problem(cpu: EmulatedCpu, answer: int) -> str | None:
    """Why the guest's int8 arithmetic is not its row's, or None."""
    expected = canary.SATURATED if cpu.int8_saturates else canary.EXACT
    if answer == expected:
        return None
    return (
        f"--emulate-cpu {cpu.alias} refused: the guest computed the int8 canary (canary.py) as {answer}, where a CPU "
        f"{'without' if cpu.int8_saturates else 'with'} VNNI gives {expected} (exact {canary.EXACT}): its int8 "
        "arithmetic is not the CPU conformance/emulation.toml says"
    )


def probe(cpu: EmulatedCpu) -> Guest:
    """Start the guest, read its CPUID inside it, run the int8 canary there, and refuse it unless both are what
    its row claims."""
    binary = qemu_binary()
    with tempfile.TemporaryDirectory(prefix="clip-emulate-") as scratch:
        folder = Path(scratch)
        request = {
            "probe": True,
            "canary": str(canary.write_canary(folder / "canary.onnx")),
            "canary_shape": list(canary.canary_input().shape),
            "canary_value": canary.ACTIVATION,
        }
        report = run_worker(cpu, request, folder, PROBE_TIMEOUT_S)
    flags = set(report["flags"])
    why = readers_disagree(flags, report["numpy_features"]) or mismatch(cpu, flags)
    why = why or canary_problem(cpu, int(report["canary"]))
    if why:
        raise EmulationError(why)
    return Guest(
        cpu,
        qemu_version(binary),
        tuple(sorted(flags)),
        str(report["vendor"]),
        report["numpy_features"],
        int(report["canary"]),
    )


_GUESTS: dict[str, Guest | str] = {}


def guest(alias: str) -> Guest:
    """The probed guest of an alias, probed once per process; a refusal is remembered and raised again."""
    if alias not in _GUESTS:
        try:
            _GUESTS[alias] = probe(resolve(alias))
        except EmulationError as exc:
            _GUESTS[alias] = str(exc)
    found = _GUESTS[alias]
    if isinstance(found, str):
        raise EmulationError(found)
    return found
