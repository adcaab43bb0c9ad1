"""The window's dialogs: export, training jobs, the learning-rate finder, Check data, Classify a folder."""
