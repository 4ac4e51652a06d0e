"""The rknn toolchain: pins, trust of an install folder, the worker's error paths and warning parsing; and, where
the toolchain is installed (`python -m conformance toolchain install rknn`), a real build + simulation."""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conformance.toolchains import rknn, simulate
from conformance.toolchains.rknn import Toolchain, ToolchainError

CANNED_LOG = (
    "I rknn-toolkit2 version: 2.5.0\n"
    "\x1b[1;33mW\x1b[0m \x1b[1;33mload_onnx: If you don't need to crop the model, don't set 'inputs'/'input_size_list'"
    "/'outputs'!\x1b[0m\n"
    "\rI Loading :   0%|          | 0/152 [00:00<?, ?it/s]\rI Loading : 100%|##########| 152/152 [00:00<00:00]\n"
    "\x1b[1;33mW\x1b[0m \x1b[1;33mload_onnx: The config.mean_values is None, zeros will be set for input 0!\x1b[0m\n"
    "\x1b[1;33mW\x1b[0m \x1b[1;33mbuild: The value smaller than -3e+38 has been corrected to -10000\x1b[0m\n"
    "\rI OpFusing 0 : 100%|###| 100/100\r\x1b[1;33mW\x1b[0m \x1b[1;33mbuild: The value smaller than -3e+38 has been "
    "corrected to -10000\x1b[0m\n"
    "/venv/lib/python3.11/site-packages/rknn/api/rknn.py:51: UserWarning: something deprecated\n"
    "  self.rknn_base = RKNNBase(cur_path, verbose)\n"
    "E RKNN: [23:23:26.867] Unkown op target: 0\n"
    "E RKNN: [23:23:27.001] Unkown op target: 0\n"
    "I rknn building done.\n"
)


def test_every_requirement_is_an_exact_pin():
    lines = [line.split("#")[0].strip() for line in rknn.REQUIREMENTS.read_text().splitlines()]
    pins = [line for line in lines if line]
    assert pins, "empty requirements file"
    loose = [pin for pin in pins if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", pin)]
    assert not loose, f"not exact `name==version` pins: {loose}"
    names = {pin.split("==")[0].lower().replace("_", "-") for pin in pins}
    assert f"rknn-toolkit2=={rknn.RKNN_VERSION}" in pins
    assert {"torch", "numpy", "onnx", "protobuf", "setuptools"} <= names


def test_the_folder_is_named_after_the_pins(tmp_path, monkeypatch):
    expected = tmp_path / f"rknn-{rknn.pins_sha256()[:12]}"
    assert rknn.toolchain_dir(tmp_path) == expected
    monkeypatch.setenv(rknn.ROOT_ENV, str(tmp_path))
    assert rknn.toolchain_dir() == expected


def test_nothing_is_found_in_an_empty_root(tmp_path):
    assert rknn.find_toolchain(tmp_path) is None


def _fake_venv(root: Path, python_body: str = 'exec "{exe}" "$@"') -> Path:
    directory = rknn.toolchain_dir(root)
    python = rknn.venv_python(directory)
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n" + python_body.format(exe=sys.executable) + "\n")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return directory


def _marker(directory: Path, **changes: object) -> None:
    doc = {"schema": rknn.MARKER_SCHEMA, "rknn_toolkit2": rknn.RKNN_VERSION, "pins_sha256": rknn.pins_sha256()}
    (directory / rknn.MARKER).write_text(json.dumps({**doc, **changes}))


def test_a_folder_without_its_completion_marker_is_not_trusted(tmp_path):
    directory = _fake_venv(tmp_path)
    assert rknn.find_toolchain(tmp_path) is None
    _marker(directory)
    found = rknn.find_toolchain(tmp_path)
    assert found is not None and found.version == rknn.RKNN_VERSION and found.directory == directory


def test_a_marker_for_other_pins_or_a_dead_python_is_not_trusted(tmp_path):
    directory = _fake_venv(tmp_path)
    _marker(directory, pins_sha256="0" * 64)
    assert rknn.find_toolchain(tmp_path) is None
    _marker(directory)
    rknn.venv_python(directory).write_text("#!/bin/sh\nexit 1\n")
    assert rknn.find_toolchain(tmp_path) is None


def test_install_replaces_an_interrupted_install_and_marks_only_a_verified_one(tmp_path, monkeypatch):
    """A leftover folder without marker is removed first; a venv that lacks rknn-toolkit2 gets no marker."""
    leftover = rknn.toolchain_dir(tmp_path)
    leftover.mkdir(parents=True)
    (leftover / "half-made").write_text("")

    def fake_install(directory: Path, progress) -> None:
        assert not (directory / "half-made").exists()
        _fake_venv(tmp_path)  # this interpreter: it runs, but has no rknn-toolkit2

    monkeypatch.setattr(rknn, "_install_into", fake_install)
    lines: list[str] = []
    with pytest.raises(ToolchainError, match="expected rknn-toolkit2"):
        rknn.install(lines.append, root=tmp_path)
    assert not (leftover / rknn.MARKER).exists() and rknn.find_toolchain(tmp_path) is None
    assert any("removing an incomplete" in line for line in lines)


def test_warning_lines_are_stripped_of_colour_and_counted():
    assert simulate.parse_warnings(CANNED_LOG) == [
        "load_onnx: If you don't need to crop the model, don't set 'inputs'/'input_size_list'/'outputs'!",
        "load_onnx: The config.mean_values is None, zeros will be set for input 0!",
        "build: The value smaller than -3e+38 has been corrected to -10000 (x2)",
        "UserWarning: something deprecated",
        "E: RKNN: Unkown op target: 0 (x2)",
    ]


def _fake_toolchain(python: Path) -> Toolchain:
    return Toolchain(python.parent, python, rknn.RKNN_VERSION, rknn.pins_sha256(), 0, 0.0)


def test_a_worker_that_cannot_import_rknn_raises_with_its_log(tmp_path):
    """This interpreter has numpy but no rknn: the worker reports the failed stage and exits non-zero."""
    tc = _fake_toolchain(Path(sys.executable))
    with pytest.raises(ToolchainError, match=r"failed at import \(exit 3\).*cannot import rknn") as caught:
        simulate.compile_and_simulate(
            tc, tmp_path / "m.onnx", "x", [1, 8], [np.zeros((1, 8), np.float32)], workdir=tmp_path
        )
    assert "ModuleNotFoundError" in str(caught.value) and (tmp_path / "worker.log").exists()


def test_a_worker_that_hangs_is_killed_at_the_timeout(tmp_path):
    python = _fake_venv(tmp_path, 'echo "stuck"; sleep 60') / "bin" / "python"
    with pytest.raises(ToolchainError, match=r"timed out after 1 s(.|\n)*stuck"):
        simulate.compile_and_simulate(
            _fake_toolchain(python),
            tmp_path / "m.onnx",
            "x",
            [1, 8],
            [np.zeros((1, 8), np.float32)],
            workdir=tmp_path / "work",
            timeout_s=1,
        )


def test_batches_must_match_the_built_shape(tmp_path):
    tc = _fake_toolchain(Path(sys.executable))
    with pytest.raises(ValueError, match="built for"):
        simulate.compile_and_simulate(
            tc, tmp_path / "m.onnx", "x", [1, 8], [np.zeros((2, 8), np.float32)], workdir=tmp_path
        )


def _tiny_graph(path: Path, weight: np.ndarray, bias: np.ndarray) -> None:
    """x[1,8] @ W[8,4] + b: small enough to build in seconds, real enough to go through rknn's fp16 compile."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    # IR 8 for opset 17: the toolchain's onnx 1.18 reads it whatever the suite's newer onnx would default to.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)


INSTALLED = rknn.find_toolchain()


@pytest.mark.skipif(
    INSTALLED is None,
    reason=f"the rknn toolchain is not installed (python -m conformance toolchain install rknn; "
    f"expected in {rknn.toolchain_dir()})",
)
def test_a_tiny_graph_compiles_and_simulates_like_numpy(tmp_path):
    assert INSTALLED is not None
    rng = np.random.default_rng(0)
    weight, bias = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    _tiny_graph(tmp_path / "tiny.onnx", weight, bias)
    batches = [rng.standard_normal((1, 8)).astype(np.float32) for _ in range(3)]
    result = simulate.compile_and_simulate(
        INSTALLED, tmp_path / "tiny.onnx", "x", [1, 8], batches, workdir=tmp_path / "w"
    )
    assert result.toolkit_version == rknn.RKNN_VERSION and result.platform == "rk3588"
    assert len(result.outputs) == len(batches) and len(result.simulate_seconds) == len(batches)
    for x, got in zip(batches, result.outputs, strict=True):
        want = x @ weight + bias
        got = got.reshape(want.shape).astype(np.float64)
        cosine = float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))
        assert cosine > 0.999, (cosine, got, want)
    assert all("\x1b" not in w for w in result.warnings)
    print(f"build {result.build_seconds:.2f} s, simulate {result.simulate_seconds}, wall {result.wall_seconds:.1f} s")
    print(f"warnings {result.warnings}")
