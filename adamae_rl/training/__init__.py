"""What the training recipe (``adamae_rl.train``) stands on: run state and checkpoints
(:mod:`~adamae_rl.training.state`), held-out evaluation (:mod:`~adamae_rl.training.heldout`) and
the loop's services (:mod:`~adamae_rl.training.hooks`: signals, progress bar, non-finite
losses, data wait, summary). The parts of a run come from :func:`adamae_rl.builders.build_run`."""
