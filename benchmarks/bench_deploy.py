"""Deployment benchmark: every export format of a fine-tuned ResNet18 and MobileNet v3 on the
digits task, measured in its own runtime against PyTorch fp32 in the same process.

The task and the stand-in pretrained weights are the accuracy benchmark's: each architecture
is first trained from scratch on digits 0-4 and placed where torchvision's hub cache looks for
its ImageNet weights; ftgui then fine-tunes it (its defaults, last block + head) on digits 5-9.
Every format is exported with the gate opened wide (so each row is shown), then timed again at
a batch of 32. Printed per format and precision: accuracy change against the float model,
milliseconds per image at batch 1 and 32, file size, and the speed-up at batch 1 over PyTorch.

    .venv/bin/python benchmarks/bench_deploy.py            # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/bench_deploy.py --quick    # ResNet18 only, fewer images
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.models as tvm

sys.path.insert(0, str(Path(__file__).parent))
from bench_accuracy import preprocess, pretrain, train_from_scratch, write_digits  # noqa: E402

SIZE = 64
STANDIN_FILES = {"mobilenet_v3_large": "mobilenet_v3_large-5c1a4163.pth"}


def pretrain_mobilenet(data: Path, torch_home: Path, arch: str, epochs: int) -> None:
    """A MobileNet v3 trained from scratch on ``data``, saved as torchvision's weights file
    (a 1000-row last layer, as the real file has: the trained rows first)."""
    from ftgui.core.data.samples import split_samples
    from ftgui.core.data.scan import scan_folder

    torch.manual_seed(0)
    scan = scan_folder(data)
    model = tvm.get_model(arch, num_classes=len(scan.classes))
    train_from_scratch(model, data, split_samples(scan, 0.0, 0), preprocess(SIZE), epochs, 0)
    state = model.state_dict()
    last = [k for k in state if k.startswith("classifier.")][-2:]  # weight, bias of the last Linear
    w, b = state[last[0]], state[last[1]]
    full_w, full_b = torch.randn(1000, w.shape[1]) * 0.01, torch.zeros(1000)
    full_w[: len(w)], full_b[: len(b)] = w, b
    state[last[0]], state[last[1]] = full_w, full_b
    target = torch_home / "hub" / "checkpoints" / STANDIN_FILES[arch]
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)


def batch32_ms(run, images: torch.Tensor) -> float:
    x = np.ascontiguousarray(images[:32].numpy())
    run(x)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)) / len(x)


def bench_arch(arch: str, work: Path, epochs: int) -> list[tuple]:
    from ftgui.core.base.options import EXPORT_FORMATS
    from ftgui.core.deploy.export import export_all
    from ftgui.core.deploy.registry import missing_packages, runtime_available
    from ftgui.core.deploy.runtimes import load_runtime
    from ftgui.core.deploy.source import DeploySource
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer

    config = TrainConfig(
        data_dir=str(work / "task"), arch=arch, freeze=FreezePlan.parse("last-1"), epochs=epochs,
        image_size=SIZE, seed=0, device="cpu",
    )  # fmt: skip
    trainer = Trainer(config)
    for _ in trainer.run():
        pass
    formats = [f for f in EXPORT_FORMATS if not missing_packages(f)]
    out = work / f"{arch}-model"
    checks = export_all(trainer.trained(), out, ("safetensors", *formats), max_accuracy_drop=100.0)
    source = DeploySource.from_trained(trainer.trained())
    images, _, which = source.measured_images()

    def torch_run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return source.model(torch.from_numpy(x)).numpy()

    from ftgui.core.deploy.measure import latency_ms

    torch_b1 = latency_ms(torch_run, np.ascontiguousarray(images[:1].numpy()))
    size = (out / "model.safetensors").stat().st_size
    rows = [(arch, "PyTorch fp32", 0.0, torch_b1, batch32_ms(torch_run, images), size, 1.0, "")]
    for c in checks:
        if c.note or runtime_available(c.format) or c.error and not c.refused:
            rows.append((arch, c.format, None, None, None, c.size_bytes, None, c.note or c.error))
            continue
        run = load_runtime(c.format, out).run
        rows.append(
            (arch, c.format, c.accuracy_change, c.latency_ms, batch32_ms(run, images), c.size_bytes,
             torch_b1 / (c.latency_ms or float("nan")), "refused by the 1-point gate" if -(c.accuracy_change or 0) > 1 else "")
        )  # fmt: skip
    print(
        f"{arch}: measured on {which}; float accuracy {100 * (checks[0].reference_accuracy or 0):.1f}%",
        flush=True,
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ResNet18 only, fewer pretraining epochs")
    args = parser.parse_args(argv)
    archs = ["resnet18"] if args.quick else ["resnet18", "mobilenet_v3_large"]
    with tempfile.TemporaryDirectory(prefix="ftgui-bench-deploy-") as tmp:
        work = Path(tmp)
        os.environ["TORCH_HOME"] = str(work / "torch")
        write_digits(work / "pre", (0, 1, 2, 3, 4), SIZE, None)
        write_digits(work / "task", (5, 6, 7, 8, 9), SIZE, None)
        rows = []
        for arch in archs:
            start = time.time()
            if arch == "resnet18":
                pretrain(work / "pre", work / "torch", SIZE, epochs=4 if args.quick else 8)
            else:
                pretrain_mobilenet(work / "pre", work / "torch", arch, epochs=8)
            rows += bench_arch(arch, work, epochs=2 if args.quick else 3)
            print(f"{arch}: {time.time() - start:.0f} s", flush=True)
    print(
        f"\n{torch.get_num_threads()} torch threads, {SIZE} px images; ms per image; speed-up at batch 1 against PyTorch fp32"
    )
    head = ("model", "format", "accuracy change", "ms b1", "ms b32", "size MB", "speed-up b1", "")
    print("  ".join(f"{h:<16}" if i < 2 else f"{h:>15}" for i, h in enumerate(head)))
    for arch, fmt, change, b1, b32, size, speed, note in rows:
        cells = [
            f"{arch:<16}", f"{fmt:<16}",
            f"{'' if change is None else f'{change:+.1f} pt':>15}",
            f"{'' if b1 is None else f'{b1:.2f}':>15}", f"{'' if b32 is None else f'{b32:.2f}':>15}",
            f"{size / 1e6:>15.1f}", f"{'' if speed is None else f'{speed:.1f}x':>15}", note,
        ]  # fmt: skip
        print("  ".join(cells).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
