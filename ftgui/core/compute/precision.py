"""Which number format a run computes in: fp32, or bf16 mixed precision where it is faster.

Under ``torch.autocast`` the convolutions and matrix products run in bfloat16 while the
parameters, their gradients, the optimizer's state and the loss stay fp32. On a CPU this pays
only where the processor computes bf16 natively (AVX-512 BF16: AMD Zen 4 and later, Intel
Cooper Lake and later; AMX: Intel Sapphire Rapids and later); elsewhere oneDNN emulates it and
it is many times slower. Even with native bf16 some models train slower in it (depthwise and
grouped convolutions: MobileNet, EfficientNet), so ``auto`` never assumes: it times a few
steps of the run's own model at its batch and image size in both formats, keeps bf16 only
where it is faster by a margin, and remembers the answer per model, size, freeze state,
processor and torch version (``cache_dir()/precision.json``). Training (forward and backward
of the trainable layers) and inference (the frozen layers' cache, evaluation) are decided
separately: a model can train best in fp32 and still fill its cache faster in bf16.
On CUDA the choice is the GPU's usual mixed precision (bf16 where supported, else fp16 with
a gradient scaler), unless fp32 is asked for.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ftgui.core.base.files import atomic_write
from ftgui.core.base.paths import cache_dir

MIN_GAIN = 1.1  # bf16 must be at least this much faster in the trial to be chosen
TRIAL_BATCH = 8  # at most this many images per trial step (the per-image time is what counts)
TRIAL_STEPS = 3  # one warm-up step, then the faster of two timed ones


def native_bf16() -> str | None:
    """The processor feature that computes bf16 natively (``None`` if it has none): read from
    the CPU flags torch's cpuinfo reports, or ``/proc/cpuinfo`` where torch has no such probe."""
    probes = (("AMX", "_is_amx_tile_supported"), ("AVX-512 BF16", "_is_avx512_bf16_supported"))
    cpu = getattr(torch, "cpu", None)
    found_probe = False
    for name, probe in probes:
        check = getattr(cpu, probe, None)
        if callable(check):
            found_probe = True
            with contextlib.suppress(Exception):
                if check():
                    return name
    if found_probe:
        return None
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return None
    if "amx_bf16" in flags:
        return "AMX"
    return "AVX-512 BF16" if "avx512_bf16" in flags else None


def processor_name() -> str:
    """The CPU's model name (for the log, the benchmark and the trial cache's key)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown processor"


DTYPE_NAMES: dict[str, torch.dtype | None] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def dtype_name(d: torch.dtype | None) -> str:
    """ "bf16", "fp16" or "fp32" (None: fp32), as model.json and the card say it."""
    return next((k for k, v in DTYPE_NAMES.items() if v == d), "fp32")


@dataclass(frozen=True)
class Precision:
    """The formats a run computes in: ``train`` for training steps, ``infer`` for the frozen
    layers' cache, evaluation and features (``None``: fp32). ``note`` says what and why."""

    train: torch.dtype | None = None
    infer: torch.dtype | None = None
    note: str = "fp32"
    device_type: str = "cpu"
    slower: bool = False  # bf16 asked for where it is emulated: said as a warning

    def autocast(self, part: str = "train") -> contextlib.AbstractContextManager[None]:
        """``torch.autocast`` for ``part`` ("train" or "infer"); does nothing for fp32."""
        dtype = self.train if part == "train" else self.infer
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=dtype)

    @property
    def label(self) -> str:
        """Short form for model.json and the card: "bf16", "fp32", or "bf16 / fp32" (training / inference)."""
        a, b = dtype_name(self.train), dtype_name(self.infer)
        return a if a == b else f"{a} training, {b} inference"


FP32 = Precision()


def cuda_precision(requested: str, amp: bool) -> Precision:
    """On a GPU: the usual mixed precision (bf16 where supported, else fp16), or fp32."""
    if requested == "fp32" or not amp:
        return Precision(note="fp32 (asked for)", device_type="cuda")
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Precision(
        dtype, dtype, f"{'bf16' if dtype == torch.bfloat16 else 'fp16'} mixed precision on the GPU", "cuda"
    )


@dataclass(frozen=True)
class Trial:
    """What to time: the model (a copy is timed, the model is left untouched), one batch of
    inputs like the run's, and the key its result is remembered under."""

    model: nn.Module
    example: torch.Tensor
    key: str
    # Head only: a step is the frozen layers' forward pass and a head's (on cached features, the
    # head alone), so the inference trial decides both and no training steps are timed.
    train_as_infer: bool = False


def choose_precision(
    requested: str, device: torch.device, amp: bool, trial: Callable[[], Trial | None]
) -> Precision:
    """The run's precision on its device: ``requested`` is auto, fp32 or bf16; ``trial`` makes
    what to time (called only where ``auto`` needs a measurement)."""
    if device.type == "cuda":
        return cuda_precision(requested, amp)
    if device.type != "cpu":
        return Precision(note=f"fp32 (mixed precision is used on CUDA and CPUs, not on {device.type})")
    forced = env_precision() if requested == "auto" else None
    if forced:
        chosen = choose_cpu_precision(forced, lambda: None)
        return replace(chosen, note=chosen.note.replace("asked for", "FTGUI_PRECISION"))
    return choose_cpu_precision(requested, trial)


def choose_cpu_precision(requested: str, trial: Callable[[], Trial | None]) -> Precision:
    """``requested`` (auto, fp32 or bf16) on the CPU: what runs in bf16, and why."""
    native = native_bf16()
    if requested == "fp32":
        return Precision(note="fp32 (asked for)")
    if requested == "bf16":
        warn = (
            ""
            if native
            else "; this processor has no native bf16, so it is emulated and likely slower than fp32"
        )
        return Precision(torch.bfloat16, torch.bfloat16, f"bf16 (asked for{warn})", slower=not native)
    if not native:
        return Precision(note="fp32: this processor has no native bf16")
    made = trial()
    if made is None:
        return Precision(note="fp32: nothing to measure bf16 on")
    try:
        gains = measured_gains(made)
    except Exception as exc:  # the run itself must not fail for want of a measurement
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        return Precision(note=f"fp32: the bf16 trial could not run ({first})")
    parts = {p: torch.bfloat16 if gains[p] >= MIN_GAIN else None for p in ("train", "infer")}
    said = {p: _verdict(p, gains[p]) for p in ("train", "infer")}
    where = f"{native} here, measured in a {TRIAL_STEPS}-step trial"
    return Precision(parts["train"], parts["infer"], f"{said['train']}; {said['infer']} ({where})")


def _verdict(part: str, gain: float) -> str:
    what = "training" if part == "train" else "the frozen layers and evaluation"
    if gain >= MIN_GAIN:
        return f"bf16 for {what}: {gain:.2f}× faster"
    return f"fp32 for {what}: bf16 {'only ' if gain >= 1 else ''}{gain:.2f}× the speed"


def gain_cache_file() -> Path:
    return cache_dir() / "precision.json"


def measured_gains(trial: Trial) -> dict[str, float]:
    """bf16's speed as a multiple of fp32's, for a training step and for inference, from the
    remembered trial or a new one."""
    path = gain_cache_file()
    key = f"{trial.key}|{processor_name()}|torch {torch.__version__}"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    got = known.get(key)
    if isinstance(got, dict) and all(isinstance(got.get(p), (int, float)) for p in ("train", "infer")):
        return {p: float(got[p]) for p in ("train", "infer")}
    gains = time_trial(trial)
    known[key] = gains
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(json.dumps(known, indent=1, sort_keys=True).encode()))
    return gains


def time_trial(trial: Trial, steps: int = TRIAL_STEPS) -> dict[str, float]:
    """Time ``steps`` training steps (forward, fp32 loss, backward of what trains) and
    ``steps`` inference passes of a copy of the model, in fp32 and in bf16 by turns; the first
    of each warms up, the fastest of the others counts. Returns bf16's speed-up for each."""
    model = copy.deepcopy(trial.model)
    x = trial.example
    target = torch.zeros(len(x), dtype=torch.long)

    def once(train: bool, dtype: torch.dtype | None) -> float:
        t0 = time.perf_counter()
        ctx = torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext()
        if train:
            with ctx:
                out = model(x)
            logits = out if isinstance(out, torch.Tensor) else tuple(out)[0]
            F.cross_entropy(logits.float(), target).backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), ctx:
                model(x)
        return time.perf_counter() - t0

    gains = {"train": 1.0, "infer": 1.0}
    for part, train in (("infer", False), ("train", True)):
        if train and (trial.train_as_infer or not any(p.requires_grad for p in model.parameters())):
            gains["train"] = gains["infer"] if trial.train_as_infer else 1.0
            continue
        model.train(train)
        # fp32 and bf16 take turns, so a burst of other work on the machine slows both alike;
        # the first round warms up, the fastest of the others counts.
        times: dict[torch.dtype | None, list[float]] = {None: [], torch.bfloat16: []}
        for round_ in range(steps):
            for dtype in (None, torch.bfloat16):
                took = once(train, dtype)
                if round_ or steps == 1:
                    times[dtype].append(took)
        gains[part] = round(min(times[None]) / max(min(times[torch.bfloat16]), 1e-9), 3)
    return gains


@dataclass(frozen=True)
class RunShape:
    """What a trial's result depends on besides the processor and torch: the model, its input
    size, the batch, which layers train (the strategy) and the memory layout."""

    arch: str
    size: int
    batch: int
    strategy: str
    channels_last: bool

    def trial(self, model: nn.Module) -> Trial:
        """A trial of ``model`` (on its device) on random images of this shape."""
        device = next(model.parameters()).device
        # Two images at least: BatchNorm cannot train on one.
        n = max(2, min(self.batch, TRIAL_BATCH))
        x = torch.randn(n, 3, self.size, self.size, device=device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        layout = "nhwc" if self.channels_last else "nchw"
        key = f"{self.arch}|{self.size}px|batch {n}|{self.strategy}|{layout}"
        return Trial(model, x, key, train_as_infer=self.strategy == "head")


def env_precision() -> str | None:
    """``FTGUI_PRECISION`` (fp32 or bf16), where set: what ``auto`` means on this machine,
    without a trial (a fleet that knows its processors; the test suite, which must not depend
    on timings)."""
    v = os.environ.get("FTGUI_PRECISION", "").strip().lower()
    return v if v in ("fp32", "bf16") else None
