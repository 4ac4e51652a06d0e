"""The static profile's attention-mask policy: CLIP's causal mask with a finite value instead of -inf.

`clip.model.CLIP.build_attention_mask` fills the future positions with -inf, and the exporters keep that as a
constant the graph adds to every attention score. NPU compilers will not carry it: fp16 arithmetic has no use
for a value that saturates everything it touches, and RKNN (rknn-toolkit2 2.5.0) rewrites causal-mask constants
below -3e38 to -10000 during its build, as Sophgo's toolchain does. The profile makes that change itself, at
export, so that the graph the suite checks is the graph the compiler sees, and `mask_equivalence` shows that
softmax cannot tell the two masks apart on CLIP-like scores, in fp32 and in fp16.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import uses_external_data

from conformance.graph import all_nodes

# What RKNN and Sophgo rewrite the mask to. exp(-1e4 + s - max) underflows to exactly 0 in fp32 (below about
# -103.97) and in fp16 (below about -17.33) whenever the unmasked row maximum exceeds a masked score by more
# than -1e4 + 104: any score spread under ~9900, where CLIP's attention scores stay within a few hundred.
# It is exact in fp16 (10000 = 0x70E2) and below fp16's largest finite value (65504).
MASK_VALUE: float = -1e4

_FLOATS = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE})


def _finite(array: np.ndarray, value: float, name: str) -> np.ndarray | None:
    """`array` with -inf -> value and +inf -> -value, or None if it was finite; NaN is never a mask."""
    if np.isnan(array).any():
        raise ValueError(f"tensor {name!r} holds NaN: no mask policy makes that finite")
    if np.isfinite(array).all():
        return None
    fixed = np.where(np.isneginf(array), value, array)
    return np.where(np.isposinf(fixed), -value, fixed).astype(array.dtype)


def _rewrite(tensor: onnx.TensorProto, value: float, name: str) -> bool:
    """Rewrite one float tensor in place (as raw_data, whatever field held it); True if it changed."""
    if tensor.data_type not in _FLOATS:
        return False
    if uses_external_data(tensor):
        raise ValueError(f"tensor {name!r} is stored externally: load the model with load_external_data=True")
    fixed = _finite(numpy_helper.to_array(tensor), value, name)
    if fixed is None:
        return False
    tensor.CopyFrom(numpy_helper.from_array(fixed, tensor.name))
    return True


def _rewrite_attribute(attribute: onnx.AttributeProto, value: float, name: str) -> bool:
    if attribute.type == onnx.AttributeProto.TENSOR:
        return _rewrite(attribute.t, value, name)
    if attribute.type == onnx.AttributeProto.FLOAT:
        fixed = _finite(np.array([attribute.f], dtype=np.float32), value, name)
        if fixed is not None:
            attribute.f = float(fixed[0])
        return fixed is not None
    if attribute.type == onnx.AttributeProto.FLOATS:
        fixed = _finite(np.array(attribute.floats, dtype=np.float32), value, name)
        if fixed is not None:
            attribute.floats[:] = [float(x) for x in fixed]
        return fixed is not None
    return False


def make_mask_finite(model: onnx.ModelProto, value: float = MASK_VALUE) -> int:
    """Make every float constant finite, in place: -inf -> `value`, +inf -> -`value` in initializers, `Constant`
    nodes and `ConstantOfShape` values (subgraphs included). Returns how many tensors changed. NaN is a
    ValueError naming the tensor: it is a broken weight, not a mask. External data must be loaded."""
    changed = sum(_rewrite(tensor, value, f"initializer {tensor.name}") for tensor in model.graph.initializer)
    for node in all_nodes(model):
        if node.op_type not in ("Constant", "ConstantOfShape"):
            continue
        for attribute in node.attribute:
            if attribute.name.startswith("value"):
                label = f"{node.op_type} node {node.name or node.output[0]} attribute {attribute.name}"
                changed += _rewrite_attribute(attribute, value, label)
    return changed


def causal_mask(context: int, fill: float, dtype: type[np.floating]) -> np.ndarray:
    """CLIP's mask: 0 on and below the diagonal, `fill` above it (a token never sees later ones)."""
    mask = np.zeros((context, context), dtype=dtype)
    mask[np.triu_indices(context, 1)] = fill
    return mask


def softmax_like_kernel(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis as a kernel in the scores' dtype computes it: the row maximum subtracted and
    exp taken in that dtype (numpy's fp16 exp rounds each result to fp16), the sum accumulated in fp32 (as fp16
    kernels do), the quotient returned in fp32."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exps = np.exp(shifted).astype(np.float32)
    return exps / exps.sum(axis=-1, keepdims=True)


def _clip_like_scores(context: int, extreme: float, rng: np.random.Generator) -> np.ndarray:
    """Heads of attention scores: N(0, 30) (wider than a trained CLIP's), uniform rows over +-extreme, and an
    adversarial head whose visible scores are all -extreme and hidden ones all +extreme (the smallest margin
    between the row maximum and a masked score)."""
    normal = rng.normal(0.0, 30.0, (4, context, context))
    uniform = rng.uniform(-extreme, extreme, (4, context, context))
    adversarial = np.where(np.triu(np.ones((context, context), dtype=bool), 1), extreme, -extreme)
    return np.clip(np.concatenate([normal, uniform, adversarial[None]]), -extreme, extreme)


def mask_equivalence(value: float = MASK_VALUE, context: int = 77, seed: int = 0) -> dict[str, float]:
    """Max abs difference between softmax(scores + causal mask of `value`) and softmax(scores + the -inf mask),
    per dtype: float32 on scores up to +-1000, float16 on scores up to +-100 (the add, max, subtract and exp in
    that dtype). Both are exactly 0.0: every masked exp underflows to 0 either way, and the unmasked entries and
    the row maximum (the diagonal is never masked) are the same numbers."""
    rng = np.random.default_rng(seed)
    differences = {}
    for dtype, extreme in ((np.float32, 1000.0), (np.float16, 100.0)):
        scores = _clip_like_scores(context, extreme, rng).astype(dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            exact = softmax_like_kernel(scores + causal_mask(context, -np.inf, dtype))
            finite = softmax_like_kernel(scores + causal_mask(context, value, dtype))
        differences[np.dtype(dtype).name] = float(np.max(np.abs(exact - finite)))
    return differences
