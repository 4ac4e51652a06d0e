"""Layouts: how another tool's CLIP export is laid out, as data (conformance/layouts/<name>.toml).

A layout names its graph files, each graph's inputs and the output that is the embedding, the token dtype, the
attention mask and pooling rule, where the projection lives, the host preprocessing and tokenizer files, the whole
I/O contract of each file, and which checks cannot apply to it (with the reason). The suite's own bundles are the
layout "suite", recognised by their manifest. `detect` picks the layout that fits a folder, or says what it
looked for.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from conformance.case import Profile, Target
from conformance.encoders import EncoderKind

SUITE = "suite"  # the suite's own bundles (manifest.json); not a data file: conformance/bundle/ reads those
SUITE_MARKER = "manifest.json"
EOT_TOKEN = 49407  # <|endoftext|>, the largest id of CLIP's vocabulary
CONTEXT = 77  # CLIP's context length (every variant's)
MASKS = ("none", "through-last-token")
POOLINGS = ("argmax", "first-eot")


class LayoutError(ValueError):
    """A folder that fits no layout, or several, or a layout file that is malformed; the message says which."""


class NoLayout(LayoutError):
    """A folder that fits no layout: a failing bundle_integrity check, naming what was looked for."""


class SeveralLayouts(LayoutError):
    """A folder that fits more than one layout: a usage error (--layout chooses)."""


@dataclass(frozen=True)
class TextRules:
    dtype: str  # the token ids' dtype the layout's text graph takes
    pad_token: int  # what fills the context after the first EOT (clip.tokenize: 0; HF's openai config: 49407)
    mask: str  # how the attention mask is built, or "none" (no mask input)
    pooling: str  # which position the text graph pools: the argmax of the ids, or the first EOT
    context: int | None = None  # the host's sequence length, where it feeds fewer than CLIP's 77 (Rockchip's zoo: 20)


@dataclass(frozen=True)
class GraphBinding:
    """One embedding a layout's graph gives: which file, which output, and how the suite's canonical inputs
    (float32 images [N, 3, R, R]; `clip.tokenize` ids, 0-padded) are fed to it."""

    layout: str
    encoder: EncoderKind
    file: str
    output: str
    normalized: bool  # the output is L2-normalised (the reference is normalised the same way)
    inputs: dict[str, str]  # role (pixels, tokens, mask) -> input name
    text: TextRules
    batch: int | None  # a batch the producer fixes (None: a symbolic batch axis)

    @property
    def input_name(self) -> str:
        return self.inputs["pixels" if self.encoder == EncoderKind.IMAGE else "tokens"]

    def fitted(self, tokens: np.ndarray) -> np.ndarray:
        """`clip.tokenize` ids as they fit the host's sequence length, still `tokens`' width (0-padded), so that the
        reference sees what the graph sees: a text longer than the context ends in the EOT at its last position, as
        a tokenizer truncates (clip's model on those ids equals it on the shorter context: its mask is causal)."""
        context = self.text.context
        if context is None or context >= tokens.shape[1] or self.encoder == EncoderKind.IMAGE:
            return tokens
        fitted = np.zeros_like(tokens)
        fitted[:, :context] = tokens[:, :context]
        cut = (tokens[:, context:] != 0).any(axis=1)
        fitted[cut, context - 1] = EOT_TOKEN
        return fitted

    def host_tokens(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`clip.tokenize` ids as this layout's host feeds them: the same ids (a text holding `<|endoftext|>` keeps
        what follows it, as a tokenizer does), the layout's padding token where clip pads with 0, and the
        attention mask a tokenizer builds (1 through the last real token). A graph that pools where the mask
        ends, not at the first EOT, then differs from the reference on such texts."""
        positions = np.arange(tokens.shape[1])[None, :]
        nonzero = tokens != 0
        last = np.where(nonzero.any(axis=1), tokens.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1), 0)
        mask = (positions <= last[:, None]).astype(np.int64)
        return np.where(mask == 1, tokens, self.text.pad_token).astype(tokens.dtype), mask

    def feeds(self, array: np.ndarray, resolution: int) -> dict[str, np.ndarray]:
        """Every input the graph takes, by name: `array` on this embedding's input, and for a graph that holds
        both towers, one neutral item of the other (a black image, an empty text), whose outputs are ignored."""
        if self.encoder == EncoderKind.IMAGE:
            pixels, tokens = array, np.array([[EOT_TOKEN - 1, EOT_TOKEN] + [0] * 75], dtype=np.int64)
        else:
            pixels, tokens = np.zeros((1, 3, resolution, resolution), np.float32), array
        host, mask = self.host_tokens(self.fitted(tokens))
        if self.text.context is not None:  # the host feeds its own sequence length
            host, mask = host[:, : self.text.context], mask[:, : self.text.context]
        by_role = {"pixels": pixels, "tokens": host, "mask": mask}
        return {name: by_role[role] for role, name in self.inputs.items()}


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
    # compile target -> the suffix of the producer's compiled sibling of each graph (transformers.js: "_fp16" for
    # fp16, "_quantized" for int8-dynamic): checked where present, against the fp32 graph beside it
    siblings: dict[Target, str]
    projection: str | None = None  # the text projection's side file the host applies (Sophgo's .npy), if any

    def fits(self, folder: Path) -> bool:
        return all((folder / f).is_file() for f in self.detect) and not any(
            (folder / f).exists() for f in self.detect_absent
        )

    def binding(self, encoder: EncoderKind) -> GraphBinding:
        return next(g for g in self.graphs if g.encoder == encoder)

    @property
    def encoders(self) -> list[EncoderKind]:
        return [g.encoder for g in self.graphs]

    @property
    def files(self) -> list[str]:
        return list(dict.fromkeys(g.file for g in self.graphs))

    def sibling(self, file: str, target: Target) -> str:
        """The file of `file`'s compiled sibling for `target` (the file itself for the fp32 export)."""
        if target == Target.ONNX:
            return file
        path = Path(file)
        return str(path.with_name(f"{path.stem}{self.siblings[target]}{path.suffix}"))

    def present(self, folder: Path) -> list[str]:
        """The graph files of `folder` this layout reads: its fp32 graphs and each compiled sibling beside them."""
        found = [self.sibling(f, t) for t in self.siblings for f in self.files]
        return [*self.files, *(f for f in found if (folder / f).is_file())]

    def targets(self, folder: Path, encoder: EncoderKind | None = None) -> list[Target]:
        """The fp32 export, and each compiled sibling present in `folder` for the encoder's graph (for every graph of
        the layout, with no encoder: the checks that take the encoders together)."""
        files = [self.binding(encoder).file] if encoder else self.files
        present = [t for t in self.siblings if all((folder / self.sibling(f, t)).is_file() for f in files)]
        return [Target.ONNX, *present]

    def skip_reason(self, check: str) -> str | None:
        return self.skips.get(check)


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
        text = _text_rules(raw["text"], where)
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
            siblings={Target(t): str(suffix) for t, suffix in raw.get("siblings", {}).items()},
            projection=raw.get("projection"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LayoutError(f"{where} is malformed: {type(exc).__name__}: {exc}") from None
    if not all(t.compiled and t.runtime == "onnxruntime" and t.profile == Profile.DYNAMIC for t in layout.siblings):
        raise LayoutError(f"{where}: [siblings] {sorted(layout.siblings)}: only onnxruntime compile targets")
    missing = [g.file for g in graphs if g.file not in layout.contract]
    if missing:
        raise LayoutError(f"{where}: no [contract] for {missing}")
    if text.context is not None and any(g.encoder == EncoderKind.TEXT_SPLIT for g in graphs):
        raise LayoutError(f"{where}: a host context applies to pooled text graphs, not to hidden states (text-split)")
    for g in graphs:
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
    return dict(sorted(found.items()))


def names() -> list[str]:
    return [SUITE, *layouts()]


def get(name: str) -> Layout:
    try:
        return layouts()[name]
    except KeyError:
        raise LayoutError(f"unknown layout {name!r}; choose from {', '.join(names())}") from None


def detect(folder: Path, forced: str | None = None) -> str:
    """The layout of `folder`: `forced` (--layout) if given and it fits, else the one layout that fits. A folder
    that fits none, or several, is an error that lists what was looked for or what matched."""
    suite = (folder / SUITE_MARKER).is_file()
    if forced is not None:
        if forced != SUITE and not get(forced).fits(folder):
            raise NoLayout(f"{folder} does not fit --layout {forced}: it needs {_wants(get(forced))}")
        return forced
    matched = [SUITE] if suite else []
    matched += [name for name, layout in layouts().items() if layout.fits(folder)]
    if len(matched) == 1:
        return matched[0]
    if not matched:
        looked = "; ".join(f"{n}: {_wants(lay)}" for n, lay in layouts().items())
        raise NoLayout(
            f"{folder} fits no known layout ({SUITE_MARKER} is missing: not a bundle made by `python -m conformance "
            f"export`). Looked for: {SUITE}: {SUITE_MARKER}; {looked}. Pass --layout=NAME if the files are renamed"
        )
    raise SeveralLayouts(f"{folder} fits several layouts ({', '.join(matched)}): pass --layout=NAME to choose one")


def _wants(layout: Layout) -> str:
    absent = f" and no {', '.join(layout.detect_absent)}" if layout.detect_absent else ""
    return f"{', '.join(layout.detect)}{absent}"
