"""Figures of what a masking policy hides and what the MAE rebuilds (``python -m adamae_rl.visualize``).

:mod:`~adamae_rl.visualization.render` draws masks and reconstructions for held-out clips;
:mod:`~adamae_rl.visualization.figures` turns them into sheets (PNG, PDF or SVG, heat maps with
colour bars), policy-by-policy comparisons on the same clips, GIFs, and the mask figure that
training logs at every evaluation.
"""
