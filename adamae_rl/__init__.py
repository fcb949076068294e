"""adamae_rl: adaptive masking for video masked autoencoders.

The MAE is an environment, a masking strategy is a policy, and one REINFORCE objective trains any
learnable policy::

    from adamae_rl import make_env, make_policy, make_objective
    env = make_env(model="tiny", data="synthetic", batch_size=4, mask_ratio=0.9, seed=0)
    policy = make_policy("adaptive", env=env)
    objective = make_objective("adamae", policy=policy)
    td = env.reset(); td = policy(td); td = env.step(td); losses = objective(td)
"""

import multiprocessing as _mp
from importlib import metadata as _metadata

# Importing TorchRL sets Python's global multiprocessing start method to "spawn"; a library import
# must not change the process it is imported into, so the caller's setting (often: none yet) is put
# back. Code here that starts processes names its context explicitly.
_start_method = _mp.get_start_method(allow_none=True)

from adamae_rl.api import make_env, make_objective, make_policy  # noqa: E402
from adamae_rl.metrics import foreground_enrichment  # noqa: E402
from adamae_rl.policies import LearnablePolicy, list_policies, register_policy  # noqa: E402

if _mp.get_start_method(allow_none=True) != _start_method:
    _mp.set_start_method(_start_method, force=True)

try:  # the installed distribution's version, so that pyproject.toml is its one source
    __version__ = _metadata.version("adamae_rl")
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"
__all__ = [
    "make_env", "make_policy", "make_objective", "list_policies", "register_policy", "LearnablePolicy",
    "foreground_enrichment",
]
