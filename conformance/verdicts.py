"""Passed verdicts kept by everything that decided them, so that a run on unchanged inputs need not check again.

A check's row in the registry says what its verdict depends on (`Reuse`):
  GRAPH    the graph's bytes and the rest of its folder, the weights it is compared with, the suite's code and
           data files, the options that change a check, and every installed distribution's version;
  MACHINE  all that, and the machine that ran it (fixtures/reuse.py's `machine`: every /proc/cpuinfo line of the
           first CPU, torch's kernel level, the thread count), since it ran the graph and compared what came out;
  NEVER    a measurement (latency), a folder before anything in it is trusted, or code outside this environment.
The key is a SHA-256 over all of it (`Key`); only a passed verdict is stored, so a failure is always checked
again and a changed input always runs the check. A stored verdict is a small JSON file, written atomically; one
that cannot be read is a miss.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock

from conformance import atomic
from conformance.results import CheckResult, Status

SCHEMA = "clip-conformance-verdict/1"
SUITE_ROOT = Path(__file__).resolve().parent.parent
# The suite's code and data files: the checks, the helpers they import, tolerances, ISA tables, profiles, layouts,
# limits, expected failures, and the plugin that feeds them. Any change in any of them is a change in every key.
CODE = ("conformance", "fixtures", "conftest.py", "pytest_clip_conformance.py", "pytest.ini", "pyproject.toml")


class Reuse(StrEnum):
    GRAPH = "graph"
    MACHINE = "machine"
    NEVER = "never"


def _plain(value: object) -> object:
    """JSON for what json cannot write: a set in sorted order (its own order changes with PYTHONHASHSEED)."""
    return sorted(map(str, value)) if isinstance(value, set | frozenset) else str(value)


def _sha256(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=_plain).encode()).hexdigest()


def tree_digest(root: Path, names: tuple[str, ...]) -> str:
    """Every file under `root`/name (recursively, bytecode caches aside), by path and content."""
    digest = hashlib.sha256()
    for name in names:
        base = root / name
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base] * base.is_file()
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def code_digest() -> str:
    return tree_digest(SUITE_ROOT, CODE)


@cache
def distributions_digest() -> str:
    """Python's version and every installed distribution's name and version: torch, onnx, onnxruntime, OpenVINO,
    numpy, hypothesis, ..., whatever a check or its reference imports."""
    found = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"]})
    return _sha256([sys.version, *found])


@dataclass
class FileDigests:
    """SHA-256 of files, remembered by (device, inode, size, mtime, ctime): any write changes ctime, which no
    user-level call can set back, so a file rewritten with its old mtime (`touch -r`) is read and hashed again."""

    path: Path | None = None
    known: dict[str, str] = field(default_factory=dict)
    added: int = 0  # hashed by this process: nothing to save without them (xdist's controller hashes none)

    @classmethod
    def load(cls, path: Path) -> FileDigests:
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        return cls(path, known if isinstance(known, dict) else {})

    def of(self, file: Path) -> str:
        stamp = _stamp(str(file.resolve()))
        if stamp not in self.known:
            with file.open("rb") as handle:
                self.known[stamp] = hashlib.file_digest(handle, "sha256").hexdigest()
            self.added += 1
        return self.known[stamp]

    def folder(self, folder: Path) -> dict[str, str]:
        """Every file of a folder and its subfolders, by relative path."""
        files = sorted(p for p in folder.rglob("*") if p.is_file() and ".tmp-" not in p.name)  # atomic's temps
        return {str(p.relative_to(folder)): self.of(p) for p in files}

    def save(self) -> None:
        """Merge with what other processes (xdist's workers) saved meanwhile, keep only the stamps that still
        describe their file, and write. Unwritable: the next run hashes again."""
        if self.path is None or not self.added:
            return
        try:
            with FileLock(self.path.with_name(self.path.name + ".lock")):
                merged = {**FileDigests.load(self.path).known, **self.known}
                atomic.write_json(self.path, {k: v for k, v in merged.items() if _current(k)})
        except OSError:
            pass


def _stamp(path: str) -> str:
    """What a file's digest is remembered by; os.stat's OSError for a file that is gone."""
    st = os.stat(path)
    return f"{path}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


def _current(stamp: str) -> bool:
    try:
        return _stamp(stamp.rsplit("|", 5)[0]) == stamp
    except OSError:
        return False


@dataclass(frozen=True)
class Key:
    """What decides one verdict. `machine` is empty for a GRAPH check."""

    check: str
    parameter: str
    case: dict[str, Any]
    files: dict[str, dict[str, str]]  # folder -> its files' digests (the graphs, their data, manifests, npy)
    reference: dict[str, Any]  # the weights a check compares with, by content
    options: dict[str, Any]
    machine: dict[str, Any]
    code: str = field(default_factory=code_digest)
    distributions: str = field(default_factory=distributions_digest)

    @property
    def digest(self) -> str:
        return _sha256([SCHEMA, self.__dict__])


class VerdictStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: Key) -> Path:
        digest = key.digest
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, key: Key) -> CheckResult | None:
        """The stored pass, its `reused_from` saying when it was checked; None for anything else."""
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("schema") != SCHEMA or data["result"]["status"] != Status.PASSED:
                return None
            stored = data["result"]
            return CheckResult(
                key.check, Status.PASSED, str(stored["message"]), dict(stored["figures"]), data["recorded"]
            )
        except (OSError, ValueError, KeyError, TypeError):  # absent, half-written by a crash, or tampered with
            return None

    def put(self, key: Key, result: CheckResult) -> None:
        if result.status != Status.PASSED:
            return  # a failure or a skip is always checked again
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        record = {"schema": SCHEMA, "recorded": now, "pid": os.getpid(), "result": result.to_dict()}
        try:
            atomic.write_json(self._path(key), record)  # write_text makes the folder
        except OSError:
            pass  # a read-only cache only costs the next run its time
