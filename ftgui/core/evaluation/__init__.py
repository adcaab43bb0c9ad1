"""Evaluation results and evaluating a model on samples (no trainer, no bundle)."""
