"""Objectives: the MAE's reconstruction loss and the masking policies' losses, with a registry."""

from adamae_rl.objectives.prediction import LossPredictionLoss
from adamae_rl.objectives.reconstruction import ReconstructionLoss
from adamae_rl.objectives.registry import OBJECTIVES, ENTRY_POINT_GROUP, list_objectives, register_objective
from adamae_rl.objectives.reinforce import AdaMAELoss, MaskingLoss, NoPolicyLoss, PlackettLuceLoss

__all__ = [
    "OBJECTIVES", "ENTRY_POINT_GROUP", "list_objectives", "register_objective", "ReconstructionLoss",
    "AdaMAELoss", "MaskingLoss", "NoPolicyLoss", "PlackettLuceLoss", "LossPredictionLoss",
]
