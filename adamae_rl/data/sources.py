"""Data-source registry: ``data=NAME`` selects a registered clip dataset.

A data source is a factory ``factory(split, geometry, seed, **options) -> Dataset`` whose items
are dicts with at least ``video`` ``[C, T, H, W]`` (ImageNet-normalized floats) and optionally
``label``, ``fg_tokens``. ``options`` are the ``data`` config's keys other than ``name`` and the
loader's own (:data:`LOADER_KEYS`); they are checked against the factory's signature. Built-ins:
``synthetic`` and ``video``; others come from ``@register_data_source("name")`` or the
entry-point group ``adamae_rl.data``.
"""

from __future__ import annotations

from adamae_rl.registry import Registry

ENTRY_POINT_GROUP = "adamae_rl.data"
# Keys of the data config that the batch stream uses, not the data source.
LOADER_KEYS = ("name", "num_workers", "persistent_workers")
# Arguments every data source receives from the run rather than from the data config.
RUN_ARGUMENTS = ("split", "geometry", "seed")

DATA_SOURCES = Registry("data source", ENTRY_POINT_GROUP)
register_data_source = DATA_SOURCES.register
list_data_sources = DATA_SOURCES.names
