"""The MAE as an environment: TorchRL ``MaskedVideoEnv`` and a gymnasium adapter."""

from adamae_rl.envs.gym_adapter import ENV_ID, MaskedVideoGymEnv, make_gym_env, make_gym_vector_env, register_gym_env
from adamae_rl.envs.gym_spaces import FixedCountMultiBinary, scores_to_mask
from adamae_rl.envs.masked_video import MaskedVideoEnv, reconstruction_step
from adamae_rl.envs.specs import FixedCountMaskSpec

register_gym_env()  # gymnasium.make("adamae_rl/MaskedVideo-v0"): the usual way a package offers its envs

__all__ = ["MaskedVideoEnv", "MaskedVideoGymEnv", "ENV_ID", "make_gym_env", "make_gym_vector_env", "FixedCountMultiBinary", "FixedCountMaskSpec", "reconstruction_step", "scores_to_mask"]
