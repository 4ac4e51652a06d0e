"""Where a compiled graph spends its time, by operator type: onnxruntime's own profiler on one graph.

A measurement, not a test. It exports (or reads from the cache) ViT-B/32's graph for the target, runs it
`--rounds` times at `--batch` with the suite's session settings plus profiling, and prints each operator
type's share of the kernel time. Usage:

    python benchmarks/op_profile.py [--target int8-dynamic] [--encoder image] [--batch 8] [--variant ViT-B/32]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import onnxruntime as ort

from conformance import inputs, variants, weights
from conformance.case import Case, Exporter, Target
from conformance.encoders import EncoderKind
from conformance.export import ExportCache, ExportSpec
from conformance.runtime import threads


def profile(onnx_path: Path, feed: dict[str, object], rounds: int) -> dict[str, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    options.add_session_config_entry("session.force_spinning_stop", "1")  # as the suite's sessions
    options.enable_profiling = True
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    for _ in range(rounds):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    per_op: dict[str, float] = defaultdict(float)
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1e3 / rounds
    trace.unlink()
    return dict(sorted(per_op.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="ViT-B/32")
    parser.add_argument("--target", default="int8-dynamic", choices=[str(t) for t in Target])
    parser.add_argument("--encoder", default="image", choices=[str(e) for e in EncoderKind])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    variant = variants.get(args.variant)
    loaded = weights.resolve(variant, None, 0)
    case = Case(variant, EncoderKind(args.encoder), Exporter.DYNAMO).on(Target(args.target))
    artifact = ExportCache(Path(".cache/exports")).get(ExportSpec(case), loaded.model, loaded.provenance)
    x = inputs.batch_for(variant, artifact.encoder, args.batch)
    per_op = profile(artifact.onnx_path, {artifact.input_name: x}, args.rounds)
    total = sum(per_op.values())
    print(f"{case.id} batch {args.batch}: {total:.1f} ms of kernel time per run ({threads()} threads)")
    for op, ms in per_op.items():
        if ms / total >= 0.005:
            print(f"  {op:28s} {ms:8.2f} ms  {100 * ms / total:5.1f}%")


if __name__ == "__main__":
    main()
