"""What a run ran on, for reproducing it: the versions of the libraries whose arithmetic or data
handling shapes the weights, and the machine (processor, threads, accelerator)."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from ftgui.core.compute.precision import processor_name

# The libraries a reproduction must match; Pillow and NumPy decode and convert the images.
MATCHED = ("ftgui", "torch", "torchvision", "timm", "pillow", "numpy")


def versions() -> dict[str, str | None]:
    """Each library's version (None: not installed), and Python's."""
    import numpy
    import PIL
    import torchvision

    from ftgui import __version__

    try:
        import timm

        timm_version: str | None = timm.__version__
    except ImportError:
        timm_version = None
    return {
        "ftgui": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm_version,
        "pillow": PIL.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def machine(device: torch.device) -> dict[str, Any]:
    """The machine as far as it changes the arithmetic: processor, cores, torch's threads, and
    the accelerator a run used."""
    accelerator = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {
        "system": f"{platform.system()} {platform.machine()}",
        "processor": processor_name(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": accelerator,
    }


def machine_differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Where this machine differs from a recorded one (what makes bit-identical weights unlikely)."""
    keys = ("system", "processor", "cpus", "torch_threads", "device")
    return [
        f"{k} {recorded.get(k)!r} then, {now.get(k)!r} now" for k in keys if recorded.get(k) != now.get(k)
    ]


def version_differences(recorded: dict[str, Any], now: dict[str, Any], uses_timm: bool) -> list[str]:
    """Which of :data:`MATCHED` differ between a record and this installation (timm only for a
    model timm builds)."""
    return [
        f"{name} {recorded.get(name) or 'not installed'} then, {now.get(name) or 'not installed'} now"
        for name in MATCHED
        if (uses_timm or name != "timm") and recorded.get(name) != now.get(name)
    ]
