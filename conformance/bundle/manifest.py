"""Reading a release bundle: `manifest.json` parsed, and each graph as an Artifact with its Case.

The manifest (schema "clip-conformance-bundle/3", documented in docs/release.md and docs/emulation.md; /2 is still read,
and lacks only `deploy_cpus`) records the variant, the
weights' provenance, exporter, opset, tool versions, every file's name, size and sha256, and each
graph's encoder, precision, target, shape profile and I/O contract. `write.write_bundle` makes one;
`rules` holds what makes one trustworthy, and `checks.bundle.check_bundle_integrity` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance import atomic, emulation
from conformance.artifact import Artifact
from conformance.case import Case, Target
from conformance.encoders import EncoderKind
from conformance.isa import known_flags, saturation_rule
from conformance.variants import UnknownVariantError, Variant, get
from conformance.weights import Provenance

SCHEMA = "clip-conformance-bundle/3"  # 3: deploy_cpus, the CPUs the bundle is for (checked under emulation)
STILL_READ = ("clip-conformance-bundle/2",)
MANIFEST = "manifest.json"
GRAPH_FILES = {EncoderKind.IMAGE: "image.onnx", EncoderKind.TEXT_SPLIT: "text.onnx"}


class BundleError(RuntimeError):
    """A bundle that cannot be trusted; the message names the file and the problem."""


@dataclass
class Bundle:
    folder: Path
    manifest: dict[str, Any]
    variant: Variant

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def layout(self) -> None:
        """A bundle's contract is its manifest, not another tool's layout."""
        return None

    @property
    def provenance(self) -> Provenance:
        return Provenance.from_dict(self.manifest["provenance"])

    def encoders(self) -> list[EncoderKind]:
        return [EncoderKind(entry["encoder"]) for entry in self.manifest["graphs"].values()]

    def cases(self) -> tuple[list[Case], list[Case]]:
        """Each graph's case as the manifest records it, and the graphs together."""
        return [self.case(kind) for kind in self.encoders()], [self.case()]

    def case(self, encoder: EncoderKind | None = None) -> Case:
        """One graph's case, or, with no encoder, the bundle's graphs together (with the first graph's axes)."""
        graphs = self.manifest["graphs"]
        entry = graphs[str(encoder)] if encoder else next(iter(graphs.values()))
        record = {**self.manifest, **entry, "encoder": str(encoder) if encoder else None}
        if "emulated_cpu" in record:  # which CPU a check runs on is the run's to say (deploy_cpus), not a graph's
            raise ValueError("emulated_cpu is not a manifest field (a bundle names its CPUs in deploy_cpus)")
        return Case.from_record(record, bundle=self.folder)

    def graph(self, case: Case) -> Artifact:
        assert case.encoder is not None, "a graph is one encoder's"
        return self.artifact(case.encoder)

    def held(self, case: Case) -> list[EncoderKind]:
        return self.encoders()

    def missing(self, case: Case) -> dict[str, str]:
        """Nothing: a bundle holds what its manifest lists (bundle_integrity fails it otherwise)."""
        return {}

    def artifact(self, encoder: EncoderKind) -> Artifact:
        entry = self.manifest["graphs"][str(encoder)]
        sizes = {f["name"]: f["size"] for f in self.manifest["files"]}
        projection = entry.get("projection", {}).get("file")
        names = [*entry["files"], *([projection] if projection else [])]
        return Artifact(
            folder=self.folder,
            case=self.case(encoder),
            provenance=self.provenance,
            token_dtype=entry.get("token_dtype"),
            projection_file=projection,
            files={n: sizes.get(n, -1) for n in names},
            onnx_file=entry["file"],
            compiled=entry.get("compile"),
        )


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise BundleError(f"{folder} is not a folder")
    if not path.is_file():
        raise BundleError(f"{path} is missing: not a bundle made by `python -m conformance export`")
    try:
        manifest = atomic.read_document(path, SCHEMA, STILL_READ)
    except atomic.DocumentError as exc:
        raise BundleError(str(exc)) from None
    missing = [k for k in ("variant", "provenance", "exporter", "opset", "graphs", "files") if k not in manifest]
    if missing:
        raise BundleError(f"{path} lacks {', '.join(missing)}")
    return manifest


def open_bundle(folder: Path) -> Bundle:
    """The manifest, parsed; no file is hashed yet (that is `bundle_validation.file_problems`)."""
    manifest = read_manifest(folder)
    try:
        found = Bundle(folder, manifest, get(manifest["variant"]))
        for encoder in [*found.encoders(), None]:
            found.case(encoder)
    except UnknownVariantError as exc:
        raise BundleError(f"{folder / MANIFEST}: {exc}") from None
    except StopIteration:
        raise BundleError(f"{folder / MANIFEST}: lists no graphs") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{folder / MANIFEST}: a graph entry is malformed: {type(exc).__name__}: {exc}") from None
    for key, entry in manifest["graphs"].items():
        problem = runtime_options_problem((entry.get("compile") or {}).get("runtime_options"))
        if problem:
            raise BundleError(f"{folder / MANIFEST}: graph {key}: {problem}")
    declared = manifest.get("deploy_isa", [])
    if not isinstance(declared, list) or set(map(str, declared)) - known_flags():
        raise BundleError(
            f"{folder / MANIFEST}: deploy_isa {declared!r} is not a list of CPU flags from "
            f"{', '.join(sorted(known_flags()))}"
        )
    problem = deploy_cpus_problem(manifest)
    if problem:
        raise BundleError(f"{folder / MANIFEST}: {problem}")
    return found


def deploy_cpus_problem(manifest: dict[str, Any]) -> str | None:
    """`deploy_cpus` (schema 3): aliases of conformance/emulation.toml, each a CPU the bundle is checked on under
    emulation by default; anything else would make a release run skip the CPUs it claims to serve."""
    if "deploy_cpus" not in manifest:
        return None
    cpus = manifest["deploy_cpus"]
    if manifest.get("schema") != SCHEMA:
        return f"deploy_cpus came with {SCHEMA}; this manifest is {manifest.get('schema')}"
    known = emulation.table()
    if not isinstance(cpus, list) or not cpus or not all(isinstance(c, str) and c in known for c in cpus):
        table = ", ".join(known)
        return f"deploy_cpus {cpus!r} is not a non-empty list of CPUs from conformance/emulation.toml: {table}"
    targets = {str(entry.get("target", "onnx")) for entry in manifest["graphs"].values() if isinstance(entry, dict)}
    if not any(t in {str(x) for x in Target if x.emulable} for t in targets):
        return (
            f"deploy_cpus {cpus} names CPUs to check it on, but its graphs ({', '.join(sorted(targets))}) are not "
            "compiled graphs emulation runs: the claim would check nothing"
        )
    return None


def runtime_options_problem(options: object) -> str | None:
    """A graph may record only the onnxruntime options the suite knows to be needed for correctness (isa.toml's
    safe_runtime_options), as strings: anything else would change how every check, latency included, runs it."""
    if options is None:
        return None
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        return f"runtime_options {options!r} is not a mapping of option names to strings"
    allowed = saturation_rule().safe_runtime_options
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        return f"runtime_options {unknown} are not options a graph may record (allowed: {sorted(allowed)})"
    return None
