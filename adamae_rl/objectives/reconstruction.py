"""The MAE's own objective: the reconstruction loss as a ``LossModule``, like the policy losses.

The environment computes each clip's mean squared error over its masked tokens (with gradient
into the MAE) and writes it as ``("next", "loss_recon")`` ``[B]``; this module turns it into the
scalar ``loss_recon`` term, so the trainer sums the ``loss_*`` terms of every objective and knows
no key by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey

from adamae_rl.objectives.base import KeyedLoss


class ReconstructionLoss(KeyedLoss):
    """``loss_recon``: the batch mean of the env's per-clip reconstruction losses.

    Expected entry (renameable with ``set_keys``): ``("next", "loss_recon")`` ``[B]``.
    """

    @dataclass
    class _AcceptedKeys:
        loss_recon: NestedKey = ("next", "loss_recon")

    default_keys = _AcceptedKeys
    out_keys = ["loss_recon"]

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        key = self.tensor_keys.loss_recon
        if key not in tensordict.keys(include_nested=True):
            raise KeyError(f"ReconstructionLoss needs {key!r} in the tensordict (has env.step run?)")
        return TensorDict({"loss_recon": tensordict.get(key).float().mean()}, batch_size=[])
