"""Rockchip rknn-toolkit2: a private pinned venv, and compile + x86 simulation of an ONNX graph over a subprocess.

rknn-toolkit2 pins torch<=2.4.0, numpy<=1.26.4, onnx<=1.18 and protobuf<=4.25.4, so it cannot be imported next to
the suite; it lives in its own venv (see rknn-requirements.txt) and `rknn_worker.py` runs there. The two sides talk
through files only: a JSON request and an .npz of inputs in, an .npz of outputs and a JSON report out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from conformance import atomic

TOOLCHAIN = "rknn"
RKNN_VERSION = "2.5.0"
REQUIREMENTS = Path(__file__).with_name("rknn-requirements.txt")
WORKER = Path(__file__).with_name("rknn_worker.py")
ROOT_ENV = "CLIP_CONFORMANCE_TOOLCHAINS"
MARKER = "toolchain.json"
MARKER_SCHEMA = "clip-conformance/toolchain/1"
INSTALL_LOG = "install.log"
DEFAULT_TIMEOUT_S = 1800.0
TAIL_LINES = 25
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_REPO = Path(__file__).resolve().parents[2]


class ToolchainError(RuntimeError):
    """The toolchain could not be installed, or its worker failed, timed out or returned no outputs."""


@dataclass(frozen=True)
class Toolchain:
    """An installed, verified rknn venv (its completion marker exists and its python runs)."""

    directory: Path
    python: Path
    version: str
    pins_sha256: str
    size_bytes: int
    install_seconds: float
    packages: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- location


def pins_sha256(requirements: Path = REQUIREMENTS) -> str:
    """The requirements file's hash: any edit to the pins gives a new toolchain folder rather than a mixed venv."""
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def toolchains_root(root: Path | None = None) -> Path:
    """`root`, else $CLIP_CONFORMANCE_TOOLCHAINS, else the checkout's `.cache/toolchains` (ignored by git)."""
    if root is not None:
        return root
    env = os.environ.get(ROOT_ENV)
    return Path(env) if env else _REPO / ".cache" / "toolchains"


def toolchain_dir(root: Path | None = None) -> Path:
    """Where this requirements file's venv lives: `<root>/rknn-<first 12 hex of its sha256>`."""
    return toolchains_root(root) / f"{TOOLCHAIN}-{pins_sha256()[:12]}"


def venv_python(directory: Path) -> Path:
    return directory / "bin" / "python"


# ---------------------------------------------------------------------------------------------------- discovery


def read_marker(directory: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == MARKER_SCHEMA else None


def python_runs(python: Path) -> bool:
    """A venv whose interpreter was removed or moved (venvs embed absolute paths) is as good as absent."""
    try:
        done = subprocess.run([str(python), "-c", "pass"], capture_output=True, timeout=60, env=child_env())
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def find_toolchain(root: Path | None = None) -> Toolchain | None:
    """The installed toolchain, or None: only a folder whose marker (written last by `install`) matches the
    current pins and whose python runs is trusted; a half-made venv has no marker."""
    directory = toolchain_dir(root)
    marker = read_marker(directory)
    python = venv_python(directory)
    if marker is None or marker.get("pins_sha256") != pins_sha256() or not python_runs(python):
        return None
    return Toolchain(
        directory=directory,
        python=python,
        version=str(marker.get("rknn_toolkit2", "")),
        pins_sha256=str(marker["pins_sha256"]),
        size_bytes=int(marker.get("size_bytes", 0)),
        install_seconds=float(marker.get("install_seconds", 0.0)),
        packages=dict(marker.get("packages", {})),
    )


# ---------------------------------------------------------------------------------------------------- install


def folder_size(directory: Path) -> int:
    """Bytes under `directory`, links not followed (what `du` would roughly report)."""
    total = 0
    for base, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    cleaned = [line for line in ANSI.sub("", text).replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(cleaned[-lines:])


def child_env() -> dict[str, str]:
    """The caller's environment minus what would make the venv python import the suite's packages
    (PYTHONPATH, PYTHONHOME, user site-packages) or draw tqdm bars."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    return env


def logged(command: Sequence[str | Path], log: Path, what: str) -> None:
    """Run `command` with its output appended to `log`; a failure raises with the log's last lines."""
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(map(str, command))}\n")
        out.flush()
        code = subprocess.call([str(c) for c in command], stdout=out, stderr=subprocess.STDOUT, env=child_env())
    if code != 0:
        raise ToolchainError(f"{what} failed (exit {code}); the last lines of {log}:\n{tail(log)}")


def installed_packages(python: Path) -> dict[str, str]:
    script = "import importlib.metadata as m, json; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, env=child_env(), timeout=120)
    if done.returncode != 0:
        raise ToolchainError(f"the new venv's python does not run: {done.stderr.strip()[-2000:]}")
    return dict(sorted(json.loads(done.stdout).items(), key=lambda item: item[0].lower()))


def _check_python() -> None:
    if sys.version_info[:2] != (3, 11):
        raise ToolchainError(
            f"the rknn toolchain is pinned for CPython 3.11 (the torch 2.13.0+cpu cp311 wheel); this is "
            f"{sys.version.split()[0]}"
        )


def _install_into(directory: Path, progress: Callable[[str], None]) -> None:
    log = directory / INSTALL_LOG
    progress(f"[{TOOLCHAIN}] creating venv in {directory} ...")
    logged([sys.executable, "-m", "venv", directory], log, "creating the venv")
    progress(f"[{TOOLCHAIN}] pip install (this takes about a minute; log: {log}) ...")
    pip: list[str | Path] = [
        venv_python(directory),
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
    ]
    logged([*pip, "--no-deps", "--only-binary=:all:", "-r", REQUIREMENTS], log, "pip install")


def install(progress: Callable[[str], None], root: Path | None = None, force: bool = False) -> Toolchain:
    """Install (or reuse) the toolchain. The venv is built in place, since venvs embed their absolute path and
    cannot be renamed; the completion marker is written last and atomically, and a folder without it (an
    interrupted install) is removed and rebuilt. A file lock keeps two installs from building the same folder."""
    _check_python()
    directory = toolchain_dir(root)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory.parent / f".{directory.name}.lock")):
        found = None if force else find_toolchain(root)
        if reused(directory, TOOLCHAIN, found, progress):
            assert found is not None
            return found
        start = time.monotonic()
        _install_into(directory, progress)
        return _finish(directory, time.monotonic() - start, progress)


def reused(directory: Path, label: str, found: object | None, progress: Callable[[str], None]) -> bool:
    """Whether the verified install `found` is reused; if not, `directory` is cleared for a fresh build (a folder
    without its marker is an interrupted install, never trusted)."""
    if found is not None:
        progress(f"[{label}] already installed in {directory}")
        return True
    if directory.exists():
        progress(f"[{label}] removing an incomplete or stale install in {directory}")
        shutil.rmtree(directory)
    directory.mkdir()
    return False


def _finish(directory: Path, seconds: float, progress: Callable[[str], None]) -> Toolchain:
    packages = installed_packages(venv_python(directory))
    version = packages.get("rknn-toolkit2") or packages.get("rknn_toolkit2", "")
    if version != RKNN_VERSION:
        raise ToolchainError(f"expected rknn-toolkit2 {RKNN_VERSION} in {directory}, found {version or 'none'}")
    size = folder_size(directory)
    marker = {
        "schema": MARKER_SCHEMA,
        "toolchain": TOOLCHAIN,
        "rknn_toolkit2": version,
        "python": sys.version.split()[0],
        "pins_sha256": pins_sha256(),
        "install_seconds": round(seconds, 1),
        "size_bytes": size,
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "packages": packages,
    }
    atomic.write_json(directory / MARKER, marker)
    progress(f"[{TOOLCHAIN}] installed in {seconds:.0f} s, {size / 1e9:.1f} GB")
    found = find_toolchain(directory.parent)
    if found is None:
        raise ToolchainError(f"{directory} was installed but does not verify (its python does not run)")
    return found
