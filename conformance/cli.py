"""`python -m conformance`: merge shard results (and, for releases, export bundles)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance import atomic
from conformance.report import html, schema


def merge_command(args: argparse.Namespace) -> int:
    try:
        docs = [(str(path), schema.load(path)) for path in args.results]
    except schema.ResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    merged = schema.merge(docs)
    atomic.write_json(args.out / "results.json", merged)
    html.write(merged, args.out / "report.html")
    print(f"merged {len(docs)} shard(s), {len(merged['tests'])} tests, verdict {merged['verdict']} "
          f"-> {args.out / 'report.html'}")
    return int(merged["exit_status"])


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("merge", help="merge several results.json into one results.json + report.html")
    merge.add_argument("results", nargs="+", type=Path, help="results.json files, one per shard")
    merge.add_argument("--out", type=Path, default=Path("reports/merged"), help="output folder")
    merge.set_defaults(run=merge_command)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))
