"""`python -m conformance toolchain install rknn` and `python -m conformance toolchain status`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.toolchains import hosts, rknn

# Exit codes: 0 installed, 1 the install failed / status found nothing installed.
NOT_INSTALLED = 1
INSTALL_HINT = f"not installed: run python -m conformance toolchain install {rknn.TOOLCHAIN}"


def add_toolchain_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `toolchain {install,status}` on the top-level parser's subcommands."""
    toolchain = subparsers.add_parser(
        "toolchain", help="install or inspect vendor toolchains (rknn) and producers' host code in private venvs"
    )
    actions = toolchain.add_subparsers(dest="action", required=True)
    install = actions.add_parser("install", help="create the pinned venv (about a minute, 1.5 GB)")
    names = [rknn.TOOLCHAIN, *(h.name for h in hosts.HOSTS.values())]
    install.add_argument("name", choices=names, help="the toolchain, or a producer's host code (host-LIBRARY)")
    install.add_argument("--force", action="store_true", help="rebuild even if a verified install exists")
    status = actions.add_parser("status", help="where each toolchain is installed, its versions and size")
    for sub in (install, status):
        sub.add_argument(
            "--root",
            type=Path,
            default=None,
            help=f"toolchains folder (default: ${rknn.ROOT_ENV}, else .cache/toolchains in the checkout)",
        )
    toolchain.set_defaults(run=run_toolchain)


def _install(args: argparse.Namespace) -> int:
    say = lambda message: print(message, flush=True)  # noqa: E731
    try:
        host = next((h for h in hosts.HOSTS.values() if h.name == args.name), None)
        if host is not None:
            hosts.install_host(host, say, root=args.root, force=args.force)
        else:
            rknn.install(say, root=args.root, force=args.force)
    except rknn.ToolchainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return NOT_INSTALLED
    return 0


def _status(args: argparse.Namespace) -> int:
    for host in hosts.HOSTS.values():
        python = hosts.find_host(host, args.root)
        where = f"{host.package} {host.version} in {python.parent.parent}" if python else hosts.install_hint(host)
        print(f"{host.name}: {where}")
    found = rknn.find_toolchain(args.root)
    if found is None:
        print(f"{rknn.TOOLCHAIN}: {INSTALL_HINT} (expected in {rknn.toolchain_dir(args.root)})")
        return NOT_INSTALLED
    key = ("torch", "numpy", "onnx", "onnxruntime", "protobuf")
    pins = ", ".join(f"{name} {found.packages[name]}" for name in key if name in found.packages)
    print(
        f"{rknn.TOOLCHAIN}: rknn-toolkit2 {found.version} in {found.directory}\n"
        f"  python {found.python}\n  {pins}\n"
        f"  {found.size_bytes / 1e9:.1f} GB, installed in {found.install_seconds:.0f} s, pins sha256 "
        f"{found.pins_sha256[:12]}"
    )
    return 0


def run_toolchain(args: argparse.Namespace) -> int:
    return _install(args) if args.action == "install" else _status(args)
