"""Figures of what a masking policy hides and what the MAE rebuilds (``python -m adamae_rl.visualize``).

:mod:`~adamae_rl.visualization.render` draws masks and reconstructions for held-out clips;
:mod:`~adamae_rl.visualization.figures` turns them into PNG sheets and GIFs.
"""
