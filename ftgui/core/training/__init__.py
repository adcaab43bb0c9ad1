"""The training engine: configuration, batches, caches, the step, checkpoints, learning rates."""
