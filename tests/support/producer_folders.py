"""Other tools' exports, made by those tools from the suite's synthetic weights (the `producers` extra).

Each function writes a folder as its producer lays it out: Optimum's exporter on transformers' CLIPModel
(tests/support/optimum.py), transformers.js's own conversion script (vendored: tests/support/transformersjs.py),
Rockchip's zoo cut and Sophgo's export guide, and immich's exporters (vendored: tests/support/immich.py). Nothing here
imitates a graph by hand.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import torch

from conformance.encoders import ClipModel
from conformance.folders.layout import LayoutFolder
from conformance.folders.together import Together
from conformance.subject import Subject
from conformance.variants import Variant
from tests.support.helpers import TINY_VIT
from tests.support.immich import fuse_visual, immich_export
from tests.support.optimum import optimum_folder, optimum_st_folder, optimum_vision_folder

RKNN_ZOO = Path(__file__).resolve().parent.parent / "vendor" / "rknn_model_zoo" / "examples" / "clip" / "python"


def rknnzoo_folder(optimum: Path, out: Path) -> Path:
    """Rockchip's zoo procedure (tests/vendor/rknn_model_zoo/VENDORED.md): its truncated_onnx.py, run as its
    export_onnx.md says, cuts Optimum's model.onnx (an `optimum_folder`, opset 18) into clip_text.onnx and
    clip_images.onnx, which it writes to ../model/ from where it runs."""
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "python").mkdir()
        (Path(work) / "model").mkdir()
        run = subprocess.run(
            [sys.executable, str(RKNN_ZOO / "truncated_onnx.py"), "--model", str((optimum / "model.onnx").resolve())],
            cwd=Path(work) / "python",
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise RuntimeError(f"the zoo's truncated_onnx.py failed:\n{run.stderr[-4000:]}")
        out.mkdir(parents=True, exist_ok=True)
        for made in (Path(work) / "model").iterdir():
            shutil.move(str(made), out / made.name)
    return out


SOPHGO_PROJECTION = "text_projection_512_512.npy"  # the guide's name, whatever the variant's shape


def sophgo_folder(model: ClipModel, variant: Variant, out: Path, cut_text: bool = True) -> Path:
    """Sophgo's export guide (sophon-demo sample/CLIP/docs/Clip_Export_Guide.md, the public export) on openai's clip
    model: CLIP.forward pointed at one tower, encode_text stopped after ln_final with the projection np.save'd (the
    guide's edits of clip/model.py, made here on the instance), then torch.onnx.export with the guide's names and
    dynamic axes. Two adaptations: the parameters are frozen first (the guide's np.save of a Parameter that requires
    grad raises), and the TorchScript exporter (the guide predates dynamo, which cannot trace an np.save); the
    projection is saved into `out` rather than the working directory. `cut_text=False` forgets the guide's edit of
    encode_text (a negative control: the graph gathers and projects, and the .npy is saved beside it anyway)."""
    import copy
    import types

    import numpy as np

    built = copy.deepcopy(model).float().eval()
    for p in built.parameters():
        p.requires_grad_(False)
    out.mkdir(parents=True, exist_ok=True)

    def encode_text(self: Any, text: torch.Tensor) -> torch.Tensor:  # the guide's model.py:354, as it edits it
        x = self.token_embedding(text).type(self.dtype)
        x = x + self.positional_embedding.type(self.dtype)
        x = x.permute(1, 0, 2)
        x = self.transformer(x)
        x = x.permute(1, 0, 2)
        x = self.ln_final(x).type(self.dtype)
        np.save(out / SOPHGO_PROJECTION, self.text_projection)
        return x

    if cut_text:
        built.encode_text = types.MethodType(encode_text, built)
    else:
        np.save(out / SOPHGO_PROJECTION, built.text_projection)
    r, t = variant.image_resolution, variant.context_length
    for tower, example, name in (
        ("image", torch.randn(1, 3, r, r), "image"),
        ("text", torch.ones(1, t).long(), "text"),
    ):
        built.forward = built.encode_image if tower == "image" else built.encode_text  # the guide's model.py:358
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                built, (example,), str(out / f"clip_{name}_vitb32.onnx"), dynamo=False,
                dynamic_axes={name: {0: "batch_size"}, "output": {0: "batch_size"}},
                input_names=[name], output_names=["output"],
            )  # fmt: skip
    return out


def layout_subjects(
    folder: Path, layout: str, reference: bool = True, sibling: str | None = None
) -> tuple[dict[str, Subject], Subject]:
    """A tiny-vit folder's graph subjects (by encoder) and its pair subject, as the plugin builds them (the session's
    model store, with --synthetic-reference or no weights); with a `sibling` suffix (transformers.js `_quantized`),
    that compiled sibling's, each with the fp32 graph beside it as its source where the folder holds one."""
    from fixtures.models import Models

    models = Models(None, None, 0, "cpu", lambda _: None, synthetic_reference=reference)  # type: ignore[arg-type]
    found = models.folder(folder, layout, TINY_VIT)
    found = found.readers[0] if isinstance(found, Together) else found  # the layout's own graphs, not its companions'
    assert isinstance(found, LayoutFolder), f"{folder} is another tool's folder"
    pair = found.case(None, sibling)
    graphs = {str(k): models.subject(pair.member(k)) for k in found.held(pair)}
    return graphs, models.subject(pair)


def copy_folder(made: dict[str, Path], layout: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made[layout], tmp_path / layout))


def edit_file(path: Path, edit: Callable[[Any], None]) -> None:
    """`edit(model)` changes the graph in place (its external data, if any, stays where it is)."""
    model = onnx.load(str(path), load_external_data=False)
    edit(model)
    onnx.save(model, str(path))


def main() -> None:
    """`python -m tests.support.producer_folders --variant ViT-B/32 --out DIR`: DIR/optimum (and its
    sentence-transformers and vision-tower exports, optimum-st and optimum-vision), transformersjs, rknnzoo, sophgo,
    immich (its three exporters: immich, immich-towers, immich-fused), onnx_clip/data (its exporter), and
    clip/ViT-B-32 and fastembed/clip-{vision,text} (to clip-as-service's and fastembed's contracts) from synthetic
    weights (`--seed`), for
    `pytest --artifacts=DIR/optimum ... --synthetic-reference` (.ci/run does)."""
    import argparse

    from conformance import weights
    from conformance.variants import get
    from tests.support.consumers import clip_as_service_folder, fastembed_folders
    from tests.support.onnx_clip import onnx_clip_folder
    from tests.support.transformersjs import MODES, model_repository

    parser = argparse.ArgumentParser(prog="python -m tests.support.producer_folders")
    parser.add_argument("--variant", default="ViT-B/32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(  # CI's ViT-B/32 run keeps to what transformers.js loads by default (its 4-bit budgets
        # were measured on ViT-B/32 once, tolerances.toml; the self-tests make every mode on tiny-vit)
        "--modes",
        nargs="+",
        default=["fp16", "q8"],
        help="transformers.js quantize.py modes (all: " + " ".join(MODES) + ")",
    )
    args = parser.parse_args()
    variant = get(args.variant)
    model = weights.build_synthetic(variant, args.seed)  # never a checkpoint found in ~/.cache/clip
    with tempfile.TemporaryDirectory() as work:
        optimum_folder(model, variant, args.out / "optimum", Path(work))
        checkpoint = Path(work) / "hf-checkpoint"  # what optimum exported from
        optimum_st_folder(checkpoint, args.out / "optimum-st", Path(work))
        optimum_vision_folder(checkpoint, args.out / "optimum-vision", Path(work))
        model_repository(checkpoint, args.out / "transformersjs", tuple(args.modes))  # split and combined graphs
        fastembed_folders(checkpoint, args.out / "fastembed")  # clip-vision and clip-text, one tower each
    rknnzoo_folder(args.out / "optimum", args.out / "rknnzoo")
    sophgo_folder(model, variant, args.out / "sophgo")
    immich_export(model, variant, args.out / "immich")  # its exporter at 9958ac9
    immich_export(model, variant, args.out / "immich-towers", "29208ae")
    shutil.copytree(args.out / "immich-towers", args.out / "immich-fused")
    fuse_visual(args.out / "immich-fused" / "visual" / "model.onnx")  # 807c9b1's fuse_visual_input
    onnx_clip_folder(model, variant, args.out / "onnx_clip" / "data")  # the package's data/ folder
    clip_as_service_folder(model, variant, args.out / "clip" / "ViT-B-32")  # its ~/.cache/clip/ViT-B-32
    print(f"wrote {args.out}/: optimum, optimum-st, optimum-vision, transformersjs, rknnzoo, sophgo, immich, "
          "immich-towers, immich-fused, onnx_clip/data, clip/ViT-B-32 and fastembed/clip-{vision,text}")  # fmt: skip


if __name__ == "__main__":
    main()
