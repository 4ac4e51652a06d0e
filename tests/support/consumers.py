"""Folders for the consumers that ship no exporter (clip-as-service, fastembed), made to their consumer's contract
with a real exporter from the suite's synthetic weights, as the layouts' comments cite it:

- clip-as-service: `clip`'s model through `torch.onnx.export` (TorchScript, opset 14), with the input names and
  dtypes its server feeds (`pixel_values`; int32 `input_ids` and `attention_mask`) and one output each, written as
  `visual.onnx` and `textual.onnx` into a folder named as its cache names one (`~/.cache/clip/ViT-B-32`). The text
  module applies the mask to the ids (`input_ids * attention_mask`: the padding is 0 either way), so that the graph
  takes the mask the server feeds (ONNX Runtime refuses a feed the graph does not declare).
- fastembed: transformers' `CLIPVisionModelWithProjection` and `CLIPTextModelWithProjection`, holding the suite's
  weights, through Optimum's `onnx_export_from_model` with its CLIP configs (`CLIPTextWithProjectionOnnxConfig` as
  Optimum registers it; for the vision tower its `CLIPVisionModelOnnxConfig` with the projected `image_embeds` as
  first output, as fastembed takes the first), each into its own folder with the checkpoint's config, tokenizer and
  preprocessor files, as a Hugging Face snapshot of Qdrant/clip-ViT-B-32-{vision,text} holds them.

These are not the producers' own exports: the docs (elsewhere.md) say so.
"""

from __future__ import annotations

import copy
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from conformance.encoders import ClipModel
from conformance.variants import Variant

OPSET = 14
Edit = Callable[[Any], None]
TEXT_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


class _Visual(torch.nn.Module):
    def __init__(self, model: ClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)


class _Textual(torch.nn.Module):
    def __init__(self, model: ClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text((input_ids * attention_mask).long())


def clip_as_service_folder(model: ClipModel, variant: Variant, out: Path, edit: Edit | None = None) -> Path:
    """OUT/visual.onnx and OUT/textual.onnx for clip-as-service's CLIPOnnxModel; `edit` breaks the model first."""
    built = copy.deepcopy(model).float().eval()
    if edit is not None:
        edit(built)
    out.mkdir(parents=True, exist_ok=True)
    r, t = variant.image_resolution, variant.context_length
    ids = torch.zeros(2, t, dtype=torch.int32)
    ids[:, :3] = torch.tensor([49406, 320, 49407], dtype=torch.int32)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the TorchScript exporter cannot take MHA's fused kernel
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Visual(built), (torch.randn(2, 3, r, r),), str(out / "visual.onnx"), dynamo=False,
                opset_version=OPSET, input_names=["pixel_values"], output_names=["output"],
                dynamic_axes={"pixel_values": {0: "batch_size"}, "output": {0: "batch_size"}},
            )  # fmt: skip
            torch.onnx.export(
                _Textual(built), (ids, (ids != 0).int()), str(out / "textual.onnx"), dynamo=False,
                opset_version=OPSET, input_names=["input_ids", "attention_mask"], output_names=["output"],
                dynamic_axes={n: {0: "batch_size"} for n in ("input_ids", "attention_mask", "output")},
            )  # fmt: skip
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return out


def _vision_config() -> Any:
    from optimum.exporters.onnx.model_configs import CLIPVisionModelOnnxConfig

    class ProjectedVision(CLIPVisionModelOnnxConfig):
        """CLIPVisionModelWithProjection's outputs, the projected embedding first."""

        @property
        def outputs(self) -> dict[str, dict[int, str]]:
            return {"image_embeds": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}}

    return ProjectedVision


def fastembed_folders(checkpoint: Path, out: Path, edit: Edit | None = None) -> tuple[Path, Path]:
    """OUT/clip-vision and OUT/clip-text from an HF CLIP checkpoint (tests/support/optimum.py's `hf_checkpoint`);
    `edit` breaks each tower's model before it is exported."""
    from optimum.exporters.onnx import onnx_export_from_model
    from optimum.exporters.onnx.model_configs import CLIPTextWithProjectionOnnxConfig
    from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection

    made = []
    for tower, cls, config, files in (
        ("vision", CLIPVisionModelWithProjection, _vision_config(), ("preprocessor_config.json",)),
        ("text", CLIPTextModelWithProjection, CLIPTextWithProjectionOnnxConfig, TEXT_FILES),
    ):
        folder = out / f"clip-{tower}"
        model = cls.from_pretrained(str(checkpoint)).eval()
        if edit is not None:
            edit(model)
        onnx_config = config(model.config, task="feature-extraction")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_export_from_model(
                model, str(folder), task="feature-extraction", custom_onnx_configs={"model": onnx_config}
            )
        for name in files:
            if (checkpoint / name).is_file():
                shutil.copy(checkpoint / name, folder / name)
        for extra in [*TEXT_FILES, "preprocessor_config.json"]:  # Optimum copies both towers' host files
            if extra not in files:
                (folder / extra).unlink(missing_ok=True)
        made.append(folder)
    return made[0], made[1]
