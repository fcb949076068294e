"""Evaluation protocols for pre-trained MAEs: linear probe and layer-decay fine-tuning.

Used by ``python -m adamae_rl.finetune`` (and, through it, the ablation cells); nothing here
imports an entry point.
"""

from adamae_rl.evaluation.encoder import VideoClassifier, encode_all_tokens, pooled_features
from adamae_rl.evaluation.finetuning import FinetuneSettings, finetune, layer_decay_param_groups
from adamae_rl.evaluation.metrics import topk_accuracy
from adamae_rl.evaluation.probe import ProbeSettings, extract_features, fit_linear_probe, linear_probe
from adamae_rl.evaluation.run_eval import EvalOptions, evaluate_encoder, evaluate_run

__all__ = [
    "VideoClassifier", "encode_all_tokens", "pooled_features", "FinetuneSettings", "finetune",
    "layer_decay_param_groups", "topk_accuracy", "ProbeSettings", "extract_features", "fit_linear_probe",
    "linear_probe", "EvalOptions", "evaluate_encoder", "evaluate_run",
]
