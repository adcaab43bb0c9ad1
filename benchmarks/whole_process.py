"""bench_training's whole-process rows: ``ftgui-train`` at its defaults against the tutorial's
plain script, each a fresh process from start to exit (imports, scan, training, evaluation,
writing the model), on real handwritten digits at 32 px, where fixed costs show most.

The plain script is the PyTorch transfer-learning tutorial's loop: ImageFolder, a DataLoader,
ResNet18 with a new fc, Adam, one validation pass per epoch, ``torch.save`` of the state dict.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PLAIN = r"""
import sys
import torch, torchvision
from torch import nn
from torchvision import datasets, transforms as T
data, strategy, epochs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)
tf = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
full = datasets.ImageFolder(data, tf)
n_val = len(full) // 5
train, val = torch.utils.data.random_split(full, [len(full) - n_val, n_val], torch.Generator().manual_seed(0))
train_loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True)
val_loader = torch.utils.data.DataLoader(val, batch_size=32)
model = torchvision.models.resnet18(weights=None)
for name, p in model.named_parameters():
    p.requires_grad = strategy == "full" or (strategy == "last-1" and name.startswith("layer4"))
model.fc = nn.Linear(model.fc.in_features, len(full.classes))
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3 if strategy == "head" else 1e-4)
for epoch in range(epochs):
    model.train()
    for x, y in train_loader:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    right = 0
    with torch.no_grad():
        for x, y in val_loader:
            right += int((model(x).argmax(1) == y).sum())
    print(f"epoch {epoch + 1}: {right / len(val):.3f}", flush=True)
torch.save(model.state_dict(), out)
"""


def whole_process_rows(
    data: Path, work: Path, epochs: int, report: Callable[[str], None]
) -> list[tuple[str, str, str, str, str]]:
    """(case, plain seconds, ftgui seconds, ratio plain / ftgui, note) for head, last-1, full."""
    train = Path(sys.executable).with_name("ftgui-train")
    rows = []
    for strategy in ("head", "last-1", "full"):
        times = {}
        for who in ("plain", "ftgui"):
            out = work / f"{who}-{strategy}"
            if who == "plain":
                cmd = [sys.executable, "-c", PLAIN, str(data), strategy, str(epochs), str(out)]
            else:
                cmd = [str(train), str(data), "--out", str(out), "--model", "resnet18", "--weights", "none"]
                cmd += ["--image-size", "32", "--epochs", str(epochs), "--strategy", strategy]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=os.environ.copy())
            times[who] = time.perf_counter() - t0
        ratio = times["plain"] / times["ftgui"]
        row = (
            f"9. whole process, {strategy}, 32 px",
            f"{times['plain']:.1f}s",
            f"{times['ftgui']:.1f}s",
            f"{ratio:.2f}x {'OK' if ratio >= 1 else 'MISS'} (target 1x)",
            f"{epochs} epochs, digits; start to exit",
        )
        report(f"  {strategy}: plain {times['plain']:.1f}s, ftgui {times['ftgui']:.1f}s -> {ratio:.2f}x")
        rows.append(row)
    return rows
