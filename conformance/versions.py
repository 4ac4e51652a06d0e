"""Versions of everything that changes an export or a measurement."""

from __future__ import annotations

import os
import platform
from functools import cache
from importlib import metadata


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
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_mhz() -> float | None:
    value = _cpuinfo_field("cpu MHz")
    return float(value) if value else None


def cpu_flags() -> frozenset[str]:
    return frozenset((_cpuinfo_field("flags") or "").split())


def thread_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@cache
def environment() -> dict[str, object]:
    return {
        **toolchain(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "threads": thread_count(),
    }
