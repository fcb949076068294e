"""Objective registry: built-ins, ``@register_objective`` plug-ins and entry points.

An objective factory is called as ``factory(policy, **options)`` and returns a TorchRL-style
``LossModule`` whose ``forward(td)`` returns a TensorDict of ``loss_*`` terms (summed by the
trainer) plus detached diagnostics. Third-party packages publish objectives under the
entry-point group ``adamae_rl.objectives``.
"""

from __future__ import annotations

from adamae_rl.registry import Registry

ENTRY_POINT_GROUP = "adamae_rl.objectives"

OBJECTIVES = Registry("objective", ENTRY_POINT_GROUP)
register_objective = OBJECTIVES.register
list_objectives = OBJECTIVES.names
