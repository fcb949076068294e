"""Hugging Face VideoMAE directories (``config.json`` + ``model.safetensors``), both directions.

Reading and writing need only ``safetensors`` (``pip install adamae_rl[hf]``); ``transformers``
itself is not imported here. Names (``VideoMAEForPreTraining``; ``VideoMAEModel`` without the
``videomae.`` prefix; ``VideoMAEForVideoClassification`` with ``fc_norm``/``classifier``):

- ``videomae.embeddings.patch_embeddings.projection`` = ``patch_embed``;
- ``videomae.encoder.layer.i.{layernorm_before, attention.attention.{query,key,value},
  attention.output.dense, layernorm_after, intermediate.dense, output.dense}`` = a block, with
  q/k/v weights stacked into one ``qkv`` weight and the q/v biases stored either as
  ``q_bias``/``v_bias`` (transformers 4) or ``query.bias``/``value.bias`` (transformers 5);
- ``videomae.layernorm`` = ``norm``; ``encoder_to_decoder``, ``mask_token`` as they are;
  ``decoder.decoder_layers.i`` = decoder blocks; ``decoder.norm``, ``decoder.head``.

Exports write ``q_bias``/``v_bias``, which transformers 4 loads as they are and transformers 5
renames on load. An adaptive sampler has no place in a Hugging Face model; it is written next to
it (``adamae_rl_sampler.safetensors`` + ``adamae_rl.json``) so that a round trip keeps it.

Where a Hugging Face ``VideoMAEForPreTraining`` cannot match this toolkit's MAE exactly: its
decoder's final LayerNorm is built with PyTorch's default eps 1e-5 regardless of the config,
where VideoMAE (and this toolkit) use 1e-6. Every other LayerNorm follows ``layer_norm_eps``,
which exports set to 1e-6.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from adamae_rl.errors import OutputError
from adamae_rl.interop.weights import Weights, WeightsError, complete_config, infer_config, merge_config
from adamae_rl.utils.files import OutputDir, atomic_write_text

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
LEGACY_WEIGHTS_FILE = "pytorch_model.bin"
SAMPLER_FILE = "adamae_rl_sampler.safetensors"
SIDECAR_FILE = "adamae_rl.json"
LAYER = {
    "layernorm_before": "norm1", "layernorm_after": "norm2", "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.0", "output.dense": "mlp.2",
}
NORM_EPS = 1e-6  # VideoMAE's LayerNorm eps


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError as err:  # an optional extra
        raise ImportError("Hugging Face directories need safetensors: pip install 'adamae_rl[hf]'") from err
    return st


def is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def read_hf(path: str | Path) -> Weights:
    """A Hugging Face VideoMAE directory as :class:`Weights` (no ``transformers`` import)."""
    path = Path(path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "videomae":
        raise WeightsError(f"{path}/config.json has model_type {config.get('model_type')!r}, expected 'videomae'")
    state = _read_tensors(path)
    model, classifier, notes = _from_hf_names(state, config, str(path))
    source = f"Hugging Face directory {path}"
    weights = Weights(model=model, config=merge_config(infer_config(model), _metadata(config), source),
                      classifier=classifier or None, source=source, notes=notes)
    weights.final_norm = "norm.weight" in model or not classifier
    sidecar = path / SIDECAR_FILE
    if (path / SAMPLER_FILE).is_file() and sidecar.is_file():
        weights.policy = dict(_safetensors().load_file(str(path / SAMPLER_FILE)))
        weights.policy_config = json.loads(sidecar.read_text(encoding="utf-8")).get("policy_config")
    return weights


def weight_files(path: Path) -> list[Path]:
    """The files that hold the model's weights, by Hugging Face's names only.

    ``model.safetensors``; else the shards that ``model.safetensors.index.json`` names; else
    ``pytorch_model.bin``. Other files (``model_backup.safetensors``, an earlier export) are
    never read: a glob over ``model*.safetensors`` would let them override the real weights.

    Raises:
        WeightsError: none of these exist, or the index is malformed or names a file outside
            the folder or a missing one.
    """
    if (path / WEIGHTS_FILE).is_file():
        return [path / WEIGHTS_FILE]
    index = path / INDEX_FILE
    if index.is_file():
        return _indexed_shards(path, index)
    if (path / LEGACY_WEIGHTS_FILE).is_file():
        return [path / LEGACY_WEIGHTS_FILE]
    raise WeightsError(f"{path} has config.json but no {WEIGHTS_FILE}, {INDEX_FILE} or {LEGACY_WEIGHTS_FILE}")


def _indexed_shards(path: Path, index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise WeightsError(f"{index} is not a Hugging Face weight index: {type(err).__name__}: {err}") from None
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise WeightsError(f"{index} names {name!r}, not a file name inside {path}")
        if not (path / name).is_file():
            raise WeightsError(f"{index} names {name}, which is missing from {path}")
    return [path / name for name in names]


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    files = weight_files(path)
    if files[0].name == LEGACY_WEIGHTS_FILE:
        from adamae_rl.interop.safe import safe_load

        return safe_load(files[0])
    state: dict[str, torch.Tensor] = {}
    for file in files:  # one file, or the shards the index names
        part = _safetensors().load_file(str(file))
        twice = sorted(set(part) & set(state))
        if twice:
            raise WeightsError(f"{file} repeats tensors of another shard: {twice[:3]}")
        state.update(part)
    return state


def _metadata(config: dict[str, Any]) -> dict[str, Any]:
    def side(value: Any) -> Any:
        return value[0] if isinstance(value, (list, tuple)) else value

    meta = dict(
        img_size=side(config.get("image_size")), patch_size=side(config.get("patch_size")),
        num_frames=config.get("num_frames"), tubelet_size=config.get("tubelet_size"),
        in_chans=config.get("num_channels"), num_heads=config.get("num_attention_heads"),
        norm_target=config.get("norm_pix_loss"),
    )
    if "decoder_hidden_size" in config:
        meta["decoder_num_heads"] = config.get("decoder_num_attention_heads")
    return meta


def _from_hf_names(state: dict[str, torch.Tensor], config: dict, source: str) -> tuple[dict, dict, list[str]]:
    """Rename Hugging Face tensors; every one must find a place."""
    model: dict[str, torch.Tensor] = {}
    classifier: dict[str, torch.Tensor] = {}
    notes: list[str] = []
    qkv: dict[str, dict[str, torch.Tensor]] = {}  # block prefix -> {"q"/"k"/"v": weight}
    unknown = []
    for key, value in state.items():
        bare = key[len("videomae."):] if key.startswith("videomae.") else key
        if m := re.fullmatch(r"embeddings\.patch_embeddings\.projection\.(weight|bias)", bare):
            model[f"patch_embed.{m.group(1)}"] = value
        elif m := re.fullmatch(r"(encoder\.layer|decoder\.decoder_layers)\.(\d+)\.(.+)", bare):
            block = f"{'blocks' if m.group(1) == 'encoder.layer' else 'decoder_blocks'}.{m.group(2)}"
            if not _place_layer(block, m.group(3), value, model, qkv):
                unknown.append(key)
        elif m := re.fullmatch(r"layernorm\.(weight|bias)", bare):
            model[f"norm.{m.group(1)}"] = value
        elif key in ("encoder_to_decoder.weight", "mask_token"):
            model[key] = value
        elif m := re.fullmatch(r"decoder\.(norm|head)\.(weight|bias)", key):
            model[f"{'decoder_norm' if m.group(1) == 'norm' else 'head'}.{m.group(2)}"] = value
        elif m := re.fullmatch(r"fc_norm\.(weight|bias)", key):
            classifier[key] = value
        elif m := re.fullmatch(r"classifier\.(weight|bias)", key):
            classifier[f"head.{m.group(1)}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise WeightsError(f"{source}: {len(unknown)} tensors have no counterpart in this toolkit's MAE: {sorted(unknown)}")
    for block, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise WeightsError(f"{source}: {block} has only {sorted(parts)} of the query/key/value weights")
        model[f"{block}.attn.qkv.weight"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        if f"{block}.attn.q_bias" not in model:  # qv_bias off: no bias is the same as a zero bias
            width = parts["q"].shape[0]
            model[f"{block}.attn.q_bias"] = torch.zeros(width, dtype=parts["q"].dtype)
            model[f"{block}.attn.v_bias"] = torch.zeros(width, dtype=parts["q"].dtype)
            notes.append(f"{block}: no q/v bias in the source; zero biases compute the same")
    eps = config.get("layer_norm_eps")
    if eps is not None and eps != NORM_EPS:
        notes.append(f"layer_norm_eps {eps} in the source; this toolkit's MAE uses VideoMAE's {NORM_EPS}")
    return model, classifier, notes


def _place_layer(block: str, inner: str, value: torch.Tensor, model: dict, qkv: dict) -> bool:
    if m := re.fullmatch(r"attention\.attention\.(query|key|value)\.weight", inner):
        qkv.setdefault(block, {})[m.group(1)[0]] = value
        return True
    if m := re.fullmatch(r"attention\.attention\.(q_bias|v_bias|query\.bias|value\.bias)", inner):
        model[f"{block}.attn.{m.group(1)[0]}_bias"] = value
        return True
    if m := re.fullmatch(r"(.+)\.(weight|bias)", inner):
        if m.group(1) in LAYER:
            model[f"{block}.{LAYER[m.group(1)]}.{m.group(2)}"] = value
            return True
    return False


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def hf_config(weights: Weights) -> dict[str, Any]:
    """``config.json`` of a ``VideoMAEForPreTraining`` with this MAE's geometry.

    ``layer_norm_eps`` is VideoMAE's 1e-6 (Hugging Face's default is 1e-12), ``use_mean_pooling``
    is off so that the encoder keeps its final LayerNorm, and ``norm_pix_loss`` follows
    ``norm_target``.
    """
    cfg = complete_config(weights)
    norm_target = bool(weights.config.get("norm_target", cfg.norm_target))
    return {
        "architectures": ["VideoMAEForPreTraining"], "model_type": "videomae",
        "image_size": cfg.img_size, "patch_size": cfg.patch_size, "num_channels": cfg.in_chans,
        "num_frames": cfg.num_frames, "tubelet_size": cfg.tubelet_size,
        "hidden_size": cfg.embed_dim, "num_hidden_layers": cfg.depth, "num_attention_heads": cfg.num_heads,
        "intermediate_size": int(cfg.embed_dim * cfg.mlp_ratio),
        "decoder_hidden_size": cfg.decoder_embed_dim, "decoder_num_hidden_layers": cfg.decoder_depth,
        "decoder_num_attention_heads": cfg.decoder_num_heads,
        "decoder_intermediate_size": int(cfg.decoder_embed_dim * cfg.mlp_ratio),
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "layer_norm_eps": NORM_EPS, "qkv_bias": True, "qv_bias": True, "use_mean_pooling": False,
        "norm_pix_loss": norm_target, "initializer_range": 0.02,
    }


def to_hf_names(model: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This toolkit's ``VideoMAE`` state dict -> ``VideoMAEForPreTraining`` names."""
    out: dict[str, torch.Tensor] = {}
    inverse = {v: k for k, v in LAYER.items()}
    for key, value in model.items():
        if m := re.fullmatch(r"patch_embed\.(weight|bias)", key):
            out[f"videomae.embeddings.patch_embeddings.projection.{m.group(1)}"] = value
        elif m := re.fullmatch(r"(blocks|decoder_blocks)\.(\d+)\.(.+)", key):
            layer = f"{'videomae.encoder.layer' if m.group(1) == 'blocks' else 'decoder.decoder_layers'}.{m.group(2)}"
            inner = m.group(3)
            if inner == "attn.qkv.weight":
                for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    out[f"{layer}.attention.attention.{name}.weight"] = part
            elif inner in ("attn.q_bias", "attn.v_bias"):
                out[f"{layer}.attention.attention.{inner[5:]}"] = value
            else:
                module, param = inner.rsplit(".", 1)
                out[f"{layer}.{inverse[module]}.{param}"] = value
        elif m := re.fullmatch(r"norm\.(weight|bias)", key):
            out[f"videomae.layernorm.{m.group(1)}"] = value
        elif key in ("encoder_to_decoder.weight", "mask_token"):
            out[key] = value
        elif m := re.fullmatch(r"(decoder_norm|head)\.(weight|bias)", key):
            out[f"decoder.{'norm' if m.group(1) == 'decoder_norm' else 'head'}.{m.group(2)}"] = value
        else:
            raise WeightsError(f"no Hugging Face name for {key}")
    return out


def write_hf(weights: Weights, path: str | Path, force: bool = False, inputs: tuple[str | Path, ...] = ()) -> Path:
    """Write a directory that ``VideoMAEForPreTraining.from_pretrained`` loads.

    The folder records the files it was given (:class:`~adamae_rl.utils.files.OutputDir`). An
    existing folder is refused unless ``force``; with ``force`` everything an earlier export
    wrote there is deleted first (and this toolkit's sampler files, which an export from before
    the record may have left), so a stale ``adamae_rl_sampler.safetensors`` never survives next to
    new weights. ``inputs``: the source, which may not lie in ``path``.
    """
    if not weights.has_decoder:
        raise WeightsError(f"{weights.source} holds an encoder only; a VideoMAEForPreTraining export needs the decoder")
    table = weights.config.get("pos_embed", "sincos_1d")
    if table != "sincos_1d":
        raise WeightsError(f"{weights.source} uses model.pos_embed={table}; Hugging Face VideoMAE rebuilds the sincos_1d table")
    if weights.config.get("attn_bias", "none") != "none":
        raise WeightsError(f"{weights.source} uses model.attn_bias={weights.config['attn_bias']}; "
                           "Hugging Face VideoMAE has no attention bias")
    st = _safetensors()
    path = Path(path)
    config = hf_config(weights)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in to_hf_names(weights.model).items()}
    out = _export_folder(path, force, inputs)
    names = [WEIGHTS_FILE, "config.json"] + ([SAMPLER_FILE, SIDECAR_FILE] if weights.policy is not None else [])
    out.claim(*names)
    _save_tensors(st, tensors, path / WEIGHTS_FILE)
    atomic_write_text(path / "config.json", json.dumps(config, indent=2) + "\n")
    if weights.policy is not None:
        sampler = {k: v.detach().cpu().contiguous().clone() for k, v in weights.policy.items()}
        _save_tensors(st, sampler, path / SAMPLER_FILE)
        sidecar = {"policy_config": weights.policy_config, "note": "adaptive sampler of adamae_rl; not part of the Hugging Face model"}
        atomic_write_text(path / SIDECAR_FILE, json.dumps(sidecar, indent=2) + "\n")
    return path


def _export_folder(path: Path, force: bool, inputs: tuple[str | Path, ...]) -> OutputDir:
    """The export's folder, emptied of an earlier export's files under ``force``."""
    if path.exists() and not force:
        raise OutputError(f"convert: {path} exists; pass --force to overwrite it")
    out = OutputDir(path, "convert", force=force, inputs=inputs)
    out.clear()
    for name in (SAMPLER_FILE, SIDECAR_FILE, INDEX_FILE):  # this toolkit's (or HF's) names, never to go stale
        (path / name).unlink(missing_ok=True)
    return out


def _save_tensors(st: Any, tensors: dict[str, torch.Tensor], target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        st.save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
