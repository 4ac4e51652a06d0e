"""CLIP -> ONNX conformance suite: exports, artifacts and plain `check_*` functions usable without pytest."""

__version__ = "0.1.0"
