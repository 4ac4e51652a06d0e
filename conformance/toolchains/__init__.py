"""Vendor toolchains that cannot share the suite's environment, each in its own pinned venv.

A vendor compiler such as Rockchip's rknn-toolkit2 pins torch, numpy, onnx and protobuf to releases the suite
cannot use, so it gets a private venv under `.cache/toolchains/` and is driven over a subprocess with files
(inputs and outputs as .npz, requests and reports as JSON): the suite never imports vendor code in-process.
"""
