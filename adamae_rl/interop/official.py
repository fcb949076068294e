"""Official VideoMAE, VideoMAE V2 and AdaMAE ``.pth`` checkpoints.

The three codebases share one key scheme (timm-style ViT blocks):

- pre-training: ``encoder.patch_embed.proj``, ``encoder.blocks.i.{norm1, attn.qkv.weight,
  attn.q_bias, attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``encoder.norm``,
  ``encoder_to_decoder``, ``mask_token``, ``decoder.blocks.i``, ``decoder.norm``, ``decoder.head``;
- fine-tuned: the same encoder without the ``encoder.`` prefix, with ``fc_norm`` and ``head``
  (mean pooling: no final ``norm``);
- AdaMAE's sampler: ``encoder.pos_embed_probs`` ``[1, N, D]`` and ``encoder.get_token_probs``:
  transformer block(s) (8 heads, no qkv bias, dropout 0.1, LayerNorm eps 1e-5), then a linear
  head.

Weights sit under ``model`` or ``module`` (or at the top level); ``args`` (an
``argparse.Namespace``, read through the allow-list in :mod:`adamae_rl.interop.safe`) tells the
clip size, frame count and model name when present.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch

from adamae_rl.interop.weights import (
    Weights,
    WeightsError,
    check_tokens,
    count_blocks,
    infer_config,
    is_sinusoid,
    merge_config,
    mlp_ratio_for,
)

# Inside one block: official name -> this toolkit's name.
BLOCK_KEYS = {
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
    "attn.qkv.weight": "attn.qkv.weight", "attn.q_bias": "attn.q_bias", "attn.v_bias": "attn.v_bias",
    "attn.proj.weight": "attn.proj.weight", "attn.proj.bias": "attn.proj.bias",
    "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.0.weight", "mlp.fc1.bias": "mlp.0.bias",
    "mlp.fc2.weight": "mlp.2.weight", "mlp.fc2.bias": "mlp.2.bias",
}
# Heads of the official model names (encoder, decoder): the weights do not tell them.
HEADS_BY_SIZE = {"small": (6, 3), "base": (12, 6), "large": (16, 8), "huge": (16, 8), "giant": (16, 8)}
# AdaMAE's sampler block as its code builds it.
ADAMAE_SAMPLER = dict(num_heads=8, qkv_bias=False, dropout=0.1, norm_eps=1e-5)
WEIGHT_ENTRIES = ("model", "module", "state_dict")


def state_dict_of(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The weights inside a loaded checkpoint: under ``model``/``module`` or at the top level."""
    if not isinstance(obj, dict):
        raise WeightsError(f"{source} holds a {type(obj).__name__}, not a dict of weights")
    for key in WEIGHT_ENTRIES:
        if isinstance(obj.get(key), dict):
            state = obj[key]
            break
    else:
        state = obj
    others = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if others:
        raise WeightsError(f"{source}: expected weights under one of {WEIGHT_ENTRIES} or at the top level; "
                           f"found non-tensor entries {others}")
    if state and all(k.startswith("module.") for k in state):  # saved from a DDP wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def read_official(obj: dict[str, Any], source: str) -> Weights:
    """Map an official checkpoint onto this toolkit's names; every tensor must find a place.

    Raises:
        WeightsError: listing the keys that have no counterpart here (e.g. layer scale
            ``gamma_1``, cosine attention ``attn.scale``), or a learned position table.
    """
    state = state_dict_of(obj, source)
    model: dict[str, torch.Tensor] = {}
    classifier: dict[str, torch.Tensor] = {}
    sampler: dict[str, torch.Tensor] = {}
    notes: list[str] = []
    unknown: list[str] = []
    for key, value in state.items():
        bare = key[len("encoder."):] if key.startswith("encoder.") else key
        if not _place(key, bare, value, model, classifier, sampler, notes):
            unknown.append(key)
    if unknown:
        raise WeightsError(
            f"{source}: {len(unknown)} tensors have no counterpart in this toolkit's MAE: {sorted(unknown)}"
        )
    meta = metadata(obj.get("args"))
    config = merge_config(infer_config(model), meta, source)
    weights = Weights(model=model, config=config, classifier=classifier or None, source=source, notes=notes)
    weights.final_norm = "norm.weight" in model or not classifier
    if sampler:
        weights.policy, weights.policy_config = sampler_weights(sampler, config, source)
    return weights


def _place(key: str, bare: str, value: torch.Tensor, model: dict, classifier: dict, sampler: dict, notes: list) -> bool:
    """Put one official tensor where it belongs; False if it belongs nowhere."""
    if m := re.fullmatch(r"patch_embed\.proj\.(weight|bias)", bare):
        model[f"patch_embed.{m.group(1)}"] = value
    elif m := re.fullmatch(r"blocks\.(\d+)\.(.+)", bare):
        if m.group(2) not in BLOCK_KEYS:
            return False
        model[f"blocks.{m.group(1)}.{BLOCK_KEYS[m.group(2)]}"] = value
    elif m := re.fullmatch(r"norm\.(weight|bias)", bare):
        model[f"norm.{m.group(1)}"] = value
    elif bare == "pos_embed":
        if not is_sinusoid(value):
            raise WeightsError(f"{key} is a learned position table; this toolkit's MAE uses the fixed sine/cosine table")
        notes.append(f"{key}: the fixed sine/cosine table, rebuilt by the model")
    elif key in ("encoder_to_decoder.weight", "mask_token"):
        model[key] = value
    elif m := re.fullmatch(r"decoder\.blocks\.(\d+)\.(.+)", key):
        if m.group(2) not in BLOCK_KEYS:
            return False
        model[f"decoder_blocks.{m.group(1)}.{BLOCK_KEYS[m.group(2)]}"] = value
    elif m := re.fullmatch(r"decoder\.(norm|head)\.(weight|bias)", key):
        model[f"{'decoder_norm' if m.group(1) == 'norm' else 'head'}.{m.group(2)}"] = value
    elif m := re.fullmatch(r"(fc_norm|head)\.(weight|bias)", key):  # fine-tuned classifier (no prefix)
        classifier[key] = value
    elif bare == "pos_embed_probs" or bare.startswith("get_token_probs."):
        sampler[bare] = value
    else:
        return False
    return True


def sampler_weights(sampler: dict[str, torch.Tensor], config: dict[str, Any], source: str) -> tuple[dict, dict]:
    """AdaMAE's ``pos_embed_probs`` + ``get_token_probs.{blocks..., linear}`` -> AdaptiveMasking names."""
    if "pos_embed_probs" not in sampler:
        raise WeightsError(f"{source}: sampler weights without encoder.pos_embed_probs")
    table = sampler.pop("pos_embed_probs")
    state = {"pos_embed": table.reshape(1, *table.shape[-2:])}
    stages = sorted({int(k.split(".")[1]) for k in sampler})
    blocks = [i for i in stages if f"get_token_probs.{i}.norm1.weight" in sampler]
    heads = [i for i in stages if f"get_token_probs.{i}.weight" in sampler]
    if len(heads) != 1 or stages != blocks + heads:
        raise WeightsError(f"{source}: get_token_probs stages {stages} are not block(s) followed by one linear layer")
    unknown = []
    for key, value in sampler.items():
        _, stage, inner = key.split(".", 2)
        if int(stage) in blocks:
            if inner not in BLOCK_KEYS:
                unknown.append(f"encoder.{key}")
                continue
            state[f"blocks.{blocks.index(int(stage))}.{BLOCK_KEYS[inner]}"] = value
        elif inner in ("weight", "bias"):
            state[f"head.{inner}"] = value
        else:
            unknown.append(f"encoder.{key}")
    if unknown:
        raise WeightsError(f"{source}: sampler tensors with no counterpart: {sorted(unknown)}")
    num_tokens, width = state["pos_embed"].shape[1:]
    check_tokens(config, num_tokens, f"{source}: encoder.pos_embed_probs")
    options = dict(
        ADAMAE_SAMPLER, num_tokens=num_tokens, embed_dim=width, width=width, depth=count_blocks(state, "blocks."),
        mlp_ratio=mlp_ratio_for(width, state["blocks.0.mlp.0.weight"].shape[0]),
    )
    options["qkv_bias"] = "blocks.0.attn.q_bias" in state
    return state, options


def metadata(args: Any) -> dict[str, Any]:
    """Geometry from an official run's ``args`` (a dict after safe loading), where present."""
    if not isinstance(args, dict):
        return {}
    meta: dict[str, Any] = {}
    if isinstance(args.get("input_size"), int):
        meta["img_size"] = args["input_size"]
    if isinstance(args.get("num_frames"), int):
        meta["num_frames"] = args["num_frames"]
    if isinstance(args.get("tubelet_size"), int):
        meta["tubelet_size"] = args["tubelet_size"]
    if isinstance(args.get("normlize_target"), bool):  # (sic) the official option's name
        meta["norm_target"] = args["normlize_target"]
    for key in ("num_heads", "decoder_num_heads"):  # this toolkit's exports record them for any width
        if isinstance(args.get(key), int):
            meta[key] = args[key]
    name = str(args.get("model", ""))
    if m := re.search(r"patch(\d+)", name):
        meta["patch_size"] = int(m.group(1))
    for size, (enc, dec) in HEADS_BY_SIZE.items():
        if f"_{size}_" in name:
            meta["num_heads"] = enc
            if name.startswith("pretrain"):
                meta["decoder_num_heads"] = dec
    return meta


# --------------------------------------------------------------------------------------------------
# Writing the official layout
# --------------------------------------------------------------------------------------------------
# Official model-name sizes by encoder width (the reverse of HEADS_BY_SIZE's names).
SIZE_BY_WIDTH = {384: "small", 768: "base", 1024: "large", 1280: "huge", 1408: "giant"}
OFFICIAL_BLOCK_KEYS = {mine: theirs for theirs, mine in BLOCK_KEYS.items()}


def official_state(weights: Weights) -> dict[str, torch.Tensor]:
    """``weights`` under the official names: VideoMAE's pre-training layout (AdaMAE's sampler
    included), or the fine-tuned layout when the weights hold a classifier.

    Raises:
        WeightsError: for what the official code cannot hold (a learned or 3-D position table, an
            attention distance bias).
    """
    cfg = weights.config
    if cfg.get("pos_embed", "sincos_1d") != "sincos_1d" or "pos_embed" in weights.model:
        raise WeightsError(f"{weights.source}: only VideoMAE's fixed 1-D sine/cosine position table has an official layout "
                           f"(model.pos_embed={cfg.get('pos_embed')})")
    if cfg.get("attn_bias", "none") != "none":
        raise WeightsError(f"{weights.source}: model.attn_bias={cfg['attn_bias']} has no counterpart in the official code")
    prefix = "" if weights.classifier else "encoder."
    out: dict[str, torch.Tensor] = {}
    for key, value in weights.model.items():
        if weights.classifier and not key.startswith(("patch_embed.", "blocks.", "norm.")):
            continue  # a fine-tuned model keeps no decoder
        out[_official_name(key, prefix, weights.source)] = value
    for key, value in (weights.classifier or {}).items():
        out[key] = value  # fc_norm.*, head.*: the same names
    if weights.policy is not None:
        out.update(_official_sampler(weights.policy))
    return out


def _official_name(key: str, prefix: str, source: str) -> str:
    """This toolkit's MAE name -> the official one (the inverse of :func:`_place`)."""
    if m := re.fullmatch(r"patch_embed\.(weight|bias)", key):
        return f"{prefix}patch_embed.proj.{m.group(1)}"
    if m := re.fullmatch(r"blocks\.(\d+)\.(.+)", key):
        return f"{prefix}blocks.{m.group(1)}.{OFFICIAL_BLOCK_KEYS[m.group(2)]}"
    if m := re.fullmatch(r"norm\.(weight|bias)", key):
        return f"{prefix}norm.{m.group(1)}"
    if key in ("encoder_to_decoder.weight", "mask_token"):
        return key
    if m := re.fullmatch(r"decoder_blocks\.(\d+)\.(.+)", key):
        return f"decoder.blocks.{m.group(1)}.{OFFICIAL_BLOCK_KEYS[m.group(2)]}"
    if m := re.fullmatch(r"(decoder_norm|head)\.(weight|bias)", key):
        return f"decoder.{'norm' if m.group(1) == 'decoder_norm' else 'head'}.{m.group(2)}"
    raise WeightsError(f"{source}: tensor {key} has no place in the official layout")


def _official_sampler(policy: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """AdaptiveMasking names -> ``encoder.pos_embed_probs`` and ``encoder.get_token_probs.*``."""
    depth = count_blocks(policy, "blocks.")
    out = {"encoder.pos_embed_probs": policy["pos_embed"]}
    for key, value in policy.items():
        if m := re.fullmatch(r"blocks\.(\d+)\.(.+)", key):
            out[f"encoder.get_token_probs.{m.group(1)}.{OFFICIAL_BLOCK_KEYS[m.group(2)]}"] = value
        elif m := re.fullmatch(r"head\.(weight|bias)", key):
            out[f"encoder.get_token_probs.{depth}.{m.group(1)}"] = value
    return out


def official_args(weights: Weights) -> argparse.Namespace:
    """The ``args`` an official run stores, so that its loaders (and this reader) know the geometry:
    the model name (size, patch, clip side), clip size, frames, tubelet, target normalization,
    decoder depth, and the heads for widths without an official name."""
    cfg = weights.config
    size = SIZE_BY_WIDTH.get(int(cfg["embed_dim"]), "custom")
    kind = "vit" if weights.classifier else "pretrain_videomae"
    args = argparse.Namespace(
        model=f"{kind}_{size}_patch{cfg['patch_size']}_{cfg.get('img_size', 224)}",
        input_size=cfg.get("img_size"), num_frames=cfg.get("num_frames"), tubelet_size=cfg.get("tubelet_size"),
        num_heads=cfg.get("num_heads"), decoder_num_heads=cfg.get("decoder_num_heads"),
        decoder_depth=cfg.get("decoder_depth"),
    )
    if "norm_target" in cfg:
        args.normlize_target = bool(cfg["norm_target"])  # (sic) the official option's name
    if weights.classifier:
        args.nb_classes = int(weights.classifier["head.weight"].shape[0])
    return args


def write_official(weights: Weights, path: str | Path) -> Path:
    """An official-layout ``.pth`` (``{"model": state, "args": Namespace}``), written atomically."""
    from adamae_rl.utils.checkpoint import atomic_save

    return atomic_save({"model": official_state(weights), "args": official_args(weights)}, Path(path))
