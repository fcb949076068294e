"""The MAE as an environment: TorchRL ``MaskedVideoEnv`` and a gymnasium adapter."""

from adamae_rl.envs.gym_adapter import MaskedVideoGymEnv
from adamae_rl.envs.gym_spaces import FixedCountMultiBinary, scores_to_mask
from adamae_rl.envs.masked_video import MaskedVideoEnv, reconstruction_step
from adamae_rl.envs.specs import FixedCountMaskSpec

__all__ = ["MaskedVideoEnv", "MaskedVideoGymEnv", "FixedCountMultiBinary", "FixedCountMaskSpec", "reconstruction_step", "scores_to_mask"]
