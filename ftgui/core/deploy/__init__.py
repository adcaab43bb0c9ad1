"""Deployment formats: written from a trained model or an existing bundle, each run in its own
runtime on the bundle's validation images, INT8 versions gated by the accuracy they lose."""
