"""Layouts: how another tool's CLIP export is laid out, as data (conformance/layouts/<name>.toml).

A layout names its graph files, each graph's inputs and the output that is the embedding, the token dtype, the
attention mask and pooling rule, where the projection lives, the host preprocessing and tokenizer files, the whole
I/O contract of each file, and which checks cannot apply to it (with the reason). The suite's own bundles are the
layout "suite", recognised by their manifest. `by_names` lists the layouts whose file names a folder has;
`conformance.folders.identify` holds them to the folder's graphs and picks one, or says what it looked for.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from conformance.case import Profile, Target
from conformance.encoders import EncoderKind
from conformance.layouts import binding as feeding
from conformance.layouts.binding import ANY_OUTPUT, EOT_TOKEN, HOST_READS, PIXELS, GraphBinding, TextRules

__all__ = ["ANY_OUTPUT", "EOT_TOKEN", "GraphBinding", "Layout", "LayoutError", "TextRules", "get", "layouts", "readers"]

SUITE = "suite"  # the suite's own bundles (manifest.json); not a data file: conformance/bundle/ reads those
SUITE_MARKER = "manifest.json"
PAIR = "pair"  # two single-tower folders joined by --pair (layouts/pair.py): not a layout of files
CONTEXT = 77  # CLIP's context length (every variant's)
MASKS = ("none", "through-last-token")
POOLINGS = ("argmax", "first-eot")
NO_TEXT = TextRules("int64", 0, "none", "argmax")  # a layout of image graphs alone feeds no ids


class LayoutError(ValueError):
    """A folder that fits no layout, or several, or a layout file that is malformed; the message says which."""


class NoLayout(LayoutError):
    """A folder that fits no layout: a failing bundle_integrity check, naming what was looked for."""


class SeveralLayouts(LayoutError):
    """A folder that fits more than one layout: a usage error (--layout chooses)."""


@dataclass(frozen=True)
class Sibling:
    """A compiled graph a producer writes beside each fp32 graph, named by a suffix (transformers.js `_uint8`)."""

    suffix: str
    target: Target  # what it is checked as (its budgets): several suffixes may share one (`_quantized`, `_int8`)
    recipe: str  # how the producer makes it, in its own terms: the report prints it


@dataclass(frozen=True)
class Layout:
    name: str
    producer: str
    exporter: str
    reference_library: str | None
    detect: tuple[str, ...]
    detect_absent: tuple[str, ...]
    graphs: tuple[GraphBinding, ...]
    contract: dict[str, dict[str, dict[str, list[Any]]]]  # file -> inputs/outputs -> name -> [dtype, *dims]
    skips: dict[str, str]  # check name -> why it cannot apply to this layout
    tokenizer: dict[str, Any]
    preprocessing: dict[str, Any]
    batch: int | None
    config: dict[str, Any]  # {file, keys: {key path: Variant field}}: what the folder says of the architecture
    logits: dict[str, str]  # {image, text}: the graph's logits outputs, where it gives them (Optimum)
    # file suffix -> the producer's compiled sibling of each graph (transformers.js: "_fp16", "_quantized", "_uint8",
    # "_q4", ...), several to a target: checked where present, against the fp32 graph beside it where that is there
    siblings: dict[str, Sibling]
    projection: str | None = None  # the text projection's side file the host applies (Sophgo's .npy), if any
    # layouts whose graphs the producer writes into the same folder, read beside this one's in the same run
    # (transformers.js: its combined onnx/model*.onnx beside the split graphs)
    companions: tuple[str, ...] = ()

    def fits(self, folder: Path) -> bool:
        """By names: the files `detect` lists that are not graphs (Optimum's config.json), at least one of the
        layout's graphs or their siblings (a cache may hold only `_quantized` ones, or one tower), and nothing of
        `detect_absent`. `folders.identify` then holds the graphs to the layout's."""
        known = set(self.graph_files())
        return (
            all((folder / f).is_file() for f in self.detect if f not in known)
            and bool(self.present(folder))
            and not any((folder / f).exists() for f in self.detect_absent)
        )

    def binding(self, encoder: EncoderKind) -> GraphBinding:
        return next(g for g in self.graphs if g.encoder == encoder)

    @property
    def encoders(self) -> list[EncoderKind]:
        return [g.encoder for g in self.graphs]

    @property
    def files(self) -> list[str]:
        return list(dict.fromkeys(g.file for g in self.graphs))

    def sibling(self, file: str, suffix: str | None) -> str:
        """The file of `file`'s compiled sibling with `suffix` (the file itself, the fp32 export, for None)."""
        if suffix is None:
            return file
        path = Path(file)
        return str(path.with_name(f"{path.stem}{suffix}{path.suffix}"))

    def target(self, suffix: str | None) -> Target:
        """What the sibling with `suffix` is (the fp32 export for None)."""
        return self.siblings[suffix].target if suffix else Target.ONNX

    def graph_files(self) -> list[str]:
        """Every graph file the layout reads: its fp32 graphs, then each one's compiled siblings."""
        return [*self.files, *(self.sibling(f, t) for t in self.siblings for f in self.files)]

    def present(self, folder: Path) -> list[str]:
        """The graph files of `folder` this layout reads: whichever of its fp32 graphs and their siblings it holds (a
        link to nothing too: the folder check says it cannot be read)."""
        return [f for f in self.graph_files() if (folder / f).is_file() or (folder / f).is_symlink()]

    def absent(self, folder: Path) -> list[str]:
        """The fp32 graphs the layout has that `folder` lacks (a cache of `_quantized` graphs alone, one tower)."""
        return [f for f in self.files if not (folder / f).is_file()]

    def forms(self, folder: Path, encoder: EncoderKind | None = None) -> list[str | None]:
        """The fp32 export (None) and each compiled sibling's suffix that `folder` holds for the encoder's graph (with
        no encoder, for any of its graphs: the checks that take the encoders together run on what there is, and
        those that need a graph that is not there skip, naming it)."""
        encoders = [encoder] if encoder else self.encoders
        held = [f for f in [None, *self.siblings] for e in encoders if (folder / self.file(e, f)).is_file()]
        return list(dict.fromkeys(held))

    def file(self, encoder: EncoderKind, suffix: str | None) -> str:
        """The file of the encoder's graph with `suffix` (a compiled sibling's, or for None the fp32 graph's)."""
        return self.sibling(self.binding(encoder).file, suffix)

    def skip_reason(self, check: str) -> str | None:
        return self.skips.get(check)

    def graph_mismatch(self, file: str, inputs: dict[str, str], outputs: list[str]) -> list[str]:
        """How a graph's inputs (name -> dtype) and outputs differ from what identifies `file` of this layout: each
        input its contract requires, of its kind (float or integer: the contract judges the exact dtype), no input
        it does not declare (nothing would feed it), and each output it requires. Empty: the graph is this
        layout's."""
        contract = self.contract[file]
        want = {name.removesuffix("?"): spec[0] for name, spec in contract.get("inputs", {}).items()}
        required = [n for n in contract.get("inputs", {}) if not n.endswith("?")]
        problems = [f"no input {n!r}" for n in required if n not in inputs]
        problems += [f"input {n!r} is {d}, the layout's is {want[n]}" for n, d in inputs.items()
                     if n in want and feeding.dtype_kind(d) != feeding.dtype_kind(want[n])]  # fmt: skip
        problems += [f"an input {n!r} the layout does not feed" for n in inputs if n not in want]
        problems += [
            f"no output {n!r}"
            for n in contract.get("outputs", {})
            if not n.endswith("?") and n not in outputs and (n != ANY_OUTPUT or not outputs)
        ]
        return problems

    def io_names(self) -> set[str]:
        """Every input and output name its graphs' contracts declare: what a folder's graphs are compared with
        when they fit no layout, to say which comes closest."""
        named = {n.removesuffix("?") for c in self.contract.values() for role in c.values() for n in role}
        return named - {ANY_OUTPUT}


def _text_rules(raw: dict[str, Any], where: str) -> TextRules:
    context = raw.get("context")
    rules = TextRules(
        str(raw["dtype"]),
        int(raw["pad_token"]),
        str(raw["mask"]),
        str(raw["pooling"]),
        int(context) if context is not None else None,
    )
    if rules.dtype not in ("int32", "int64") or rules.mask not in MASKS or rules.pooling not in POOLINGS:
        raise LayoutError(f"{where}: [text] {raw} (dtype int32|int64, mask {MASKS}, pooling {POOLINGS})")
    if rules.context is not None and not 2 <= rules.context <= CONTEXT:  # room for the start and end tokens
        raise LayoutError(f"{where}: [text] context {rules.context}: from 2 to CLIP's {CONTEXT} ids")
    return rules


def _parse(name: str, raw: dict[str, Any]) -> Layout:
    where = f"conformance/layouts/{name}.toml"
    try:
        text = _text_rules(raw["text"], where) if "text" in raw else NO_TEXT
        if "text" not in raw and any(g["encoder"] != EncoderKind.IMAGE for g in raw["graphs"]):
            raise LayoutError(f"{where}: a text graph needs [text] (how its ids are fed)")
        batch = raw.get("batch")
        graphs = tuple(
            GraphBinding(
                name,
                EncoderKind(g["encoder"]),
                g["file"],
                g["output"],
                bool(g["normalized"]),
                dict(g["inputs"]),
                text,
                batch,
                feeding.to_longest(raw["contract"].get(g["file"], {}), g["inputs"].get("tokens")),
                bool(g.get("projected", True)),
                str(g.get("pixels", PIXELS[0])),
                str(g.get("host_reads", HOST_READS[0])),
            )
            for g in raw["graphs"]
        )
        layout = Layout(
            name=name,
            producer=raw["producer"],
            exporter=raw["exporter"],
            reference_library=raw.get("reference_library"),
            detect=tuple(raw["detect"]),
            detect_absent=tuple(raw.get("detect_absent", ())),
            graphs=graphs,
            contract=raw["contract"],
            skips=dict(raw.get("skips", {})),
            tokenizer=dict(raw.get("tokenizer", {})),
            preprocessing=dict(raw.get("preprocessing", {})),
            batch=int(batch) if batch is not None else None,
            config=dict(raw.get("config", {})),
            logits=dict(raw.get("logits", {})),
            siblings={k: Sibling(k, Target(v["target"]), str(v["recipe"])) for k, v in raw.get("siblings", {}).items()},
            projection=raw.get("projection"),
            companions=tuple(raw.get("companions", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LayoutError(f"{where} is malformed: {type(exc).__name__}: {exc}") from None
    targets = [s.target for s in layout.siblings.values()]
    if not all(t.compiled and t.runtime == "onnxruntime" and t.profile == Profile.DYNAMIC for t in targets):
        raise LayoutError(f"{where}: [siblings] {sorted(map(str, targets))}: only onnxruntime compile targets")
    missing = [g.file for g in graphs if g.file not in layout.contract]
    if missing:
        raise LayoutError(f"{where}: no [contract] for {missing}")
    if text.context is not None and any(g.encoder == EncoderKind.TEXT_SPLIT for g in graphs):
        raise LayoutError(f"{where}: a host context applies to pooled text graphs, not to hidden states (text-split)")
    for g in graphs:
        if g.host_reads not in HOST_READS or (g.output == ANY_OUTPUT and g.host_reads != "only"):
            raise LayoutError(
                f"{where}: graph {g.file}: host_reads is one of {HOST_READS}; output {ANY_OUTPUT!r} needs 'only'"
            )
        if ((not g.projected or g.pixels != PIXELS[0]) and g.encoder != EncoderKind.IMAGE) or g.pixels not in PIXELS:
            raise LayoutError(f"{where}: graph {g.file}: projected and pixels ({PIXELS}) apply to image graphs")
        roles = set(g.inputs)
        needed = {"pixels" if g.encoder == EncoderKind.IMAGE else "tokens"}
        masked = "tokens" in roles and (text.mask != "none")  # a graph that takes ids takes the mask [text] builds
        if not needed <= roles <= {"pixels", "tokens", "mask"} or ("mask" in roles) != masked:
            raise LayoutError(
                f"{where}: graph {g.file} ({g.encoder}) has input roles {sorted(roles)}: it needs "
                f"{sorted(needed)}, among pixels/tokens/mask, and a mask just when it takes ids and [text] builds one"
            )
    return layout


@cache
def layouts() -> dict[str, Layout]:
    """Every layout file shipped in conformance/layouts/, by name."""
    found = {}
    for entry in resources.files("conformance.layouts").iterdir():
        if entry.name.endswith(".toml"):
            name = entry.name.removesuffix(".toml")
            found[name] = _parse(name, tomllib.loads(entry.read_text(encoding="utf-8")))
    for layout in found.values():  # a companion is another layout, with no companions of its own
        if any(c not in found or c == layout.name or found[c].companions for c in layout.companions):
            raise LayoutError(f"conformance/layouts/{layout.name}.toml: companions {layout.companions}: other layouts")
    return dict(sorted(found.items()))


def names() -> list[str]:
    return [SUITE, *layouts()]


def get(name: str) -> Layout:
    try:
        return layouts()[name]
    except KeyError:
        raise LayoutError(f"unknown layout {name!r}; choose from {', '.join(names())}") from None


def by_names(folder: Path) -> list[str]:
    """The layouts whose file names `folder` has (the suite's first, by its manifest); `folders.identify` then
    holds each to its graphs."""
    return [SUITE] * (folder / SUITE_MARKER).is_file() + [n for n, lay in layouts().items() if lay.fits(folder)]


def readers(folder: Path, layout: Layout) -> list[Layout]:
    """The layouts `folder` is read through: `layout`, then each of its companions whose names the folder has."""
    return [layout, *(get(name) for name in layout.companions if get(name).fits(folder))]


def wants(layout: Layout) -> str:
    absent = f" and no {', '.join(layout.detect_absent)}" if layout.detect_absent else ""
    return f"{', '.join(layout.detect)}{absent}"
