"""Converted weights in this toolkit's names, their geometry, and loading them into modules.

Every reader (official ``.pth``, Hugging Face directory, this toolkit's files) produces a
:class:`Weights`: state dicts under the names of :class:`~adamae_rl.models.VideoMAE`,
:class:`~adamae_rl.policies.adaptive.AdaptiveMasking` and the fine-tuning classifier, plus what
the source says about the geometry. Geometry that shapes reveal (widths, depths, patch and
tubelet sizes, channels, MLP ratio) is always inferred from the tensors; what shapes cannot
reveal (clip size, frame count, attention heads) comes from the source's metadata when it has
any, and stays unknown otherwise.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from adamae_rl.errors import UserError
from adamae_rl.models.videomae import MAEConfig, VideoMAE, sinusoid_table

log = logging.getLogger("adamae_rl.interop")

# MAEConfig fields in the order messages list them.
GEOMETRY_FIELDS = (
    "img_size", "num_frames", "patch_size", "tubelet_size", "in_chans", "embed_dim", "depth", "num_heads",
    "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio",
)
# Fields the sampler's weights and options fix (AdaptiveMasking attributes).
POLICY_FIELDS = ("num_tokens", "embed_dim", "width", "depth", "num_heads", "mlp_ratio", "qkv_bias", "norm_eps", "dropout")
ENCODER_PREFIXES = ("patch_embed.", "blocks.", "norm.")


class WeightsError(UserError, ValueError):
    """Weights that do not fit: unknown, missing or wrongly shaped tensors, other geometry."""


@dataclass
class Weights:
    """Weights in this toolkit's names.

    Attributes:
        model: ``VideoMAE`` state dict; encoder-only sources (fine-tuned, ``VideoMAEModel``)
            have no decoder entries.
        config: ``MAEConfig`` fields known from the source (shapes and metadata); ``norm_target``
            too when the source records it.
        policy: ``AdaptiveMasking`` state dict (AdaMAE's sampler), if the source has one.
        policy_config: the sampler's options (``POLICY_FIELDS``) known from the source.
        classifier: a fine-tuned model's ``fc_norm.*`` / ``head.*`` (``VideoClassifier`` names).
        final_norm: False when a fine-tuned source has no final encoder norm (mean pooling).
        source: where the weights came from, for messages.
        notes: source entries deliberately not kept, and why (e.g. a fixed position table).
    """

    model: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, torch.Tensor] | None = None
    policy_config: dict[str, Any] | None = None
    classifier: dict[str, torch.Tensor] | None = None
    final_norm: bool = True
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def has_decoder(self) -> bool:
        return "head.weight" in self.model

    def num_tensors(self) -> int:
        return len(self.model) + len(self.policy or {}) + len(self.classifier or {})


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------
def count_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    """Number of transformer blocks ``{prefix}{i}.norm1.weight`` (checked to run 0..n-1)."""
    found = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(re.escape(prefix) + r"(\d+)\.norm1\.weight", k)))
    if found != list(range(len(found))):
        raise WeightsError(f"blocks under {prefix!r} are numbered {found}; expected 0..{len(found) - 1}")
    return len(found)


def mlp_ratio_for(dim: int, hidden: int) -> float:
    """A ratio ``r`` with ``int(dim * r) == hidden`` (how ``Block`` sizes its MLP)."""
    ratio = hidden / dim
    for _ in range(4):  # hidden / dim can land just below the integer after multiplying back
        if int(dim * ratio) == hidden:
            return ratio
        ratio = math.nextafter(ratio, math.inf)
    raise WeightsError(f"no MLP ratio gives hidden width {hidden} for width {dim}")


def infer_config(model: dict[str, torch.Tensor]) -> dict[str, Any]:
    """MAEConfig fields that the tensors' shapes fix.

    ``patch_embed.weight`` ``[D, C, t, p, p]`` gives width, channels, tubelet and patch; block
    counts give depths; ``blocks.0.mlp.0.weight`` ``[hidden, D]`` the MLP ratio;
    ``encoder_to_decoder.weight`` ``[D_dec, D]`` the decoder width.
    """
    if "patch_embed.weight" not in model:
        raise WeightsError("the weights have no patch embedding (patch_embed): not a VideoMAE encoder")
    width, chans, tub, ph, pw = model["patch_embed.weight"].shape
    if ph != pw:
        raise WeightsError(f"non-square patches {ph}x{pw} are not supported")
    cfg: dict[str, Any] = dict(embed_dim=width, in_chans=chans, tubelet_size=tub, patch_size=ph)
    cfg["depth"] = count_blocks(model, "blocks.")
    if cfg["depth"]:
        cfg["mlp_ratio"] = mlp_ratio_for(width, model["blocks.0.mlp.0.weight"].shape[0])
    if "encoder_to_decoder.weight" in model:
        cfg["decoder_embed_dim"] = model["encoder_to_decoder.weight"].shape[0]
        cfg["decoder_depth"] = count_blocks(model, "decoder_blocks.")
        if cfg["decoder_depth"] and "mlp_ratio" in cfg:
            hidden = model["decoder_blocks.0.mlp.0.weight"].shape[0]
            if int(cfg["decoder_embed_dim"] * cfg["mlp_ratio"]) != hidden:
                raise WeightsError(
                    f"decoder MLP width {hidden} does not follow the encoder's MLP ratio {cfg['mlp_ratio']:.4g} "
                    "(this toolkit's MAE uses one ratio for both)"
                )
    if "head.weight" in model:
        pixels = model["head.weight"].shape[0]
        expected = tub * ph * pw * chans
        if pixels != expected:
            raise WeightsError(
                f"decoder head predicts {pixels} values per token; tubelet {tub} x patch {ph}x{pw} x {chans} "
                f"channels needs {expected}"
            )
    return {k: int(v) if k != "mlp_ratio" else v for k, v in cfg.items()}


def merge_config(shapes: dict[str, Any], meta: dict[str, Any], source: str) -> dict[str, Any]:
    """Shapes win; metadata adds what shapes cannot tell and must agree with them."""
    clashes = [f"{k}: tensors say {shapes[k]}, metadata says {v}" for k, v in meta.items()
               if k in shapes and k != "mlp_ratio" and v is not None and v != shapes[k]]
    if clashes:
        raise WeightsError(f"{source}: the metadata contradicts the tensors ({'; '.join(clashes)})")
    return {**{k: v for k, v in meta.items() if v is not None}, **shapes}


def check_tokens(cfg: dict[str, Any], num_tokens: int, what: str) -> None:
    """Check a token count from a learned table against the clip geometry, where known."""
    if all(k in cfg for k in ("img_size", "num_frames", "patch_size", "tubelet_size")):
        side = cfg["img_size"] // cfg["patch_size"]
        expected = cfg["num_frames"] // cfg["tubelet_size"] * side * side
        if expected != num_tokens:
            raise WeightsError(
                f"{what} covers {num_tokens} tokens, but {cfg['num_frames']} frames of {cfg['img_size']} px "
                f"(tubelet {cfg['tubelet_size']}, patch {cfg['patch_size']}) make {expected}"
            )


def is_sinusoid(table: torch.Tensor) -> bool:
    """Whether a stored position table ``[1, N, D]`` or ``[N, D]`` is the fixed sine/cosine one."""
    table = table.reshape(-1, table.shape[-1]).float()
    return torch.allclose(table, sinusoid_table(*table.shape), atol=1e-5)


def complete_config(weights: Weights, **overrides: Any) -> MAEConfig:
    """A full ``MAEConfig``: the source's geometry plus ``overrides`` for what it cannot tell.

    An override that contradicts the weights is an error naming both values; a field that
    neither knows is an error naming the option to pass.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    clashes = [f"{k}: weights {weights.config[k]}, given {v}" for k, v in overrides.items()
               if k in weights.config and k in GEOMETRY_FIELDS and v != weights.config[k]]
    if clashes:
        raise WeightsError(f"geometry mismatch with {weights.source} ({'; '.join(clashes)})")
    cfg = {**weights.config, **overrides}
    missing = [k for k in GEOMETRY_FIELDS if k not in cfg]
    if missing:
        raise WeightsError(
            f"{weights.source} does not tell {', '.join(missing)} (shapes cannot: heads and clip size leave no "
            f"trace in the weights); give them, e.g. {' '.join('--' + k.replace('_', '-') + ' N' for k in missing)}"
        )
    fields = set(MAEConfig.__dataclass_fields__)
    return MAEConfig(**{k: v for k, v in cfg.items() if k in fields})


def geometry_mismatches(known: dict[str, Any], cfg: MAEConfig) -> list[str]:
    """``"field: weights A, config B"`` for every known geometry field that differs."""
    out = []
    # The position-table kind and the attention bias are recorded by this toolkit's own files only;
    # official and Hugging Face weights are VideoMAE's: sincos_1d, no bias.
    known = {"pos_embed": "sincos_1d", "attn_bias": "none", **known}
    for key in (*GEOMETRY_FIELDS, "pos_embed", "attn_bias"):
        if key not in known:
            continue
        mine, theirs = getattr(cfg, key), known[key]
        same = math.isclose(mine, theirs, rel_tol=1e-9) if key == "mlp_ratio" else mine == theirs
        if not same:
            out.append(f"{key}: weights {theirs}, config {mine}")
    return out


# --------------------------------------------------------------------------------------------------
# Loading into modules
# --------------------------------------------------------------------------------------------------
def check_state(module: nn.Module, state: dict[str, torch.Tensor], what: str, allow_missing: tuple[str, ...] = ()) -> list[str]:
    """Compare a state dict with a module's; raise on anything that does not fit.

    Returns:
        the module's keys that ``state`` lacks but ``allow_missing`` prefixes permit.
    Raises:
        WeightsError: listing unexpected keys, missing keys and shape mismatches (key, both shapes).
    """
    own = module.state_dict()
    unexpected = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    allowed = [k for k in missing if k.startswith(allow_missing)] if allow_missing else []
    missing = [k for k in missing if k not in allowed]
    shapes = [f"{k}: weights {list(state[k].shape)}, model {list(own[k].shape)}"
              for k in sorted(set(state) & set(own)) if state[k].shape != own[k].shape]
    problems = []
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if missing:
        problems.append(f"missing keys {missing}")
    if shapes:
        problems.append(f"shape mismatches [{'; '.join(shapes)}]")
    broken = nonfinite_keys(state)
    if broken:  # the file is broken; a run would later blame its learning rate for the NaN loss
        problems.append(f"non-finite values (NaN or inf) in {len(broken)} tensors {broken[:5]}")
    if problems:
        raise WeightsError(f"{what}: {', '.join(problems)}")
    return allowed


def nonfinite_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """The floating-point tensors of ``state`` that hold a NaN or an infinity, sorted."""
    return sorted(k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all())


def load_into(module: nn.Module, state: dict[str, torch.Tensor], what: str, allow_missing: tuple[str, ...] = ()) -> list[str]:
    """``check_state`` then copy the tensors in (dtype and device follow the module)."""
    left = check_state(module, state, what, allow_missing)
    module.load_state_dict(state, strict=not left)
    return left


def build_model(weights: Weights, **overrides: Any) -> VideoMAE:
    """A ``VideoMAE`` holding ``weights`` (a full MAE: decoder included)."""
    if not weights.has_decoder:
        raise WeightsError(f"{weights.source} holds an encoder only; a full MAE needs the decoder too")
    model = VideoMAE(complete_config(weights, **overrides))
    load_into(model, weights.model, weights.source)
    return model


def model_weights(model: VideoMAE, source: str = "model") -> Weights:
    """The other direction: a built model (and nothing else) as :class:`Weights`."""
    from dataclasses import asdict

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Weights(model=state, config=asdict(model.cfg), source=source)


def policy_options(policy: nn.Module) -> dict[str, Any]:
    """The sampler options that ``POLICY_FIELDS`` name, read off an ``AdaptiveMasking``."""
    return {k: getattr(policy, k) for k in POLICY_FIELDS}


def check_policy(policy: nn.Module, weights: Weights) -> None:
    """Raise unless the sampler in ``weights`` fits ``policy`` exactly (shapes and options)."""
    if weights.policy is None:
        raise WeightsError(f"{weights.source} holds no sampler weights (AdaMAE's pos_embed_probs/get_token_probs)")
    known = weights.policy_config or {}
    mine = policy_options(policy)
    clashes = []
    for key in POLICY_FIELDS:
        if key == "dropout" or key not in known:
            continue  # dropout leaves no trace in outputs at evaluation, so it only gets a note
        same = math.isclose(mine[key], known[key], rel_tol=1e-9) if isinstance(mine[key], float) else mine[key] == known[key]
        if not same:
            clashes.append(f"{key}: weights {known[key]}, policy {mine[key]}")
    if clashes:
        raise WeightsError(
            f"sampler mismatch with {weights.source} ({'; '.join(clashes)}); "
            "for AdaMAE's own sampler use policy=adaptive_official"
        )
    if "dropout" in known and not math.isclose(known["dropout"], mine["dropout"]):
        log.warning("sampler dropout: %s trained with %s, this policy uses %s", weights.source, known["dropout"], mine["dropout"])
    check_state(policy, weights.policy, f"sampler from {weights.source}")
