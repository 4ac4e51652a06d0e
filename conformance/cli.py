"""`python -m conformance`: merge shard results (and, for releases, export bundles)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance import atomic, variants, weights
from conformance.bundle.manifest import BundleError
from conformance.bundle.write import write_bundle
from conformance.case import DEFAULT_OPSET, Case, Exporter, Target
from conformance.compile.build import CompileError
from conformance.compile.recipes import recipe_for
from conformance.encoders import EncoderKind
from conformance.export import ExportCache, ExportError, ExportSpec
from conformance.report import html, schema

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
    try:
        loaded = weights.resolve(variant, args.weights, args.seed)
    except weights.WeightsError as exc:
        return _error(str(exc), BAD_WEIGHTS)
    print(f"{variant.name}: {loaded.provenance.describe()}", flush=True)
    cache = ExportCache(args.export_cache, progress=lambda m: print(m, flush=True))
    target = Target(args.target)
    cases = {kind: Case(variant, kind, Exporter(args.exporter), args.opset).on(target) for kind in BUNDLED}
    unsupported = recipe_for(target).unsupported(cases[EncoderKind.IMAGE]) if target.compiled else None
    if unsupported:
        return _error(unsupported, USAGE)
    try:
        artifacts = {kind: cache.get(ExportSpec(case), loaded.model, loaded.provenance) for kind, case in cases.items()}
        write_bundle(args.out, variant, artifacts)
    except (ExportError, CompileError) as exc:
        return _error(str(exc), EXPORT_FAILED)
    except (BundleError, OSError) as exc:
        return _error(str(exc), USAGE)
    print(f"bundle written: {args.out} (validate with: pytest --artifacts={args.out})")
    return 0


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
        default=str(Exporter.DYNAMO),
        help="torch exporter (default: dynamo, torch.onnx.export's default)",
    )
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    export.add_argument(
        "--target",
        choices=[str(t) for t in Target],
        default=str(Target.ONNX),
        help="compile target: the fp32 export (onnx, the default) or a recipe that compiles it; the manifest "
        "records the recipe, its tool versions and settings",
    )
    export.add_argument("--seed", type=int, default=0, help="seed for synthetic weights (default 0)")
    export.add_argument(
        "--export-cache",
        type=Path,
        default=Path(".cache/exports"),
        help="export cache shared with pytest runs (default .cache/exports)",
    )
    export.set_defaults(run=export_command)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))
