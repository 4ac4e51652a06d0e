"""Every file of another tool's folder: what it was read as (encoder, target, the sibling's recipe), or why it was
not read. bundle_integrity records it and the report lists it, so a file no check looked at is never silent."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conformance.folders.layout import external_files
from conformance.layouts import Layout

MAX_LISTED = 400  # a model repository has a few dozen files; a folder with more is listed this far, then counted


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _graphs(folder: Path, layout: Layout) -> dict[str, str]:
    read: dict[str, str] = {}
    for encoder in layout.encoders:
        for suffix in [None, *layout.siblings]:
            file = layout.file(encoder, suffix)
            if not (folder / file).is_file():
                continue
            recipe = f"{suffix}: {layout.siblings[suffix].recipe}" if suffix else "the fp32 export"
            what = f"{encoder} graph as {layout.target(suffix)} ({recipe})"
            read[file] = f"{read[file]}; {what}" if file in read else what  # Optimum's one graph holds both
            for data in external_files(folder / file):
                read.setdefault(str(Path(file).parent / data), f"external data of {file}")
    return read


def _repeats(folder: Path, layout: Layout) -> dict[str, str]:
    """Siblings of one graph that are byte-identical (transformers.js's `_quantized` is `_int8` for the text graph,
    `_uint8` for the vision graph): the same recipe, checked once more under its other name."""
    found: dict[str, str] = {}
    for encoder in layout.encoders:
        files = [layout.file(encoder, s) for s in layout.siblings if (folder / layout.file(encoder, s)).is_file()]
        sizes = [(folder / f).stat().st_size for f in files]
        first: dict[str, str] = {}
        for file, size in zip(files, sizes, strict=True):
            if sizes.count(size) < 2:
                continue  # only files of one size can be the same bytes: a few hundred MB each are not hashed
            digest = _digest(folder / file)
            if digest in first:
                found[file] = f"byte-identical to {first[digest]}: the same recipe"
            first.setdefault(digest, file)
    return found


def _host(layout: Layout) -> dict[str, str]:
    host = {}
    sub = layout.tokenizer.get("folder", "")
    for name in layout.tokenizer.get("files", []):
        host[str(Path(sub) / name)] = f"tokenizer ({layout.tokenizer.get('library')}): host_tokenizer reads it"
    if layout.preprocessing.get("file"):
        library = layout.preprocessing.get("library")
        host[layout.preprocessing["file"]] = f"image preprocessing ({library}): host_preprocessing reads it"
    if layout.config:
        host[layout.config["file"]] = "the architecture it states: io_contract holds it to --variant"
    if layout.projection:
        host[layout.projection] = "the text projection its host applies: parity applies it"
    return host


def inventory(folder: Path, layout: Layout) -> dict[str, str]:
    """Each file under `folder` (relative path) -> what the suite read it as, or why it did not."""
    read = {**_host(layout), **_graphs(folder, layout)}
    for file, note in _repeats(folder, layout).items():
        read[file] = f"{read[file]}; {note}"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    listed = {}
    for name in files[:MAX_LISTED]:
        if name in read:
            listed[name] = read[name]
        elif name.endswith(".onnx"):
            listed[name] = f"not read: no graph or sibling of layout {layout.name} has this name"
        else:
            listed[name] = f"not read: not a file layout {layout.name} uses"
    if len(files) > MAX_LISTED:
        listed["..."] = f"{len(files) - MAX_LISTED} more files, not listed"
    return listed
