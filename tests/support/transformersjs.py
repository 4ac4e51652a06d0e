"""transformers.js's own conversion script, vendored verbatim in tests/vendor/transformers_js (VENDORED.md says
from which commit), run as its README says: `python -m scripts.convert --model_id ID --split_modalities --quantize
--modes fp16 q8`, on a local Hugging Face checkpoint.

One adaptation, made here and not in the vendored files: optimum-onnx 0.1.0's `export_models` (the optimum this
suite's `producers` extra pins) does not take the `trust_remote_code` keyword the script passes it, so the call
drops the keywords that function does not take. Nothing else is changed, and nothing here imitates a graph.
"""

from __future__ import annotations

import functools
import inspect
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
VENDOR = REPO / "tests" / "vendor" / "transformers_js"
MODES = ("fp16", "q8", "int8", "uint8", "q4", "q4f16", "bnb4")  # every sibling quantize.py writes
# What a transformers.js model repository (Xenova/clip-vit-base-patch32, ...) carries beside onnx/: the checkpoint's
# own files (convert.py --split_modalities writes only the graphs and quantize_config.json).
CHECKPOINT_FILES = (
    "config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


_Run = tuple[subprocess.Popen[bytes], Path]  # a started run of the script, and the stem of its output files


def _start(checkpoint: Path, out: Path, modes: tuple[str, ...], split: bool, logs: Path) -> _Run:
    """The script's run on `checkpoint` into `out`, laid out as a transformers.js model repository
    (onnx/{text,vision}_model[_fp16|_quantized|...].onnx with `split`, --split_modalities; else the combined
    onnx/model[...].onnx that CLIPModel and the zero-shot pipeline load), in a process of its own, started and not
    awaited. Its output goes to files in `logs`: a pipe nobody reads while another run is awaited would fill and
    stall it."""
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: the script's graphs would land beside older ones")
    form = "split" if split else "combined"
    stem = logs / form
    with open(stem.with_suffix(".out"), "wb") as stdout, open(stem.with_suffix(".err"), "wb") as stderr:
        command = [
            sys.executable,
            "-m",
            "tests.support.transformersjs",
            str(checkpoint.resolve()),
            str(out.resolve()),
            form,
        ]
        return subprocess.Popen([*command, *modes], cwd=REPO, stdout=stdout, stderr=stderr), stem


def _finish(run: _Run, checkpoint: Path, out: Path) -> Path:
    """Await a `_start`ed run, then put the checkpoint's files beside its graphs."""
    process, stem = run
    if process.wait() != 0:
        stdout, stderr = (stem.with_suffix(s).read_text(errors="replace") for s in (".out", ".err"))
        raise RuntimeError(f"transformers.js's convert.py failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    for name in CHECKPOINT_FILES:
        if (checkpoint / name).is_file():
            shutil.copyfile(checkpoint / name, out / name)
    return out


def convert_both(checkpoint: Path, split_out: Path, combined_out: Path, modes: tuple[str, ...] = MODES) -> None:
    """The script run with and without --split_modalities into `split_out` and `combined_out`, side by side: two
    independent processes (on a 2-core Zen 3, ViT-B/32's two runs took 113 s one after the other, and `python -m
    tests.support.producer_folders` 196 s before and 170 s after they ran side by side)."""
    with tempfile.TemporaryDirectory() as logs:
        runs = [_start(checkpoint, split_out, modes, True, Path(logs))]
        try:
            runs.append(_start(checkpoint, combined_out, modes, False, Path(logs)))
            _finish(runs[0], checkpoint, split_out)
            _finish(runs[1], checkpoint, combined_out)
        finally:  # a failed run's partner is not left running
            for process, _ in runs:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def model_repository(checkpoint: Path, out: Path, modes: tuple[str, ...] = MODES) -> Path:
    """`out` as a transformers.js model repository holds it (Xenova/clip-vit-base-patch32): the split graphs and the
    combined onnx/model*.onnx, each with its siblings, made by two runs of the script (with and without
    --split_modalities), and the checkpoint's files."""
    with tempfile.TemporaryDirectory() as scratch:
        combined = Path(scratch) / "combined"
        convert_both(checkpoint, out, combined, modes)
        for graph in sorted((combined / "onnx").glob("model*.onnx*")):
            shutil.move(str(graph), out / "onnx" / graph.name)
    return out


def _export_models_taking_what_it_takes() -> None:
    from optimum.exporters import onnx as exporters

    original = exporters.export_models
    accepted = set(inspect.signature(original).parameters)

    @functools.wraps(original)
    def export_models(**kwargs: Any) -> Any:
        return original(**{k: v for k, v in kwargs.items() if k in accepted})

    exporters.export_models = export_models


def main() -> None:
    """`python -m tests.support.transformersjs CHECKPOINT OUT split|combined [MODE ...]` (what `convert` runs, in a
    process of its own)."""
    checkpoint, out, form, modes = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4:] or list(MODES)
    _export_models_taking_what_it_takes()
    sys.path.insert(0, str(VENDOR))
    with tempfile.TemporaryDirectory() as parent:
        os.chdir(checkpoint.parent)  # the script writes to os.path.join(output_parent_dir, model_id): a relative id
        # A hub id's task is inferred from the hub (openai/clip-*: zero-shot-image-classification); a local folder's
        # must be given, or optimum refuses to guess.
        split = ["--split_modalities"] if form == "split" else ["--task", "zero-shot-image-classification"]
        sys.argv = ["convert.py", "--model_id", checkpoint.name, *split, "--quantize", "--modes", *modes,
                    "--output_parent_dir", parent]  # fmt: skip
        runpy.run_module("scripts.convert", run_name="__main__", alter_sys=True)
        made = Path(parent) / checkpoint.name
        out.mkdir(parents=True, exist_ok=True)
        for item in made.iterdir():
            shutil.move(str(item), out / item.name)


if __name__ == "__main__":
    main()
