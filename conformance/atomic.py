"""Atomic writes: a temp path next to the target, then a rename, so no reader ever trusts a half-written file."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temp_sibling(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_text(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def write_json(target: Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def staged_directory(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temp folder; on success it becomes `target` in one rename, on failure it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    tmp.mkdir()
    try:
        yield tmp
        if replace and target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class DocumentError(ValueError):
    """A JSON document that is unreadable or of another schema version."""


def read_document(path: Path, schema: str, also: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object whose `schema` key equals `schema` (results.json, manifest.json), or one of the earlier
    versions in `also` that this suite still reads."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DocumentError(f"{path} is not valid JSON: {type(exc).__name__}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") not in (schema, *also):
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise DocumentError(f"{path} has schema {found!r}, expected {schema!r}{_older(found, schema)}")
    return doc


def _older(found: object, schema: str) -> str:
    """Why an earlier version of the same document is refused, and what to do about it."""
    name = schema.rpartition("/")[0]
    if not isinstance(found, str) or not found.startswith(f"{name}/") or found == schema:
        return ""
    return (
        f": written by an older version of this suite ({found}), whose records lack the case axes "
        "(precision, target, shape profile); make it again with this version"
    )
