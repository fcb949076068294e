"""Ablation studies: a grid of training runs (each a subprocess), evaluated and tabulated.

:mod:`~adamae_rl.ablation.runner` expands a grid into cells and runs each as
``python -m adamae_rl.train`` then ``python -m adamae_rl.finetune``, skipping finished cells;
:mod:`~adamae_rl.ablation.report` turns their figures into the markdown table, CSV and plot.
``python -m adamae_rl.ablate`` is the command.
"""
