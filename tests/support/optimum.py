"""Optimum's CLIP exports, made by Optimum from the suite's synthetic weights (the `producers` extra): the zero-shot
export, a sentence-transformers model's (`--library sentence_transformers`) and a vision tower's alone, each from an
HF checkpoint converted from the suite's model. Nothing here imitates a graph by hand."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conformance import producers
from conformance.encoders import ClipModel
from conformance.variants import Variant

Edit = Callable[[Any], None]


def hf_checkpoint(model: ClipModel, variant: Variant, checkpoint: Path) -> Any:
    """An HF checkpoint folder converted from `model`: safetensors and config, tokenizer files from clip's BPE
    vocabulary, OpenAI's image processor settings. Returns transformers' model."""
    hf = producers.hf_clip_model(model, variant)
    hf.save_pretrained(str(checkpoint))
    producers.save_hf_tokenizer(checkpoint)
    producers.hf_image_processor(variant.image_resolution).save_pretrained(str(checkpoint))
    return hf


def optimum_folder(model: ClipModel, variant: Variant, out: Path, work: Path, edit: Edit | None = None) -> Path:
    """`optimum-cli export onnx --task zero-shot-image-classification` on an HF checkpoint converted from `model`
    (tokenizer files from clip's BPE vocabulary, OpenAI's image processor settings). `edit` breaks the HF model
    first (a negative control); optimum then exports the model in memory (onnx_export_from_model, what
    main_export calls once it has loaded the checkpoint)."""
    checkpoint = work / "hf-checkpoint"
    hf = hf_checkpoint(model, variant, checkpoint)
    return _export(checkpoint, hf, out, "zero-shot-image-classification", edit)


HOST_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "preprocessor_config.json")


def _export(checkpoint: Path, model: Any, out: Path, task: str, edit: Edit | None) -> Path:
    """main_export on the checkpoint folder; or, with `edit`, the model broken in memory and exported as main_export
    does once it has loaded it (onnx_export_from_model), with the checkpoint's host files copied as it copies them."""
    from optimum.exporters.onnx import main_export, onnx_export_from_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if edit is None:
            main_export(str(checkpoint), output=str(out), task=task)
            return out
        edit(model)
        onnx_export_from_model(model, str(out), task=task)
    for name in HOST_FILES:
        if (checkpoint / name).is_file():
            shutil.copy(checkpoint / name, out / name)
    return out


def optimum_vision_folder(checkpoint: Path, out: Path, work: Path, edit: Edit | None = None) -> Path:
    """Optimum's `clip_vision_model` export: the vision tower alone, saved as transformers' CLIPVisionModel from an
    HF CLIP checkpoint (with its image processor config, as the towers' repositories ship it) and exported with task
    feature-extraction (last_hidden_state, pooler_output). Its folder has the file names of the zero-shot export
    (model.onnx, config.json), not its graphs. `edit` breaks the model first, which optimum then exports in memory."""
    from transformers import CLIPVisionModel

    vision = work / "vision-checkpoint"
    model = CLIPVisionModel.from_pretrained(str(checkpoint))
    model.save_pretrained(str(vision))
    shutil.copy(checkpoint / "preprocessor_config.json", vision)
    return _export(vision, model, out, "feature-extraction", edit)


def optimum_st_folder(checkpoint: Path, out: Path, work: Path, edit: Edit | None = None) -> Path:
    """Optimum's export of a sentence-transformers CLIP model: sentence-transformers' CLIPModel module on an HF CLIP
    checkpoint, saved as a SentenceTransformer (as the sentence-transformers/clip-ViT-* repositories hold it), then
    `optimum-cli export onnx --library sentence_transformers --task feature-extraction` (main_export). `edit`
    changes the module's transformers model before it is saved."""
    from optimum.exporters.onnx import main_export
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import CLIPModel  # sentence_transformers.models' home

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = CLIPModel(str(checkpoint))  # deprecated for Transformer: the clip-ViT-* repositories hold it
        if edit is not None:
            edit(module.model)
        SentenceTransformer(modules=[module]).save(str(work / "st-checkpoint"))
        main_export(
            str(work / "st-checkpoint"),
            output=str(out),
            task="feature-extraction",
            library_name="sentence_transformers",
        )
    return out
