"""ftgui: fine-tune pretrained torchvision image classifiers."""

__version__ = "0.1.0"
