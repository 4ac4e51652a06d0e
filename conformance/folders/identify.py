"""Which layout a folder has: by its file names first, then by its graphs' inputs and outputs.

Names alone mislead: Optimum writes `model.onnx` + `config.json` for every export it makes (a sentence-transformers
export, a vision tower alone), and a folder can be renamed. A folder whose names fit a layout but whose graphs do
not is not that layout's broken export: it fails bundle_integrity with one message (what the layout's graphs take
and give, what these take and give, and which layouts come closest), not io_contract as if it were broken.
A graph that cannot be read does not rule a layout out: bundle_integrity says it is unreadable.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from conformance.graph import graph_inputs, graph_outputs, load_path
from conformance.layouts import SUITE, SUITE_MARKER, Layout, NoLayout, SeveralLayouts, by_names, get, layouts, wants

MAX_SURVEYED = 24  # graphs read to say which layout comes closest (a transformers.js folder ships about 20)


def _io(path: Path) -> tuple[dict[str, str], list[str]] | None:
    """(input name -> dtype, output names) of a graph, through the suite's one cached parse; None if unreadable or
    empty (zero bytes parse as an empty graph): bundle_integrity says so, and nothing identifies a layout by it."""
    try:
        model = load_path(path)
        if not model.graph.input and not model.graph.output:
            return None
        return {s.name: s.elem_type for s in graph_inputs(model)}, [s.name for s in graph_outputs(model)]
    except Exception:  # noqa: BLE001 - unreadable, or an input of no tensor type: the folder check and contract say
        return None


def graph_problems(folder: Path, layout: Layout) -> list[str]:
    """How the layout's graphs present in `folder` differ from what identifies them (empty: they are its): each
    graph's fp32 file, or where the folder lacks it the first sibling it holds (a cache of `_quantized` graphs of
    another model with transformers.js's names is not taken for CLIP's)."""
    problems = []
    for file in layout.files:
        held = [
            layout.sibling(file, s) for s in [None, *layout.siblings] if (folder / layout.sibling(file, s)).is_file()
        ]
        found = _io(folder / held[0]) if held else None
        mismatch = layout.graph_mismatch(file, *found) if found else []
        if found and mismatch:
            takes = ", ".join(f"{n} ({d})" for n, d in found[0].items()) or "nothing"
            problems.append(
                f"{held[0]} takes {takes} and gives {', '.join(found[1]) or 'nothing'}: {', '.join(mismatch)}"
            )
    return problems


def _names(paths: list[Path]) -> set[str]:
    """Every input and output name of the readable graphs among `paths`."""
    found: set[str] = set()
    for path in paths:
        io = _io(path)
        found |= set(io[0]) | set(io[1]) if io else set()
    return found


def _declared(folder: Path, layout: Layout) -> int:
    """How many of the input and output names of the layout's graphs in `folder` the layout declares (the suite's
    own bundles never tie with a layout: each layout's detect_absent names the manifest)."""
    return len(layout.io_names() & _names([folder / f for f in layout.present(folder)]))


def _binds(folder: Path, layout: Layout) -> str:
    """How the layout reads the graphs `folder` holds: their files, contracts and bindings."""
    held = set(layout.present(folder))
    read = [
        (g.file, repr(replace(g, layout="")), repr(layout.contract[g.file])) for g in layout.graphs if g.file in held
    ]
    return repr(sorted(read))


def closest(folder: Path) -> list[str]:
    """The layouts whose graphs' input and output names overlap most with those of the graphs in `folder` (layouts
    whose graphs declare the same names, Optimum's and transformers.js's combined graph, are one entry)."""
    found = _names(sorted(folder.rglob("*.onnx"))[:MAX_SURVEYED])
    alike: dict[frozenset[str], list[str]] = {}
    for name, layout in layouts().items():
        alike.setdefault(frozenset(layout.io_names()), []).append(name)
    scores = []
    for declared, names in alike.items():
        shared = len(declared & found)
        if shared:
            scores.append((-shared / len(declared | found), " or ".join(names), f"{shared} of {len(declared)}"))
    return [f"{name} ({names} of its input/output names)" for _, name, names in sorted(scores)[:2]]


def _not_its_graphs(folder: Path, layout: Layout, problems: list[str]) -> NoLayout:
    near = closest(folder)
    return NoLayout(
        f"{folder} has the file names of layout {layout.name} ({', '.join(layout.detect)}) but not its graphs: "
        f"{'; '.join(problems)}. It is another export than {layout.producer} writes, not checked as a broken one. "
        f"Closest layouts by their graphs' names: {', '.join(near) if near else 'none shares a name'}"
    )


def detect(folder: Path, forced: str | None = None) -> str:
    """The layout of `folder`: `forced` (--layout) if its names and graphs fit, else the one layout whose do. A
    folder that fits none (NoLayout: bundle_integrity fails naming what was looked for, or how the graphs differ)
    or several (SeveralLayouts: --layout chooses) is an error."""
    if forced is not None:
        if forced != SUITE and not get(forced).fits(folder):
            raise NoLayout(f"{folder} does not fit --layout {forced}: it needs {wants(get(forced))}")
        problems = graph_problems(folder, get(forced)) if forced != SUITE else []
        if problems:
            raise _not_its_graphs(folder, get(forced), problems)
        return forced
    named = by_names(folder)
    mismatched = {n: graph_problems(folder, get(n)) for n in named if n != SUITE}
    matched = [n for n in named if not mismatched.get(n)]
    # a layout's companions are read beside it (transformers.js's combined graph beside its split ones): not rivals;
    # and a companion does not stand in for its layout's graphs where those are there but are not its (a broken
    # split graph beside a good combined one fails the folder, as it would alone)
    matched = [n for n in matched if not any(n in get(m).companions for m in matched if m not in (n, SUITE))]
    for name, problems in mismatched.items():
        if problems and any(c in matched for c in get(name).companions):
            raise _not_its_graphs(folder, get(name), problems)
    if len(matched) > 1:  # the one that declares most of the graphs' names (Optimum's zero-shot graph also gives
        # the two embeddings its sentence-transformers export gives alone, and its logits besides)
        declared = {n: _declared(folder, get(n)) for n in matched}
        best = max(declared.values())
        matched = [n for n in matched if declared[n] == best]
        if len({_binds(folder, get(n)) for n in matched}) == 1:  # they read the files present alike (immich's text
            matched = matched[:1]  # graph alone, whose layouts differ in the image graph's pixels only)
        if best == 0:  # unreadable graphs: of the layouts reading the same files, the one binding most graphs in them
            # (Optimum's zero-shot export over a tower alone; its folder check says they cannot be read); layouts
            # reading other files still make the folder ambiguous
            ranked = sorted(matched, key=lambda n: (-len(get(n).graphs), n))
            matched = sorted({tuple(get(n).present(folder)): n for n in reversed(ranked)}.values())
    if len(matched) == 1:
        return matched[0]
    if len(matched) > 1:
        raise SeveralLayouts(f"{folder} fits several layouts ({', '.join(matched)}): pass --layout=NAME to choose one")
    if mismatched:  # the layout whose graphs the folder's come closest to
        name, problems = min(mismatched.items(), key=lambda item: len(item[1]))
        raise _not_its_graphs(folder, get(name), problems)
    looked = "; ".join(f"{n}: {wants(lay)}" for n, lay in layouts().items())
    raise NoLayout(
        f"{folder} fits no known layout ({SUITE_MARKER} is missing: not a bundle made by `python -m conformance "
        f"export`). Looked for: {SUITE}: {SUITE_MARKER}; {looked}. Pass --layout=NAME if the files are renamed"
    )
