"""The axes a case is spelled in, as names: encoders, exporters, precisions, shape profiles, targets and token
dtypes. Plain enums and constants, importing nothing heavy, so that the command-line options can be checked
against them before torch is imported (conformance/parsing.py): a mistyped option is answered in a second."""

from __future__ import annotations

from enum import StrEnum

TOKEN_DTYPES = ("int32", "int64")
DEFAULT_TOKEN_DTYPE = "int32"  # what `clip.tokenize` returns on current torch, and what NPU toolchains take


class EncoderKind(StrEnum):
    IMAGE = "image"
    TEXT_SPLIT = "text-split"  # the seed's contract: ln_final hidden states; projection applied by the host
    TEXT_FULL = "text-full"  # encode_text as is: EOT gather and projection inside the graph


class Exporter(StrEnum):
    TORCHSCRIPT = "torchscript"
    DYNAMO = "dynamo"


class Precision(StrEnum):
    """The arithmetic of the graph's weights and compute (its inputs and outputs stay fp32 throughout)."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    INT4 = "int4"  # 4-bit integer weights in blocks, each with its scale (MatMulNBits); float compute
    NF4 = "nf4"  # 4-bit NormalFloat weights in blocks (MatMulBnb4, bitsandbytes' format); float compute


class Profile(StrEnum):
    """The shape profile: a symbolic batch axis, or shapes fixed for a static compiler (its rules are
    conformance/profiles/<name>.toml)."""

    DYNAMIC = "dynamic"
    NPU_STATIC = "npu-static"

    @property
    def encoders(self) -> tuple[EncoderKind, ...]:
        """The graphs a profile is made of. An NPU takes the image graph and the split text graph: the EOT
        gather (an ArgMax on int ids) and the projection run on the host, as the seed splits it."""
        if self == Profile.NPU_STATIC:
            return (EncoderKind.IMAGE, EncoderKind.TEXT_SPLIT)
        return tuple(EncoderKind)


class Target(StrEnum):
    """What the graph is for: an export (the raw fp32 graph, or the fixed-shape one an NPU compiler takes), or
    what a compile recipe (conformance/compile/) or compiler (conformance/toolchains/) made of one."""

    ONNX = "onnx"
    ORT_OPT = "ort-opt"
    FP16 = "fp16"
    INT8_DYNAMIC = "int8-dynamic"
    INT8_STATIC = "int8-static"
    NPU_STATIC = "npu-static"
    RKNN = "rknn"
    OPENVINO = "openvino"
    OPENVINO_BF16 = "openvino-bf16"
    OPENVINO_INT8 = "openvino-int8"
    # Weight-only 4-bit graphs that other tools ship (transformers.js's `_q4`, `_q4f16`, `_bnb4`), made by
    # onnxruntime's quantisers: the suite reads them in those tools' folders and never compiles them itself.
    Q4 = "q4"
    Q4F16 = "q4f16"
    BNB4 = "bnb4"

    @property
    def precision(self) -> Precision:
        return _PRECISION_OF.get(self, Precision.FP32)

    @property
    def profile(self) -> Profile:
        return Profile.NPU_STATIC if self in (Target.NPU_STATIC, Target.RKNN) else Profile.DYNAMIC

    @property
    def compiled(self) -> bool:
        """Made from another target's graph (`base`), not exported from the model."""
        return self not in (Target.ONNX, Target.NPU_STATIC)

    @property
    def base(self) -> Target:
        """The export a compiled target is made from (an export is its own base)."""
        if not self.compiled:
            return self
        return Target.NPU_STATIC if self.profile == Profile.NPU_STATIC else Target.ONNX

    @property
    def runtime(self) -> str:
        """What runs the graph: onnxruntime, OpenVINO, or RKNN's simulator (over a subprocess boundary)."""
        return _RUNTIME_OF.get(self, "onnxruntime")

    @property
    def elsewhere(self) -> bool:
        """Made only by another tool (read from its folder): no recipe here, so never a --target of a fresh run."""
        return self in (Target.Q4, Target.Q4F16, Target.BNB4)

    @property
    def emulable(self) -> bool:
        """A compiled graph whose numbers depend on the CPU that runs it, on a runtime qemu can run (not RKNN's)."""
        return self.compiled and self.runtime in ("onnxruntime", "openvino")


_PRECISION_OF = {
    Target.FP16: Precision.FP16,
    Target.INT8_DYNAMIC: Precision.INT8,
    Target.INT8_STATIC: Precision.INT8,
    Target.RKNN: Precision.FP16,
    Target.OPENVINO_BF16: Precision.BF16,
    Target.OPENVINO_INT8: Precision.INT8,
    Target.Q4: Precision.INT4,
    Target.Q4F16: Precision.INT4,
    Target.BNB4: Precision.NF4,
}
_RUNTIME_OF = {
    Target.RKNN: "rknn-simulator",
    Target.OPENVINO: "openvino",
    Target.OPENVINO_BF16: "openvino",
    Target.OPENVINO_INT8: "openvino",
}
