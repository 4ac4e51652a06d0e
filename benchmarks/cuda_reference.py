"""On a machine with a GPU: how far torch's CUDA fp32 and fp16 references drift from the CPU fp32 one.

Run from the repository root: `python benchmarks/cuda_reference.py [VARIANT ...]` (default ViT-B/32).
Prints, per variant and encoder, max abs error and min row cosine against CPU fp32 on the suite's inputs.
The suite's exports come from the CPU (`--device cpu`); these figures say what a user comparing a GPU
reference with them would see, and set a floor for any fp16 tolerance.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from conformance import inputs, variants, weights
from conformance.clipcompat import clip
from conformance.encoders import EncoderKind, wrap
from conformance.numerics import error_figures


def _run(variant: variants.Variant, encoder: EncoderKind, x: np.ndarray, device: str, fp16: bool) -> np.ndarray:
    """The synthetic model on `device`; in fp16 as `clip.load` makes it on CUDA (LayerNorm kept in fp32)."""
    model = weights.build_synthetic(variant, 0).to(device)
    if fp16:
        clip.model.convert_weights(model)
    with torch.no_grad():
        return wrap(model, encoder)(torch.from_numpy(x).to(device)).float().cpu().numpy()


def main(names: list[str]) -> None:
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    for variant in variants.resolve(names or ["ViT-B/32"]):
        for encoder in EncoderKind:
            x = inputs.batch_for(variant, encoder, 4)
            cpu = _run(variant, encoder, x, "cpu", fp16=False)
            for label, fp16 in (("cuda fp32", False), ("cuda fp16", True)):
                f = error_figures(_run(variant, encoder, x, "cuda", fp16), cpu)
                print(
                    f"{variant.name:>15} {encoder!s:>10} {label}: max abs {f['max_abs_err']:.3g} "
                    f"(ref max {f['ref_max_abs']:.3g}), min cosine {f['min_cosine']:.7f}, "
                    f"non-finite {f['nonfinite_output']}"
                )


if __name__ == "__main__":
    main(sys.argv[1:])
