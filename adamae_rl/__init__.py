"""adamae_rl: adaptive masking for video masked autoencoders.

The MAE is an environment, a masking strategy is a policy, and one REINFORCE objective trains any
learnable policy::

    from adamae_rl import make_env, make_policy, make_objective
    env = make_env(model="tiny", data="synthetic", batch_size=4, mask_ratio=0.9, seed=0)
    policy = make_policy("adaptive", env=env)
    objective = make_objective("adamae", policy=policy)
    td = env.reset(); td = policy(td); td = env.step(td); losses = objective(td)
"""

from adamae_rl.api import make_env, make_objective, make_policy
from adamae_rl.metrics import foreground_enrichment
from adamae_rl.policies import list_policies, register_policy

__version__ = "0.1.0"
__all__ = ["make_env", "make_policy", "make_objective", "list_policies", "register_policy", "foreground_enrichment"]
