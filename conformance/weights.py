"""Weights: an official checkpoint verified by SHA256, or seeded synthetic weights of the exact architecture."""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from conformance import synthetic
from conformance.architecture import architecture_mismatch
from conformance.clipcompat import clip
from conformance.encoders import ClipModel
from conformance.results import error_line
from conformance.variants import Variant

DEFAULT_CACHE = Path("~/.cache/clip").expanduser()


class WeightsError(RuntimeError):
    """A checkpoint that cannot be trusted or read; the message says which file and why."""


@dataclass(frozen=True)
class Provenance:
    kind: str  # "official", "unverified-file" or "synthetic"
    sha256: str | None = None
    path: str | None = None
    seed: int | None = None
    scheme: str | None = None  # synthetic weights only: how they were drawn (`synthetic.SCHEME`)

    @property
    def weights_id(self) -> str:
        """What identifies these weights in a cache key."""
        return f"sha256:{self.sha256}" if self.sha256 else f"{self.scheme}-seed{self.seed}"

    def describe(self) -> str:
        if self.kind == "synthetic":
            return f"synthetic ({self.scheme}), seed {self.seed}"
        return f"{self.kind}, sha256 {self.sha256} ({self.path})"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Provenance:
        return cls(**{k: data.get(k) for k in ("kind", "sha256", "path", "seed", "scheme")})  # type: ignore[arg-type]

    @classmethod
    def synthetic(cls, seed: int) -> Provenance:
        return cls(kind="synthetic", seed=seed, scheme=synthetic.SCHEME)


@dataclass
class LoadedModel:
    model: ClipModel
    provenance: Provenance


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def find_checkpoint(variant: Variant, weights: Path | None) -> Path | None:
    """The checkpoint to use: `weights` as a file, or the official file name inside `weights` or ~/.cache/clip."""
    if weights is not None and not weights.is_dir():
        if not weights.exists():
            raise WeightsError(f"weights file {weights} does not exist")
        return weights
    if variant.checkpoint_file is None:
        return None
    folder = weights if weights is not None else DEFAULT_CACHE
    candidate = folder / variant.checkpoint_file
    return candidate if candidate.is_file() else None


def build_synthetic(variant: Variant, seed: int) -> ClipModel:
    """The exact architecture, seeded, with no parameter left at a neutral value (`synthetic.SCHEME`)."""
    return synthetic.build_synthetic(variant, seed)


def _is_torchscript_archive(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def _state_dict_of(path: Path) -> dict[str, torch.Tensor]:
    if _is_torchscript_archive(path):
        # The official files. We read them as `clip.load` does, but openai-clip 1.0.1 cannot read plain
        # state dicts at all (its loader raises EOFError on them), so both kinds go through `build_model` below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates torch.jit.load
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    return torch.load(path, map_location="cpu", weights_only=True)


def build_from_state_dict(state_dict: dict[str, torch.Tensor]) -> ClipModel:
    """`clip.model.build_model`, without its fp16 rounding of fp32 weights.

    `build_model` converts the model to fp16 before loading (`convert_weights`), and `clip.load` then
    calls `.float()`: lossless for the official fp16 files, but it rounds a fine-tuned fp32 checkpoint.
    Loading the state dict again after `.float()` keeps every weight bitwise as stored.
    """
    model = clip.model.build_model(dict(state_dict)).float()
    model.load_state_dict({k: v for k, v in state_dict.items() if k in model.state_dict()})
    return model.eval()


def _unreadable(path: Path, exc: Exception) -> WeightsError:
    return WeightsError(f"{path} could not be loaded as a CLIP checkpoint: {error_line(exc)}")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path} is not a PyTorch checkpoint (not a zip archive: truncated or corrupt?)")
    try:
        return _state_dict_of(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file, reported in one line
        raise _unreadable(path, exc) from None


def _check_architecture(state_dict: dict[str, torch.Tensor], variant: Variant, path: Path) -> None:
    """Every hyperparameter, as `build_model` derives it: RN101, ViT-B/16 and ViT-B/32 share embed dim, text
    width, resolution and context length, so fewer would let one run as another."""
    wrong = architecture_mismatch(state_dict, variant)
    if wrong:
        found = ", ".join(f"{key} {got!r} (expected {want!r})" for key, (got, want) in wrong.items())
        raise WeightsError(f"{path} does not hold a {variant.name} model: {found}")


def _build(state_dict: dict[str, torch.Tensor], path: Path) -> ClipModel:
    try:
        return build_from_state_dict(state_dict)
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, exc) from None


def load_checkpoint(variant: Variant, path: Path) -> LoadedModel:
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty")
    digest = sha256_of(path)
    if variant.sha256 and digest == variant.sha256:
        kind = "official"
    elif variant.sha256 and path.name == variant.checkpoint_file:
        raise WeightsError(
            f"{path} has sha256 {digest}, but the official {variant.name} checkpoint has {variant.sha256}: "
            "the file is corrupt, truncated or not the official one"
        )
    else:
        kind = "unverified-file"
        warnings.warn(
            f"{path} is not a known {variant.name} checkpoint; using it unverified (sha256 {digest})", stacklevel=2
        )
    state_dict = _read_state_dict(path)
    _check_architecture(state_dict, variant, path)
    return LoadedModel(_build(state_dict, path), Provenance(kind=kind, sha256=digest, path=str(path)))


def resolve(variant: Variant, weights: Path | None = None, seed: int = 0) -> LoadedModel:
    """The model for `variant`: from a checkpoint when one is given or cached, else synthetic."""
    path = find_checkpoint(variant, weights)
    if path is None:
        return LoadedModel(build_synthetic(variant, seed), Provenance.synthetic(seed))
    return load_checkpoint(variant, path)


__all__ = ["LoadedModel", "Provenance", "WeightsError", "build_synthetic", "resolve", "sha256_of"]
