"""fastai's and PyTorch Lightning's own recipes, as reference columns of bench_accuracy.py.

Both run on exactly ftgui's split (the same training and validation files), the same epochs
and the same stand-in weights (torchvision's ResNet18, loaded from the hub cache as every tool
loads it). Each tool keeps its own defaults otherwise: fastai's head (concatenated pooling,
BatchNorm, dropout, two linear layers), its one-cycle schedule and its BatchNorm layers trained
in the frozen body; Lightning's BackboneFinetuning callback (backbone frozen, BatchNorm trained,
then unfrozen at a tenth of the rate). The accuracy reported is the best epoch's, as for ftgui.

They install beside ftgui without touching its torch: ``make bench-reference`` makes
``.venv-ref`` (fastai, pytorch-lightning) layered on ``.venv``; run the benchmark with
``.venv-ref/bin/python benchmarks/bench_accuracy.py``.

fastai's recipe per strategy: head: ``fit_one_cycle(epochs, 2e-3)`` with the body frozen (the
first stage of ``fine_tune``); last-N: ``fine_tune`` whose second stage opens the last N blocks
and the head only (``freeze_to`` on a three-group split: earlier layers, last N blocks, head);
full and gradual: ``fine_tune(epochs - 1, freeze_epochs=1)``. Lightning's: head: the backbone
never unfreezes; full and gradual: it unfreezes after the first epoch; last-N: no recipe.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = ("layer4", "layer3", "layer2", "layer1")


def available() -> dict[str, bool]:
    return {name: importlib.util.find_spec(mod) is not None for name, mod in
            (("fastai", "fastai"), ("lightning", "pytorch_lightning"))}  # fmt: skip


def _split(data: Path, seed: int) -> Any:
    from ftgui.core.data.samples import split_samples
    from ftgui.core.data.scan import scan_folder

    scan = scan_folder(data)
    return scan, split_samples(scan, 0.2, seed)


def run_fastai(data: Path, strategy: str, epochs: int, seed: int = 0, linear_head: bool = False) -> float:
    """fastai's recipe (above) on ftgui's split; best validation accuracy over the epochs.
    ``linear_head``: the same recipe with ftgui's head (average pooling, one linear layer) in
    place of fastai's, to tell the head's part from the rest of the recipe."""
    from fastai.vision.all import (
        CategoryBlock,
        DataBlock,
        FuncSplitter,
        ImageBlock,
        Resize,
        accuracy,
        parent_label,
        resnet18,
        set_seed,
        vision_learner,
    )  # fmt: skip

    scan, split = _split(data, seed)
    train = [data / s.path for s in split.train]
    val = [data / s.path for s in split.val]
    held = set(val)
    set_seed(seed, reproducible=True)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(scan.classes))),
        get_items=lambda _: train + val,
        get_y=parent_label,
        splitter=FuncSplitter(lambda p: p in held),
        item_tfms=Resize(224),
    )
    dls = block.dataloaders(data, bs=32, num_workers=0, device=torch.device("cpu"))
    last = int(strategy.split("-")[1]) if strategy.startswith("last-") else 0

    def three_groups(model: nn.Module) -> list[list[nn.Parameter]]:
        body, head = model[0], model[1]
        names = [n for n, _ in body.named_children()]  # conv1 bn1 relu maxpool layer1..layer4 as 0..7
        cut = len(names) - last
        early = [p for c in list(body.children())[:cut] for p in c.parameters()]
        late = [p for c in list(body.children())[cut:] for p in c.parameters()]
        return [early, late, list(head.parameters())]

    head = (
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, len(scan.classes)))
        if linear_head
        else None
    )
    learn = vision_learner(
        dls, resnet18, metrics=accuracy, splitter=three_groups if last else None, custom_head=head
    )
    learn.model.float()
    with learn.no_bar(), learn.no_logging():
        _fastai_recipe(learn, strategy, epochs, last)
    return max(float(v[2]) for v in learn.recorder.values)


def _fastai_recipe(learn: Any, strategy: str, epochs: int, last: int) -> None:
    if strategy == "head":
        learn.freeze()
        learn.fit_one_cycle(epochs, 2e-3)
    elif last:
        learn.freeze()
        learn.fit_one_cycle(1, slice(2e-3), pct_start=0.99)
        learn.freeze_to(-2)
        learn.fit_one_cycle(epochs - 1, slice(1e-3 / 100, 1e-3), pct_start=0.3, div=5.0)
    else:
        learn.fine_tune(epochs - 1, freeze_epochs=1)


def run_lightning(data: Path, strategy: str, epochs: int, seed: int = 0, size: int = 224) -> float | None:
    """Lightning's BackboneFinetuning on ftgui's split; None where it has no recipe (last-N)."""
    if strategy.startswith("last-"):
        return None
    import pytorch_lightning as pl
    import torchvision.models as tvm
    from bench_accuracy import plain_loader, preprocess
    from pytorch_lightning.callbacks import BackboneFinetuning

    _, split = _split(data, seed)
    pl.seed_everything(seed, verbose=False)
    pre = preprocess(size)
    found: list[float] = []

    class Finetune(pl.LightningModule):
        def __init__(self, classes: int) -> None:
            super().__init__()
            backbone = tvm.resnet18(weights=tvm.ResNet18_Weights.DEFAULT)
            width = backbone.fc.in_features
            backbone.fc = nn.Identity()
            self.backbone = backbone
            self.head = nn.Linear(width, classes)
            self.right = self.seen = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(x))

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, y = batch
            return F.cross_entropy(self(x), y)

        def validation_step(self, batch: Any, _: int) -> None:
            x, y = batch
            self.right += int((self(x).argmax(1) == y).sum())
            self.seen += int(y.numel())

        def on_validation_epoch_end(self) -> None:
            found.append(self.right / max(self.seen, 1))
            self.right = self.seen = 0

        def configure_optimizers(self) -> Any:  # the callback's documented optimizer
            return torch.optim.Adam(filter(lambda p: p.requires_grad, self.parameters()), lr=1e-3)

    classes = len({s.label for s in split.train + split.val})
    module = Finetune(classes)
    unfreeze_at = epochs if strategy == "head" else 1
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[BackboneFinetuning(unfreeze_backbone_at_epoch=unfreeze_at)],
    )  # fmt: skip
    trainer.fit(
        module,
        plain_loader(data, split.train, pre, True, seed),
        plain_loader(data, split.val, pre, False, seed),
    )
    return max(found) if found else 0.0
