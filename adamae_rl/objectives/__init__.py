"""REINFORCE objectives for masking policies."""

from adamae_rl.objectives.reinforce import OBJECTIVES, AdaMAELoss, MaskingLoss, NoPolicyLoss, PlackettLuceLoss

__all__ = ["OBJECTIVES", "AdaMAELoss", "MaskingLoss", "NoPolicyLoss", "PlackettLuceLoss"]
