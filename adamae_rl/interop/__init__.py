"""Pre-trained weights in and out: official VideoMAE / VideoMAE V2 / AdaMAE checkpoints, Hugging
Face VideoMAE directories, and this toolkit's own files.

Formats (``fmt``):

- ``official``: a ``.pth`` of the VideoMAE, VideoMAE V2 or AdaMAE code (pre-trained or
  fine-tuned; AdaMAE's sampler included);
- ``hf``: a Hugging Face directory (``config.json`` + safetensors) of ``VideoMAEForPreTraining``,
  ``VideoMAEModel`` or ``VideoMAEForVideoClassification``;
- ``adamae_rl``: this toolkit's converted file (also a training run's ``checkpoints/*.pt`` or a
  run directory, as a source).

Files are always loaded with ``torch.load(weights_only=True)`` and an allow-list holding only
``argparse.Namespace`` (see :mod:`adamae_rl.interop.safe`).

Example::

    from adamae_rl.interop import read_weights, build_model, write_weights
    weights = read_weights("checkpoint-799.pth")          # official VideoMAE
    model = build_model(weights)                           # a VideoMAE with those weights
    write_weights(weights, "videomae_hf", "hf")            # VideoMAEForPreTraining.from_pretrained
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from adamae_rl.errors import ConfigError
from adamae_rl.interop.huggingface import is_hf_dir, read_hf, write_hf
from adamae_rl.interop.native import is_native, is_run_checkpoint, read_native, read_run_checkpoint, write_native
from adamae_rl.interop.official import read_official, write_official
from adamae_rl.interop.safe import UnsafeCheckpointError, safe_load
from adamae_rl.interop.weights import (
    Weights,
    WeightsError,
    build_model,
    check_policy,
    complete_config,
    geometry_mismatches,
    load_into,
    model_weights,
    policy_options,
)
from adamae_rl.models.videomae import VideoMAE
from adamae_rl.utils.files import check_output_file

log = logging.getLogger("adamae_rl.interop")

FORMATS = ("official", "hf", "adamae_rl")


def detect_format(path: str | Path) -> str:
    """``hf`` for a directory with ``config.json``, ``adamae_rl`` for a run directory, else by content."""
    path = Path(path)
    if is_hf_dir(path):
        return "hf"
    if path.is_dir():
        if (path / "checkpoints" / "last.pt").is_file():
            return "adamae_rl"
        raise WeightsError(f"{path} is a directory without config.json or checkpoints/last.pt")
    obj = safe_load(path)
    return "adamae_rl" if is_native(obj) or is_run_checkpoint(obj) else "official"


def read_weights(path: str | Path, fmt: str | None = None) -> Weights:
    """Read any supported source as :class:`Weights` (``fmt`` forces the format)."""
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown weights format {fmt!r}; known: {', '.join(FORMATS)}")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if fmt == "hf" or (fmt is None and is_hf_dir(path)):
        return read_hf(path)
    if path.is_dir():
        if (path / "checkpoints" / "last.pt").is_file() and fmt in (None, "adamae_rl"):
            path = path / "checkpoints" / "last.pt"
        else:
            raise WeightsError(f"{path} is a directory without config.json or checkpoints/last.pt")
    obj = safe_load(path)
    if fmt in (None, "adamae_rl") and is_native(obj):
        return read_native(obj, str(path))
    if fmt in (None, "adamae_rl") and is_run_checkpoint(obj):
        return read_run_checkpoint(obj, f"run checkpoint {path}")
    if fmt == "adamae_rl":
        raise WeightsError(f"{path} is not an adamae_rl weights file or run checkpoint")
    return read_official(obj, f"checkpoint {path}")


def write_weights(weights: Weights, path: str | Path, fmt: str, force: bool = False,
                  inputs: tuple[str | Path, ...] = ()) -> Path:
    """Write ``weights`` as ``adamae_rl`` (a ``.pt`` file), ``hf`` (a directory) or ``official``
    (a ``.pth`` in the VideoMAE/AdaMAE layout, which their code fine-tunes).

    An existing ``path`` is refused unless ``force``; ``path`` may never be (or hold) one of
    ``inputs``.
    """
    if fmt == "adamae_rl":
        check_output_file(path, "convert", force=force, inputs=inputs)
        return write_native(weights, path)
    if fmt == "hf":
        return write_hf(weights, path, force=force, inputs=inputs)
    if fmt == "official":
        check_output_file(path, "convert", force=force, inputs=inputs)
        return write_official(weights, path)
    raise ConfigError(f"cannot write format {fmt!r}; writable: adamae_rl, hf, official")


def export_weights(model: VideoMAE, policy: nn.Module | None = None, source: str = "model") -> Weights:
    """A model (and optionally its adaptive sampler) as :class:`Weights`, ready to write."""
    weights = model_weights(model, source)
    if policy is not None and getattr(policy, "learnable", False):
        weights.policy = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        weights.policy_config = policy_options(policy)
    return weights


def init_from(model: VideoMAE, path: str | Path, fmt: str | None = None) -> Weights:
    """Load pre-trained weights into a built MAE (``model.init_from=PATH``).

    The geometry the weights reveal (image size and frames where the source records them,
    tubelet, patch, widths, depths, heads where recorded) must equal the model's config; an
    encoder-only source leaves the decoder at its initialisation (a warning lists those keys).

    Raises:
        WeightsError: naming each geometry field that differs with both values, or listing
            missing/unexpected keys and shape mismatches.
    """
    weights = read_weights(path, fmt)
    clashes = geometry_mismatches(weights.config, model.cfg)
    if clashes:
        raise WeightsError(f"model.init_from={path}: geometry mismatch ({'; '.join(clashes)})")
    unchecked = [k for k in ("img_size", "num_frames", "num_heads", "decoder_num_heads") if k not in weights.config]
    if unchecked:
        log.info("%s does not record %s; the config's values are used", weights.source, ", ".join(unchecked))
    left = load_into(model, weights.model, f"model.init_from={path}", allow_missing=_decoder_keys(weights))
    if left:
        log.warning("%s has no decoder; left at initialisation: %s", weights.source, ", ".join(left))
    if "norm_target" in weights.config and bool(weights.config["norm_target"]) != model.cfg.norm_target:
        log.warning(
            "%s was trained with norm_target=%s, the config says %s", weights.source, weights.config["norm_target"],
            model.cfg.norm_target,
        )
    return weights


def _decoder_keys(weights: Weights) -> tuple[str, ...]:
    if weights.has_decoder:
        return ()
    return ("encoder_to_decoder.", "mask_token", "decoder_blocks.", "decoder_norm.", "head.")


def init_policy_from(policy: nn.Module, path: str | Path, fmt: str | None = None) -> Weights:
    """Load AdaMAE sampler weights into an ``adaptive`` policy (``policy.init_from=PATH``)."""
    weights = read_weights(path, fmt)
    check_policy(policy, weights)
    policy.load_state_dict(weights.policy)
    return weights


def load_model(path: str | Path, fmt: str | None = None, **overrides: Any) -> VideoMAE:
    """Read a source and build the ``VideoMAE`` it holds (``overrides`` for what it cannot tell)."""
    return build_model(read_weights(path, fmt), **overrides)


def load_classifier(path: str | Path, fmt: str | None = None, **overrides: Any) -> nn.Module:
    """A fine-tuned checkpoint as a ``VideoClassifier`` (encoder, mean pool, ``fc_norm``, ``head``).

    Official fine-tuned VideoMAE models pool without a final encoder norm; the classifier then
    gets an identity there, so that its outputs match the source's.
    """
    from adamae_rl.evaluation.encoder import VideoClassifier

    weights = read_weights(path, fmt)
    if not weights.classifier or "fc_norm.weight" not in weights.classifier:
        raise WeightsError(
            f"{weights.source} has no mean-pooling classification head (fc_norm + head); "
            "fine-tuned models that classify from the first token are not supported"
        )
    # The decoder is dropped: any valid size where the source does not tell one (a Hugging Face
    # classification config still names the pre-training decoder's).
    defaults = {k: v for k, v in dict(decoder_embed_dim=weights.config["embed_dim"], decoder_depth=0, decoder_num_heads=1).items()
                if k not in weights.config}
    cfg = complete_config(weights, **{**defaults, **overrides})
    mae = VideoMAE(cfg)
    encoder_only = {k: v for k, v in weights.model.items() if k.startswith(("patch_embed.", "blocks.", "norm."))}
    no_norm = () if weights.final_norm else ("norm.",)
    load_into(mae, encoder_only, weights.source, allow_missing=_decoder_keys(Weights(model=encoder_only)) + no_norm)
    clf = VideoClassifier(mae, num_classes=weights.classifier["head.weight"].shape[0])
    if not weights.final_norm:
        clf.norm = nn.Identity()
    load_into(clf.fc_norm, {k[8:]: v for k, v in weights.classifier.items() if k.startswith("fc_norm.")}, weights.source)
    load_into(clf.head, {k[5:]: v for k, v in weights.classifier.items() if k.startswith("head.")}, weights.source)
    return clf


__all__ = [
    "FORMATS", "Weights", "WeightsError", "UnsafeCheckpointError", "safe_load", "detect_format", "read_weights",
    "write_weights", "export_weights", "init_from", "init_policy_from", "load_model", "load_classifier",
    "build_model", "complete_config",
]
