"""Training plumbing shared by the entry points: checkpoints, schedules, metric logs, processes."""
