"""The tokenizer and image preprocessing a bundle's graphs were made for, recorded and checked.

The split text contract finds the EOT position as the argmax of each row of token ids. That holds only
because EOT (`<|endoftext|>`) is the largest id of CLIP's vocabulary, so the record names the vocabulary
(by the sha256 of its BPE file) and the checks below verify the EOT id is its maximum.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from conformance.clipcompat import clip

SOT_TEXT, EOT_TEXT = "<|startoftext|>", "<|endoftext|>"


@cache
def _tokenizer() -> Any:
    return clip.simple_tokenizer.SimpleTokenizer()


SOT: int = _tokenizer().encoder[SOT_TEXT]
EOT: int = _tokenizer().encoder[EOT_TEXT]


def decoded(ids: range) -> str:
    """Text made of the given vocabulary entries (most re-tokenize to the same ids)."""
    return "".join(_tokenizer().decoder[i].replace("</w>", " ") for i in ids).strip()


@cache
def vocabulary_sha256() -> str:
    return hashlib.sha256(Path(clip.simple_tokenizer.default_bpe()).read_bytes()).hexdigest()


def tokenizer_record(context_length: int) -> dict[str, Any]:
    vocab = _tokenizer().encoder
    return {
        "name": "openai-clip SimpleTokenizer",
        "bpe_sha256": vocabulary_sha256(),
        "vocab_size": len(vocab),
        "sot_id": SOT,
        "eot_id": EOT,
        "max_id": max(vocab.values()),
        "context_length": context_length,
        "eot_pooling": "argmax of token ids (first EOT wins)",
    }


def preprocessing_record(resolution: int, mean: tuple[float, ...], std: tuple[float, ...]) -> dict[str, Any]:
    """What `clip.load`'s transform does before `encode_image`: the graph expects its output."""
    return {
        "resolution": resolution,
        "resize": "bicubic, shorter side to resolution",
        "crop": "center",
        "color": "RGB",
        "scale": "1/255",
        "mean": list(mean),
        "std": list(std),
        "layout": "NCHW float32",
    }


def tokenizer_problems(record: Any, context_length: int) -> list[str]:
    """The recorded tokenizer is the installed one, and argmax pooling is valid for it (EOT = max id)."""
    if not isinstance(record, dict):
        return ["the manifest records no tokenizer"]
    problems = []
    if record.get("eot_id") != record.get("max_id"):
        problems.append(
            f"tokenizer: EOT id {record.get('eot_id')} is not the largest id {record.get('max_id')}, "
            "so the argmax EOT pooling of the split text contract is wrong for it"
        )
    expected = tokenizer_record(context_length)
    for key in ("bpe_sha256", "sot_id", "eot_id", "max_id", "context_length"):
        if record.get(key) != expected[key]:
            problems.append(
                f"tokenizer: {key} is {record.get(key)!r}, the installed clip tokenizer has {expected[key]!r}"
            )
    return problems


def untruncated_length(text: str) -> int:
    """The ids `clip.tokenize(text, truncate=False)` needs: the start token, the text's, the end token."""
    return len(_tokenizer().encode(text)) + 2
