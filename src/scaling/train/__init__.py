"""Training: the step, the loop, checkpoints, the run dir, signals, progress and tracking."""
