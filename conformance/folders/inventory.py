"""Every file of another tool's folder: what it was read as (encoder, target, the sibling's recipe), or why it was
not read. bundle_integrity records it and the report lists it, so a file no check looked at is never silent."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conformance.folders.layout import external_files
from conformance.layouts import Layout

MAX_LISTED = 400  # a model repository has a few dozen files; a folder with more is listed this far, then counted


def _digest(path: Path) -> str | None:
    sha = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    except OSError:  # unreadable: the folder check says so where it reads the graph
        return None
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


def repeats(folder: Path, layout: Layout) -> dict[str, tuple[str, bool]]:
    """Siblings of one graph that are byte-identical to an earlier one: file -> (that file, whether the layout reads
    both as one target). transformers.js's `_quantized` is its `_int8` for the text graph and its `_uint8` for the
    vision graph: one recipe under two names. Two targets in the same bytes (a `_q4f16` that is the `_q4`) mean one
    of them is not what its name says."""
    found: dict[str, tuple[str, bool]] = {}
    for encoder in layout.encoders:
        suffixes = [s for s in layout.siblings if (folder / layout.file(encoder, s)).is_file()]
        sizes = [(folder / layout.file(encoder, s)).stat().st_size for s in suffixes]
        first: dict[str, str] = {}
        for suffix, size in zip(suffixes, sizes, strict=True):
            if size == 0 or sizes.count(size) < 2:
                continue  # only files of one size can be the same bytes: a few hundred MB each are not hashed
            file, digest = layout.file(encoder, suffix), _digest(folder / layout.file(encoder, suffix))
            if digest is None:
                continue
            if digest in first:
                earlier = first[digest]
                same = layout.siblings[suffix].target == layout.siblings[earlier].target
                found[file] = (layout.file(encoder, earlier), same)
            first.setdefault(digest, suffix)
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


def inventory(
    folder: Path, read_by: list[Layout], repeated: dict[str, tuple[str, bool]] | None = None
) -> dict[str, str]:
    """Each file under `folder` (relative path) -> what the suite read it as, or why it did not. `read_by`: the
    folder's layout and the companions read beside it (a file is what the first that reads it reads it as);
    `repeated`: what `repeats` found, where the caller has it already."""
    read: dict[str, str] = {}
    for layout in reversed(read_by):
        read |= _host(layout) | _graphs(folder, layout)
    if repeated is None:
        repeated = {file: found for layout in read_by for file, found in repeats(folder, layout).items()}
    for file, (earlier, same) in repeated.items():
        note = "the same recipe" if same else "another target: one of them is not what its name says"
        read[file] = f"{read[file]}; byte-identical to {earlier}: {note}"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    names = " or ".join(layout.name for layout in read_by)
    listed = {}
    for name in files[:MAX_LISTED]:
        if not (folder / name).exists():
            listed[name] = "not read: a link to nothing (an interrupted download or a pruned cache)"
        elif name in read:
            listed[name] = read[name]
        elif name.endswith(".onnx"):
            listed[name] = f"not read: no graph or sibling of layout {names} has this name"
        else:
            listed[name] = f"not read: not a file layout {names} uses"
    if len(files) > MAX_LISTED:
        listed["..."] = f"{len(files) - MAX_LISTED} more files, not listed"
    return listed
