"""Which device trains, and recognising out-of-memory errors whatever raised them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from ftgui.core.base.errors import FtguiError


def select_device(choice: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU; or the named device when it is available."""
    choice = (choice or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise FtguiError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto.")
    if choice == "mps" and not has_mps:
        raise FtguiError("MPS was requested but is not available on this machine; use --device cpu or auto.")
    if choice not in ("cpu", "mps") and not choice.startswith("cuda"):
        raise FtguiError(f"Unknown device '{choice}': use auto, cpu, cuda or mps.")
    return torch.device(choice)


def available_devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.insert(0, "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps and mps.is_available():
        out.insert(0, "mps")
    return out


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA, MPS and host allocators word it differently."""
    text = str(exc).lower()
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or any(
        m in text for m in ("out of memory", "can't allocate memory", "cannot allocate memory")
    )


def oom_message(exc: BaseException, batch_size: int) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0][:120] if text else type(exc).__name__  # MemoryError() has no text
    return (
        f"Out of memory during training ({first}). Try a smaller batch size (now {batch_size}) or image size."
    )


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """While on: torch's deterministic algorithms (a warning, not an error, for an operation that
    has none), cuDNN without autotuning, cuBLAS with a fixed workspace. Restored afterwards."""
    if not enabled:
        yield
        return
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    benchmark = torch.backends.cudnn.benchmark
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = benchmark
