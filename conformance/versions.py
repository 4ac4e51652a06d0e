"""Versions of everything that changes an export or a measurement."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterable
from functools import cache
from importlib import metadata

from conformance.tolerances import data_file


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@cache
def toolchain() -> dict[str, str]:
    return {
        name: version_of(dist)
        for name, dist in (
            ("torch", "torch"),
            ("torchvision", "torchvision"),
            ("onnx", "onnx"),
            ("onnxruntime", "onnxruntime"),
            ("onnxscript", "onnxscript"),
            ("clip", "openai-clip"),
            ("numpy", "numpy"),
        )
    }


def cpu_model() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_mhz() -> float | None:
    value = cpuinfo_field("cpu MHz")
    return float(value) if value else None


def cpu_flags() -> frozenset[str]:
    return frozenset((cpuinfo_field("flags") or "").split())


def recorded_flags(flags: Iterable[str] | None = None) -> list[str]:
    """The CPU flags that matter to this suite (conformance/isa.toml `recorded`, in its order) that this CPU, or
    `flags`, has: what the environment header, results.json and the report show."""
    have = set(cpu_flags() if flags is None else flags)
    return [flag for flag in data_file("isa.toml")["recorded"] if flag in have]


def machine_fingerprint(threads: int) -> dict[str, object]:
    """What a latency baseline is keyed on: the CPU (model name, family and model number), the ISA flags that
    matter, and the thread count the graphs ran with."""
    return {
        "cpu": cpu_model(),
        "family": cpuinfo_field("cpu family"),
        "model": cpuinfo_field("model"),
        "isa": recorded_flags(),
        "threads": threads,
    }


def fingerprint_slug(fingerprint: dict[str, object]) -> str:
    """A folder name for a fingerprint, readable and unique to it (`.benchmarks/<machine>/` as pytest-benchmark
    lays baselines out, but naming the CPU): AMD-EPYC-f26m2-avx2.fma.avx512f...-2t."""
    cpu = re.sub(r"[^A-Za-z0-9]+", "-", str(fingerprint.get("cpu", "unknown"))).strip("-") or "unknown"
    flags = fingerprint.get("isa") or []
    isa = (".".join(str(f) for f in flags) if isinstance(flags, list | tuple) else str(flags)) or "noisa"
    return f"{cpu}-f{fingerprint.get('family')}m{fingerprint.get('model')}-{isa}-{fingerprint.get('threads')}t"


def thread_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@cache
def environment() -> dict[str, object]:
    return {
        **toolchain(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_family": cpuinfo_field("cpu family"),
        "cpu_model_number": cpuinfo_field("model"),
        "cpu_isa": " ".join(recorded_flags()) or "none of the recorded flags",
        "threads": thread_count(),
    }
