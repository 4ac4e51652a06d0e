"""The producers' own libraries (transformers, open_clip; the `producers` extra), on the same weights as `clip`.

Used for another tool's layout: the producer's model built from the reference's OpenAI state dict (cross-checked
against `clip`'s, so that a conversion slip shows up as a reference problem), its tokenizer and its image
preprocessing. Each library is imported only when asked for; `missing()` says which is not installed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conformance.architecture import architecture_mismatch
from conformance.clipcompat import clip
from conformance.encoders import CLIP_MEAN, CLIP_STD, ClipModel
from conformance.results import error_line
from conformance.variants import Variant
from conformance.weights import LoadedModel, Provenance, WeightsError, build_from_state_dict, sha256_of

EXTRA = "pip install -e '.[producers]'"
OPENAI_MEAN, OPENAI_STD = CLIP_MEAN, CLIP_STD


def missing(library: str) -> str | None:
    """Why `library` cannot be used here (not installed), or None."""
    module = {"transformers": "transformers", "open_clip": "open_clip"}[library]
    if importlib.util.find_spec(module) is None:
        return f"{library} is not installed (the producers' libraries are an optional extra: {EXTRA})"
    return None


# OpenAI's names -> transformers' CLIPModel names: per residual block, then once per model. in_proj splits into
# q, k and v; the two projections are transposed into Linear weights (below).
BLOCK_PAIRS = (
    ("attn.out_proj", "self_attn.out_proj"),
    ("ln_1", "layer_norm1"),
    ("ln_2", "layer_norm2"),
    ("mlp.c_fc", "mlp.fc1"),
    ("mlp.c_proj", "mlp.fc2"),
)
MODEL_PAIRS = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",  # sic: transformers' spelling
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "logit_scale": "logit_scale",
}
PROJECTIONS = {"text_projection": "text_projection.weight", "visual.proj": "visual_projection.weight"}


def _towers(variant: Variant) -> tuple[tuple[str, str, int], ...]:
    if not isinstance(variant.vision_layers, int):
        raise ValueError(f"{variant.name}: transformers' CLIPModel has no ResNet image tower")
    return (
        ("transformer", "text_model", variant.transformer_layers),
        ("visual.transformer", "vision_model", variant.vision_layers),
    )


def _towers_in(hf: dict[str, torch.Tensor]) -> tuple[tuple[str, str, int], ...]:
    """The towers as a transformers state dict holds them (its own layer counts: the variant is checked after)."""

    def layers(prefix: str) -> int:
        return len({k.split(".")[3] for k in hf if k.startswith(f"{prefix}.encoder.layers.")})

    return (
        ("transformer", "text_model", layers("text_model")),
        ("visual.transformer", "vision_model", layers("vision_model")),
    )


def _block_names(towers: tuple[tuple[str, str, int], ...]) -> list[tuple[str, str]]:
    """(OpenAI name, transformers name) of every block tensor that maps one to one."""
    return [
        (f"{src}.resblocks.{i}.{ours}.{kind}", f"{dst}.encoder.layers.{i}.{theirs}.{kind}")
        for src, dst, layers in towers
        for i in range(layers)
        for ours, theirs in BLOCK_PAIRS
        for kind in ("weight", "bias")
    ]


def hf_state_dict(model: ClipModel, variant: Variant) -> dict[str, torch.Tensor]:
    """OpenAI's names mapped onto transformers' CLIPModel (ViT image towers only)."""
    sd = {k: t.detach().float().clone() for k, t in model.state_dict().items()}
    towers = _towers(variant)
    out = {theirs: sd[ours] for ours, theirs in [*_block_names(towers), *MODEL_PAIRS.items()]}
    out |= {theirs: sd[ours].T.contiguous() for ours, theirs in PROJECTIONS.items()}
    for src, dst, layers in towers:
        for i in range(layers):
            s, d = f"{src}.resblocks.{i}.attn.in_proj_", f"{dst}.encoder.layers.{i}.self_attn."
            for kind in ("weight", "bias"):
                for part, tensor in zip("qkv", sd[s + kind].chunk(3), strict=True):
                    out[f"{d}{part}_proj.{kind}"] = tensor
    return out


def openai_state_dict(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse: a transformers CLIPModel's state dict under OpenAI's names (what `clip` builds from)."""
    towers = _towers_in(hf)
    out = {ours: hf[theirs].float() for ours, theirs in [*_block_names(towers), *MODEL_PAIRS.items()]}
    out |= {ours: hf[theirs].float().T.contiguous() for ours, theirs in PROJECTIONS.items()}
    for src, dst, layers in towers:
        for i in range(layers):
            s, d = f"{src}.resblocks.{i}.attn.in_proj_", f"{dst}.encoder.layers.{i}.self_attn."
            for kind in ("weight", "bias"):
                out[s + kind] = torch.cat([hf[f"{d}{part}_proj.{kind}"].float() for part in "qkv"])
    return out


def hf_clip_model(model: ClipModel, variant: Variant) -> Any:
    """transformers' CLIPModel holding `model`'s weights (QuickGELU; pooling at the first EOT, id 49407)."""
    if variant.vision_patch_size is None:
        raise ValueError(f"{variant.name}: transformers' CLIPModel has no ResNet image tower")
    from transformers import CLIPConfig, CLIPModel

    text = {
        "vocab_size": variant.vocab_size,
        "hidden_size": variant.transformer_width,
        "intermediate_size": 4 * variant.transformer_width,
        "num_hidden_layers": variant.transformer_layers,
        "num_attention_heads": variant.transformer_heads,
        "max_position_embeddings": variant.context_length,
        "hidden_act": "quick_gelu",
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 1,
        "projection_dim": variant.embed_dim,
    }
    vision = {
        "hidden_size": variant.vision_width,
        "intermediate_size": 4 * variant.vision_width,
        "num_hidden_layers": variant.vision_layers,
        "num_attention_heads": variant.vision_width // 64,
        "image_size": variant.image_resolution,
        "patch_size": variant.vision_patch_size,
        "hidden_act": "quick_gelu",
        "projection_dim": variant.embed_dim,
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=variant.embed_dim)
    hf = CLIPModel(config).eval()
    missing_keys, unexpected = hf.load_state_dict(hf_state_dict(model, variant), strict=False)
    if missing_keys or unexpected:
        raise ValueError(f"the OpenAI -> transformers mapping left {missing_keys} unset and {unexpected} unused")
    return hf


def open_clip_model(model: ClipModel, variant: Variant) -> Any:
    """open_clip's model from `model`'s OpenAI state dict, through open_clip's own OpenAI loader (which stores the
    fp16 tensors in fp16, as OpenAI's checkpoints do), with open_clip's OpenAI preprocessing configuration."""
    from open_clip.model import build_model_from_openai_state_dict
    from open_clip.transform import PreprocessCfg

    state = {k: t.detach().clone() for k, t in model.state_dict().items()}
    built = build_model_from_openai_state_dict(state).float().eval()
    built.visual.preprocess_cfg = vars(PreprocessCfg(size=variant.image_resolution))
    return built


def producer_embeddings(library: str, built: Any, image: np.ndarray, tokens: np.ndarray) -> dict[str, np.ndarray]:
    """The producer model's image and text embeddings (unnormalised) for the suite's canonical inputs."""
    with torch.no_grad():
        pixels, ids = torch.from_numpy(image), torch.from_numpy(tokens).long()
        if library == "transformers":
            return {
                "image": built.get_image_features(pixel_values=pixels).numpy(),
                "text-full": built.get_text_features(input_ids=ids).numpy(),
            }
        return {"image": built.encode_image(pixels).numpy(), "text-full": built.encode_text(ids).numpy()}


def build(library: str, model: ClipModel, variant: Variant) -> Any:
    return hf_clip_model(model, variant) if library == "transformers" else open_clip_model(model, variant)


def save_hf_tokenizer(folder: Path) -> None:
    """transformers' CLIPTokenizer files made from `clip`'s own BPE vocabulary (no hub is reachable): what a check
    of an HF tokenizer against clip.tokenize then tests is this conversion and transformers' tokenizer code."""
    from transformers import CLIPTokenizer

    ours = clip.simple_tokenizer.SimpleTokenizer()
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    vocab.write_text(json.dumps(ours.encoder), encoding="utf-8")
    ranked = sorted(ours.bpe_ranks.items(), key=lambda item: item[1])
    merges.write_text("#version: 0.2\n" + "\n".join(" ".join(pair) for pair, _ in ranked) + "\n", encoding="utf-8")
    CLIPTokenizer(str(vocab), str(merges), model_max_length=77).save_pretrained(str(folder))  # openai's config's


def hf_image_processor(resolution: int) -> Any:
    """transformers' CLIPImageProcessor with OpenAI's settings (bicubic shortest-edge resize, centre crop)."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": resolution},
        crop_size={"height": resolution, "width": resolution},
        image_mean=list(OPENAI_MEAN),
        image_std=list(OPENAI_STD),
    )


def load_hf_checkpoint(folder: Path, variant: Variant) -> LoadedModel:
    """A Hugging Face CLIP checkpoint folder (config.json and model.safetensors) as `clip`'s model: loaded by
    transformers, renamed to OpenAI's names, its architecture checked against `variant`, built as `--weights` is."""
    stored = [folder / name for name in ("model.safetensors", "pytorch_model.bin") if (folder / name).is_file()]
    if not (folder / "config.json").is_file() or not stored:
        raise WeightsError(
            f"{folder} is not a Hugging Face CLIP checkpoint: it needs config.json and model.safetensors "
            "(or pytorch_model.bin)"
        )
    why = missing("transformers")
    if why:
        raise WeightsError(f"--hf-weights: {why}")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        acts = {config.get(tower, {}).get("hidden_act", "quick_gelu") for tower in ("text_config", "vision_config")}
    except (OSError, ValueError, AttributeError) as exc:
        raise WeightsError(f"{folder}/config.json is unreadable: {error_line(exc)}") from None
    if acts != {"quick_gelu"}:  # clip's model is QuickGELU throughout: another activation would be another model
        raise WeightsError(f"{folder} uses hidden_act {sorted(acts)}; OpenAI's CLIP (and `clip`) use quick_gelu")
    try:
        from transformers import CLIPModel

        state = openai_state_dict(CLIPModel.from_pretrained(str(folder)).state_dict())
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign checkpoint, reported in one line
        raise WeightsError(f"{folder} could not be loaded as a CLIP checkpoint: {error_line(exc)}") from None
    wrong = architecture_mismatch(state, variant)
    if wrong:
        found = ", ".join(f"{key} {got!r} (expected {want!r})" for key, (got, want) in wrong.items())
        raise WeightsError(f"{folder} does not hold a {variant.name} model: {found}")
    provenance = Provenance(kind="hf-checkpoint", sha256=sha256_of(stored[0]), path=str(folder))
    return LoadedModel(build_from_state_dict(state), provenance)
