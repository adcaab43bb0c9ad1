"""Exported bundles: the format, writing them whole, deployment formats, reading them to predict."""
