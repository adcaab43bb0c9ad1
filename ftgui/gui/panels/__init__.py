"""The window's panels: each renders one part of the session (data, model, training, evaluation, Try, Compare, Runs)."""
