"""immich's exporters, run as vendored at their commits (tests/vendor/immich/VENDORED.md) on the suite's synthetic
weights: the monorepo's immich_model_exporter at 9958ac9 (outputs `embedding`), ml-models' immich_model at
29208ae (`image_embedding`/`text_embedding`), and ml-models' fuse_visual_input at 807c9b1 (uint8 NHWC pixels,
normalisation folded into the patch convolution).

What the exporters download is given to them locally instead, through their own parameters: the model name is an
open_clip model config registered from a file (open_clip.add_model_config), the pretrained tag a checkpoint file
of the suite's weights, and the config's `hf_tokenizer_name` a folder of tokenizer files made from clip's BPE
vocabulary. immich pins torch 2.6, whose torch.onnx.export defaults to TorchScript; torch 2.14 defaults to dynamo,
so the exporters run with the default they were written for. Nothing in the vendored files is changed.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from conformance import producers
from conformance.encoders import ClipModel
from conformance.variants import Variant

VENDOR = Path(__file__).resolve().parent.parent / "vendor" / "immich"
EXPORTERS = {  # commit -> the folder of its openclip.py (and the util.py it imports)
    "9958ac9": VENDOR / "immich-9958ac9/machine-learning/export/immich_model_exporter/exporters/onnx/models",
    "29208ae": VENDOR / "ml-models-29208ae/immich_model/onnx/models",
}
FUSE = VENDOR / "ml-models-807c9b1/immich_model/onnx"
Edit = Callable[[Any], None]
OPSET = 19  # both exporters' command-line default (exporters/onnx/__init__.py, immich_model/onnx/cli.py)


def _vendored(folder: Path, module: str) -> Any:
    """`module` of a vendored folder, imported as a package of its own (its relative imports resolve there)."""
    package = "immich_" + "".join(c if c.isalnum() else "_" for c in folder.relative_to(VENDOR).parts[0])
    if package not in sys.modules:
        stub = types.ModuleType(package)
        stub.__path__ = [str(folder)]
        sys.modules[package] = stub
    return importlib.import_module(f"{package}.{module}")


def _model_config(variant: Variant, tokenizer: Path) -> dict[str, Any]:
    """open_clip's config for the variant (what open_clip.get_model_config gives for a named model), with OpenAI's
    QuickGELU (open_clip's "-quickgelu" configs) and the local tokenizer folder."""
    return {
        "embed_dim": variant.embed_dim,
        "quick_gelu": True,
        "vision_cfg": {
            "image_size": variant.image_resolution,
            "layers": variant.vision_layers,
            "width": variant.vision_width,
            "patch_size": variant.vision_patch_size,
        },
        "text_cfg": {
            "context_length": variant.context_length,
            "vocab_size": variant.vocab_size,
            "width": variant.transformer_width,
            "heads": variant.transformer_heads,
            "layers": variant.transformer_layers,
            "hf_tokenizer_name": str(tokenizer),
        },
    }


def immich_export(
    model: ClipModel,
    variant: Variant,
    out: Path,
    commit: str = "9958ac9",
    fuse: bool = False,
    dynamic: bool = False,
    edit: Edit | None = None,
) -> Path:
    """OUT/visual and OUT/textual (and OUT/config.json) as immich's exporter at `commit` writes them for the
    variant, from `model`'s weights. `fuse`: then the visual graph through fuse_visual_input (807c9b1), as that
    exporter does after export, with the preprocess config's mean and std. `dynamic` exports with the dynamic_axes
    immich leaves commented out (as older releases and other open_clip apps do); `edit` breaks open_clip's model
    after the exporter has built it (a negative control)."""
    with tempfile.TemporaryDirectory() as work:
        _export(model, variant, out, Path(work), commit, dynamic, edit)
    if fuse:
        fuse_visual(out / "visual" / "model.onnx")
    return out


def _export(
    model: ClipModel, variant: Variant, out: Path, work: Path, commit: str, dynamic: bool, edit: Edit | None
) -> None:
    import open_clip

    name = f"conformance-{variant.name.replace('/', '-')}"
    (work / "configs").mkdir(parents=True, exist_ok=True)
    producers.save_hf_tokenizer(work / "tokenizer")
    (work / "configs" / f"{name}.json").write_text(json.dumps(_model_config(variant, work / "tokenizer")))
    open_clip.add_model_config(work / "configs")
    checkpoint = work / "openai-state-dict.pt"
    torch.save({k: t.detach().float().cpu() for k, t in model.state_dict().items()}, checkpoint)

    openclip = _vendored(EXPORTERS[commit], "openclip")
    real_export, real_create = torch.onnx.export, open_clip.create_model

    def export(model: Any, args: Any, f: Any, **kwargs: Any) -> Any:
        if dynamic:
            kwargs["dynamic_axes"] = {n: {0: "batch_size"} for n in kwargs["input_names"]}
        with warnings.catch_warnings():  # torch 2.14 warns that TorchScript is no longer its default
            warnings.simplefilter("ignore", DeprecationWarning)
            return real_export(model, args, f, dynamo=False, **kwargs)  # torch 2.6's default, which immich pins

    def create(*args: Any, **kwargs: Any) -> Any:
        built = real_create(*args, **kwargs)
        if edit is not None:
            edit(built)
        return built

    fastpath = torch.backends.mha.get_fastpath_enabled()
    # 29208ae no longer disables MHA's fast path as 9958ac9 does: under torch 2.14 and open_clip 3.3 the TorchScript
    # exporter then meets aten::_native_multi_head_attention (immich#12496), so it is disabled for both
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with mock.patch.object(torch.onnx, "export", export), mock.patch.object(open_clip, "create_model", create):
            config = openclip.OpenCLIPModelConfig(name, str(checkpoint))
            openclip.to_onnx(config, OPSET, out / "visual", out / "textual")
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def fuse_visual(path: Path) -> None:
    """The visual graph at `path` through the vendored fuse_visual_input, with the mean and std of the
    preprocess config beside it, saved as 807c9b1's exporter saves it (its weights in model.onnx.data)."""
    import onnx_ir as ir

    transforms = _vendored(FUSE, "transforms")
    preprocess = json.loads((path.parent / "preprocess_cfg.json").read_text())
    fused = transforms.fuse_visual_input(ir.load(path.as_posix()), list(preprocess["mean"]), list(preprocess["std"]))
    ir.save(fused, path.as_posix(), external_data=path.with_suffix(".onnx.data").name)
