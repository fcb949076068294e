"""What every objective here shares: TorchRL ``LossModule`` key handling without a value estimator."""

from __future__ import annotations

from dataclasses import fields

from tensordict.utils import NestedKey
from torchrl.objectives import LossModule


class KeyedLoss(LossModule):
    """A ``LossModule`` whose inputs are the (renameable) fields of its ``_AcceptedKeys``.

    Rewards are per-token reconstruction errors and episodes are one step long, so there is no
    value estimator to configure.
    """

    # The entries forward() returns (loss_* terms and diagnostics); subclasses list theirs.
    out_keys: list[str] = []

    @property
    def in_keys(self) -> list[NestedKey]:
        """The tensordict entries this objective reads, after any ``set_keys`` renaming."""
        return [getattr(self.tensor_keys, f.name) for f in fields(self.default_keys)]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass  # no value estimator to point at renamed keys (see the class docstring)
