"""`python -m conformance`: merge shard results, export release bundles, install compiler toolchains."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance import atomic, parsing, variants, weights
from conformance.batching import batch_list
from conformance.bundle.manifest import BundleError
from conformance.bundle.write import write_bundle
from conformance.case import DEFAULT_OPSET, Case, Exporter, Profile, Target
from conformance.compile.build import CompileError
from conformance.compile.recipes import recipe_for
from conformance.encoders import EncoderKind
from conformance.export import ExportCache, ExportError, ExportSpec
from conformance.profiles.rules import load_profile
from conformance.report import html, schema
from conformance.toolchains.cli import add_toolchain_parser

BUNDLED = (EncoderKind.IMAGE, EncoderKind.TEXT_SPLIT)
# Exit codes of `export`: 0 written, 1 the export failed, 2 bad usage or output folder, 3 bad weights.
EXPORT_FAILED, USAGE, BAD_WEIGHTS = 1, 2, 3


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _writable_target(out: Path) -> str | None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return f"{out} exists and is not an empty folder; choose a new one or remove it"
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {parent}: {exc.strerror}"
    if not os.access(parent, os.W_OK):
        return f"{parent} is not writable"
    return None


def export_command(args: argparse.Namespace) -> int:
    try:
        variant = variants.get(args.variant)
    except variants.UnknownVariantError as exc:
        return _error(str(exc), USAGE)
    problem = _writable_target(args.out)
    if problem:
        return _error(problem, USAGE)
    target = Target(args.target)
    if target.runtime == "rknn-simulator":
        return _error(
            "an rknn build is checked by `pytest --target rknn` (its simulator runs where the graph is built); "
            "ship the graphs RKNN takes with --target npu-static",
            USAGE,
        )
    try:
        batches = batch_list(args.static_batch, "--static-batch") if target.profile == Profile.NPU_STATIC else [None]
    except ValueError as exc:
        return _error(str(exc), USAGE)
    try:  # the plugin's own parsers (conformance/parsing.py): `export` and `pytest` refuse a flag or CPU alike
        deploy_isa = sorted(parsing.cpu_flags(args.deploy_isa or ""))  # as the manifest records them
    except argparse.ArgumentTypeError as exc:
        return _error(f"--deploy-isa {args.deploy_isa!r}: {exc}", USAGE)
    deploy_cpus = list(dict.fromkeys(args.deploy_cpu or []))
    try:
        for cpu in deploy_cpus:
            parsing.deploy_cpu(cpu)
    except argparse.ArgumentTypeError as exc:
        return _error(f"--deploy-cpu {exc}", USAGE)
    if deploy_cpus and not target.emulable:
        return _error(f"--deploy-cpu: a {target} bundle has no compiled graph to check on another CPU", USAGE)
    exporter, opset = _exporter_and_opset(args, target)
    base = Case(variant, None, exporter, opset)
    cases = [{kind: base.member(kind).on(target, batch) for kind in BUNDLED} for batch in batches]
    unsupported = recipe_for(target).unsupported(cases[0][EncoderKind.IMAGE]) if target.compiled else None
    if unsupported:
        return _error(unsupported, USAGE)
    try:  # after every usage check: loading a checkpoint takes seconds
        loaded = weights.resolve(variant, args.weights, args.seed)
    except weights.WeightsError as exc:
        return _error(str(exc), BAD_WEIGHTS)
    print(f"{variant.name}: {loaded.provenance.describe()}", flush=True)
    cache = ExportCache(args.export_cache, progress=lambda m: print(m, flush=True))
    try:
        for group in cases:
            artifacts = {
                kind: cache.get(ExportSpec(case), loaded.model, loaded.provenance) for kind, case in group.items()
            }
            batch = group[EncoderKind.IMAGE].static_batch
            out = args.out if len(cases) == 1 else args.out / f"{args.out.name}-b{batch}"
            write_bundle(out, variant, artifacts, deploy_isa, deploy_cpus)
    except (ExportError, CompileError) as exc:
        return _error(str(exc), EXPORT_FAILED)
    except (BundleError, OSError) as exc:
        return _error(str(exc), USAGE)
    print(f"bundle written: {args.out} (validate with: pytest --artifacts={args.out})")
    return 0


def _exporter_and_opset(args: argparse.Namespace, target: Target) -> tuple[Exporter, int]:
    """What was asked for, or the target's defaults: a static profile's exporter and opset (the NPU evidence
    is TorchScript at opset 17), else dynamo at the installed torch's default opset."""
    if target.profile != Profile.NPU_STATIC:
        return Exporter(args.exporter or Exporter.DYNAMO), args.opset or DEFAULT_OPSET
    rules = load_profile(str(target.profile))
    exporter = Exporter(args.exporter or rules.default_exporter)
    return exporter, args.opset or rules.default_opset[str(exporter)]


def merge_command(args: argparse.Namespace) -> int:
    try:
        docs = [(str(path), schema.load(path)) for path in args.results]
    except schema.ResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    merged = schema.merge(docs)
    atomic.write_json(args.out / "results.json", merged)
    html.write(merged, args.out / "report.html")
    print(
        f"merged {len(docs)} shard(s), {len(merged['tests'])} tests, verdict {merged['verdict']} "
        f"-> {args.out / 'report.html'}"
    )
    return int(merged["exit_status"])


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("merge", help="merge several results.json into one results.json + report.html")
    merge.add_argument("results", nargs="+", type=Path, help="results.json files, one per shard")
    merge.add_argument("--out", type=Path, default=Path("reports/merged"), help="output folder")
    merge.set_defaults(run=merge_command)
    export = commands.add_parser("export", help="export a variant's image and split text encoders as a bundle")
    export.add_argument("--variant", required=True, help="one of the nine OpenAI variants")
    export.add_argument("--out", type=Path, required=True, help="bundle folder to create (new or empty)")
    export.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="checkpoint file or folder (default: ~/.cache/clip if the official file is there, else synthetic)",
    )
    export.add_argument(
        "--exporter",
        choices=[str(e) for e in Exporter],
        default=None,
        help="torch exporter (default: dynamo, torch.onnx.export's default; torchscript for npu-static and rknn)",
    )
    export.add_argument(
        "--opset",
        type=int,
        default=None,
        help=f"ONNX opset (default {DEFAULT_OPSET}; for npu-static and rknn, the profile's: 17 with torchscript)",
    )
    export.add_argument(
        "--static-batch",
        default="1",
        help="npu-static and rknn: the fixed batch sizes, one graph each (default 1); several make one bundle "
        "per size inside --out, named <out>-b<N>",
    )
    export.add_argument(
        "--target",
        choices=[str(t) for t in Target if not t.elsewhere],
        default=str(Target.ONNX),
        help="target: the fp32 export (onnx, the default), npu-static (fixed shapes for NPU compilers), or a "
        "recipe that compiles one; the manifest records the recipe, its tool versions and settings",
    )
    export.add_argument("--seed", type=int, default=0, help="seed for synthetic weights (default 0)")
    export.add_argument(
        "--deploy-isa",
        default=None,
        metavar="FLAGS",
        help="comma-separated CPU flags every deployment CPU has (e.g. avx512_vnni), recorded as the manifest's "
        "deploy_isa: an int8 graph with full-range weights then passes int8_saturation, saying the risk was accepted",
    )
    export.add_argument(
        "--deploy-cpu",
        action="append",
        default=None,
        metavar="ALIAS",
        help="a CPU the bundle is for (zen3, zen2, haswell, sandybridge: conformance/emulation.toml); repeatable; "
        "recorded as the manifest's deploy_cpus, on each of which `pytest --artifacts` checks it under emulation",
    )
    export.add_argument(
        "--export-cache",
        type=Path,
        default=Path(".cache/exports"),
        help="export cache shared with pytest runs (default .cache/exports)",
    )
    export.set_defaults(run=export_command)
    add_toolchain_parser(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))
