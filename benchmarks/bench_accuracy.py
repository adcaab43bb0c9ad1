"""Recipe benchmark on real data: ftgui's defaults against the tutorial's recipe and a small
learning-rate sweep of ftgui itself.

Data: scikit-learn's handwritten digits (real scans, 8 x 8, shipped with scikit-learn), written
out as PNG files at the chosen size. A ResNet18 first trained on some digits plays the
"pretrained" model: its weights file is placed where torch's hub cache looks for torchvision's
ResNet18 weights (in a temporary TORCH_HOME), so ftgui loads it exactly as it would load the
real ImageNet weights. The other digits are the new task.

For every strategy (head, last-1, last-2, full, gradual), each setting prints validation
accuracy (best epoch, on the same seeded split) of:
- ftgui's defaults (nothing set but the folder, the strategy, the epochs and the image size);
- the tutorial's recipe: a plain PyTorch loop, Adam at 1e-3 for a new head alone and 1e-4 on
  whatever trains otherwise, constant rate, frozen layers only excluded from the optimizer;
- the best of a small sweep of ftgui's learning rate (everything else at its defaults).

    .venv/bin/python benchmarks/bench_accuracy.py            # about 15 minutes on 2 cores
    .venv/bin/python benchmarks/bench_accuracy.py --quick    # one setting, fewer sweep points
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from PIL import Image
from torch import nn
from workfolder import add_keep_option, work_folder

STRATEGIES = ("head", "last-1", "last-2", "full", "gradual")
SWEEP = {
    "head": (1e-3, 3e-3, 1e-2, 3e-2),
    "last-1": (1e-4, 3e-4, 1e-3, 3e-3),
    "last-2": (1e-4, 3e-4, 1e-3, 3e-3),
    "full": (1e-4, 3e-4, 1e-3, 3e-3),
    "gradual": (1e-4, 3e-4, 1e-3, 3e-3),
}
RESNET18_FILE = "resnet18-f37072fd.pth"  # what torchvision's ResNet18_Weights.IMAGENET1K_V1 names


@dataclass
class Setting:
    name: str
    pretrain_digits: tuple[int, ...]
    task_digits: tuple[int, ...]
    size: int = 32
    per_class: int | None = None  # None: every image of the digit
    epochs: int = 5
    arch: str = "resnet18"  # or timm:NAME: the stand-in is then a timm model in the HF hub cache
    # digits: PNG scans at ``size``; photos-like 224-px JPEG tasks on the photograph stand-in
    # (photo_data.py): shapes, textures or digits-jpeg, ``counts`` images per class.
    data: str = "digits"
    counts: tuple[int, ...] = ()
    held_out: bool = False  # kept out of the choice of defaults: reported as the check

    @property
    def photos(self) -> bool:
        return self.data != "digits"


@dataclass
class Row:
    setting: str
    strategy: str
    defaults: float
    default_lr: str
    tutorial: float
    sweep: dict[float, float] = field(default_factory=dict)
    before: float | None = None  # --before: ftgui with the pretrained BatchNorm statistics kept
    fastai: float | None = None  # reference columns, where installed (reference_recipes.py)
    lightning: float | None = None
    held_out: bool = False

    @property
    def sweep_best(self) -> tuple[float, float]:
        lr = max(self.sweep, key=lambda k: self.sweep[k])
        return lr, self.sweep[lr]


# ---------------------------------------------------------------- data


def write_digits(
    root: Path, digits: tuple[int, ...], size: int, per_class: int | None, seed: int = 0, jpeg: bool = False
) -> Path:
    """Digits as PNG files (``jpeg``: RGB JPEGs, quality 90), one folder per digit (8 x 8 scans
    scaled up smoothly)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(seed)
    for d in digits:
        folder = root / str(d)
        folder.mkdir(parents=True, exist_ok=True)
        idx = np.flatnonzero(data.target == d)
        if per_class is not None:
            idx = rng.choice(idx, size=min(per_class, len(idx)), replace=False)
        for i in idx:
            pixels = (data.images[i] * (255.0 / 16.0)).astype(np.uint8)
            im = Image.fromarray(pixels, "L").resize((size, size), Image.BICUBIC)
            if jpeg:
                im.convert("RGB").save(folder / f"{i:04d}.jpg", quality=90)
            else:
                im.save(folder / f"{i:04d}.png")
    return root


def preprocess(size: int, arch: str = "resnet18") -> Any:
    from ftgui.core.models import preprocess_for, resolve_weights

    if arch.startswith("timm:"):
        from ftgui.core.models import timm_source

        return timm_source.preprocess(arch, size)
    return preprocess_for("resnet18", resolve_weights("resnet18", "default"), size)


def plain_loader(root: Path, samples: list[Any], pre: Any, shuffle: bool, seed: int, batch: int = 32) -> Any:
    """The tutorial's data path: ImageFolder-style dataset, torchvision transforms, DataLoader."""
    from torchvision import transforms as T

    tf = T.Compose(
        [
            T.Resize(pre.resize_size),
            T.CenterCrop(pre.crop_size),
            T.ToTensor(),
            T.Normalize(pre.mean, pre.std),
        ]
    )

    class Files(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(samples)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            s = samples[i]
            return tf(Image.open(root / s.path).convert("RGB")), s.label

    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(Files(), batch_size=batch, shuffle=shuffle, generator=gen)


def accuracy(model: nn.Module, loader: Any) -> float:
    model.eval()
    right = total = 0
    with torch.inference_mode():
        for x, y in loader:
            right += int((model(x).argmax(1) == y).sum())
            total += int(y.numel())
    return right / max(total, 1)


# ---------------------------------------------------------------- the "pretrained" model


def pretrain(
    data: Path, torch_home: Path, size: int, epochs: int = 15, seed: int = 0, arch: str = "resnet18"
) -> None:
    """``arch`` trained from scratch on ``data``: ResNet18 saved as torchvision's ResNet18 weights
    file; a timm model saved as its weights in the Hugging Face hub cache's layout."""
    from ftgui.core.data.samples import split_samples
    from ftgui.core.data.scan import scan_folder

    torch.manual_seed(seed)
    scan = scan_folder(data)
    split = split_samples(scan, 0.0, seed)
    pre = preprocess(size, arch)
    if arch.startswith("timm:"):
        return _pretrain_timm(data, split, pre, len(scan.classes), epochs, seed, arch)
    model = tvm.resnet18(num_classes=len(scan.classes))
    train_from_scratch(model, data, split, pre, epochs, seed)
    state = model.state_dict()
    # A 1000-class head, as the real file has: the trained rows first, the rest small noise.
    fc_w = torch.randn(1000, 512) * 0.01
    fc_b = torch.zeros(1000)
    fc_w[: len(scan.classes)] = state["fc.weight"]
    fc_b[: len(scan.classes)] = state["fc.bias"]
    state["fc.weight"], state["fc.bias"] = fc_w, fc_b
    target = torch_home / "hub" / "checkpoints" / RESNET18_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)


def train_from_scratch(model: nn.Module, data: Path, split: Any, pre: Any, epochs: int, seed: int) -> None:
    """The stand-in's own training: Adam 1e-3 on every parameter, the training split (at 224 px
    in bf16 autocast where the processor computes it natively: the stand-in only has to exist)."""
    from ftgui.core.compute.precision import native_bf16

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = plain_loader(data, split.train, pre, True, seed)
    fast = pre.crop_size >= 128 and bool(native_bf16())
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            with torch.autocast("cpu", torch.bfloat16, enabled=fast):
                out = model(x)
            F.cross_entropy(out.float(), y).backward()
            opt.step()


def timm_file(arch: str) -> Path:
    """Where the stand-in timm weights lie: the hub cache's layout under HF_HOME."""
    from ftgui.core.models import timm_source

    repo = timm_source.hub_id(arch)
    return (
        timm_source.hub_cache()
        / f"models--{repo.replace('/', '--')}"
        / "snapshots"
        / "bench"
        / "model.safetensors"
    )


def _pretrain_timm(data: Path, split: Any, pre: Any, classes: int, epochs: int, seed: int, arch: str) -> None:
    import timm
    from safetensors.torch import save_file

    from ftgui.core.models import timm_source

    kwargs = timm_source.model_kwargs(arch, pre.crop_size)
    model = timm.create_model(arch[5:], pretrained=False, num_classes=classes, **kwargs)
    train_from_scratch(model, data, split, pre, epochs, seed)
    model.reset_classifier(1000)  # the real file's 1000-class head (ftgui and timm replace it)
    target = timm_file(arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    refs = target.parents[2] / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text("bench")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(target))


# ---------------------------------------------------------------- the three contenders


def run_ftgui(data: Path, strategy: str, setting: Setting, **overrides: Any) -> tuple[float, str]:
    """Best validation accuracy of an ftgui run, and the learning rate it used."""
    from ftgui.core.base import events as ev
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer

    cfg = TrainConfig(
        data_dir=str(data),
        arch=setting.arch,
        freeze=FreezePlan.parse(strategy),
        epochs=setting.epochs,
        image_size=setting.size,
        device="cpu",
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    trainer = Trainer(cfg)
    best = 0.0
    used = ""
    for e in trainer.run():
        if isinstance(e, ev.Failed):
            raise RuntimeError(e.message)
        if isinstance(e, ev.EpochEnded) and e.val_accuracy is not None:
            best = max(best, e.val_accuracy)
        if isinstance(e, ev.Message) and e.text.startswith("Learning rate: "):
            used = e.text.removeprefix("Learning rate: ").rstrip(".")
    return best, used or f"{trainer.config.lr:g}"


def _freeze_for(model: nn.Module, strategy: str, unfrozen: int) -> None:
    blocks = ["layer4", "layer3", "layer2", "layer1", "conv1"]
    if strategy == "full":
        trainable = None
    elif strategy.startswith("last-"):
        trainable = blocks[: int(strategy.split("-")[1])]
    elif strategy == "gradual":
        trainable = blocks[:unfrozen]
    else:
        trainable = []
    for name, p in model.named_parameters():
        top = name.split(".")[0]
        p.requires_grad = (
            trainable is None
            or top == "fc"
            or top in trainable
            or (top == "bn1" and "conv1" in (trainable or []))
        )


def _timm_tutorial_model(setting: Setting, pre: Any, classes: int, strategy: str) -> nn.Module:
    """timm's own way: create_model(pretrained, num_classes=K); freeze all but the classifier,
    or (last-N) all but the last N of timm's coarse groups too."""
    import timm

    from ftgui.core.models import timm_source

    model = timm.create_model(
        setting.arch[5:], pretrained=True, pretrained_cfg_overlay={"file": str(timm_file(setting.arch))},
        num_classes=classes, **timm_source.model_kwargs(setting.arch, pre.crop_size),
    )  # fmt: skip
    _timm_open(model, strategy, int(strategy.split("-")[1]) if strategy.startswith("last-") else 0)
    return model


def _timm_open(model: nn.Module, strategy: str, last: int) -> None:
    """The classifier and the last ``last`` of timm's coarse groups train (all of it: full)."""
    from timm.models import group_parameters

    from ftgui.core.models import timm_source

    prefix = timm_source.classifier_name(model) or ""
    head = {f"{prefix}.{n}" for n, _ in model.get_classifier().named_parameters()}  # type: ignore[operator]
    groups = [names for _, names in sorted(group_parameters(model, model.group_matcher(coarse=True)).items())]  # type: ignore[operator]
    open_names = {n for g in groups[len(groups) - 1 - last : -1] for n in g} if last else set()
    for name, p in model.named_parameters():
        p.requires_grad = strategy == "full" or name in open_names or name in head


def run_tutorial(data: Path, strategy: str, setting: Setting, seed: int = 0) -> float:
    """The tutorial's loop on ftgui's split: Adam, constant rate, frozen parts left out of it."""
    from ftgui.core.data.samples import split_samples
    from ftgui.core.data.scan import scan_folder

    scan = scan_folder(data)
    split = split_samples(scan, 0.2, seed)
    pre = preprocess(setting.size, setting.arch)
    torch.manual_seed(seed)
    if setting.arch.startswith("timm:"):
        model = _timm_tutorial_model(setting, pre, len(scan.classes), strategy)
    else:
        model = tvm.resnet18(weights=tvm.ResNet18_Weights.DEFAULT)
        model.fc = nn.Linear(model.fc.in_features, len(scan.classes))
        _freeze_for(model, strategy, 0)
    lr = 1e-3 if strategy == "head" else 1e-4
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    train = plain_loader(data, split.train, pre, True, seed)
    val = plain_loader(data, split.val, pre, False, seed)
    best = 0.0
    for epoch in range(setting.epochs):
        if strategy == "gradual" and epoch > 0:
            before = {id(p) for p in model.parameters() if p.requires_grad}
            if setting.arch.startswith("timm:"):
                _timm_open(model, strategy, epoch)  # one more of timm's groups each epoch
            else:
                _freeze_for(model, strategy, epoch)
            new = [p for p in model.parameters() if p.requires_grad and id(p) not in before]
            if new:
                opt.add_param_group({"params": new, "lr": 1e-4})
        model.train()
        for x, y in train:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        best = max(best, accuracy(model, val))
    return best


# ---------------------------------------------------------------- the table


def write_task(setting: Setting, folder: Path) -> Path:
    """The setting's task folder (written once; kept with --work)."""
    import photo_data

    if folder.is_dir():
        return folder
    if setting.data == "shapes":
        return photo_data.write_shapes(folder, setting.counts, setting.size)
    if setting.data == "textures":
        return photo_data.write_crops(folder, photo_data.TEXTURES, setting.counts, setting.size)
    if setting.data == "digits-jpeg":
        return write_digits(folder, setting.task_digits, setting.size, setting.counts[0], jpeg=True)
    return write_digits(folder, setting.task_digits, setting.size, setting.per_class)


def prepare_setting(setting: Setting, work: Path) -> Path:
    """The setting's task folder, with its stand-in pretrained weights where the caches look
    (one photograph stand-in serves every 224-px setting)."""
    import photo_data

    slug = "".join(c if c.isalnum() else "_" for c in setting.name)
    home = "photos" if setting.photos else slug
    torch_home = work / f"torch-{home}"
    data = write_task(setting, work / f"task-{slug}")
    os.environ["TORCH_HOME"] = str(torch_home)
    os.environ["HF_HOME"], os.environ["HF_HUB_OFFLINE"] = str(work / f"hf-{home}"), "1"
    torch.hub.set_dir(str(torch_home / "hub"))
    t0 = time.perf_counter()
    kept = (
        timm_file(setting.arch)
        if setting.arch.startswith("timm:")
        else torch_home / "hub" / "checkpoints" / RESNET18_FILE
    )
    if not kept.is_file():  # kept with --work
        if setting.photos:
            pre_data = photo_data.write_pretraining(work / "pre-photos", size=setting.size)
            pretrain(pre_data, torch_home, setting.size, epochs=8, arch=setting.arch)
        else:
            pre_data = write_digits(work / f"pre-{slug}", setting.pretrain_digits, setting.size, None)
            pretrain(pre_data, torch_home, setting.size, arch=setting.arch)
    source = "15 photographs" if setting.photos else f"digits {setting.pretrain_digits}"
    print(f"[{setting.name}] stand-in pretrained on {source} in {time.perf_counter() - t0:.0f}s", flush=True)
    return data


def run_setting(
    setting: Setting, work: Path, sweep: bool, strategies: tuple[str, ...], references: bool = True,
    before: bool = False,
) -> list[Row]:  # fmt: skip
    import reference_recipes as ref

    data = prepare_setting(setting, work)
    have = ref.available() if references and setting.arch == "resnet18" and setting.photos else {}
    rows = []
    for strategy in strategies:
        t0 = time.perf_counter()
        default_acc, used = run_ftgui(data, strategy, setting)
        tutorial_acc = run_tutorial(data, strategy, setting)
        row = Row(setting.name, strategy, default_acc, used, tutorial_acc, held_out=setting.held_out)
        if before:
            row.before = run_ftgui(data, strategy, setting, bn_stats="keep")[0]
        if have.get("fastai"):
            row.fastai = ref.run_fastai(data, strategy, setting.epochs)
        if have.get("lightning"):
            row.lightning = ref.run_lightning(data, strategy, setting.epochs, size=setting.size)
        if sweep:
            for lr in SWEEP[strategy]:
                row.sweep[lr] = run_ftgui(data, strategy, setting, lr=lr)[0]
        rows.append(row)
        print(f"[{setting.name}] {strategy}: {time.perf_counter() - t0:.0f}s", flush=True)
    return rows


def _pct(value: float | None, width: int) -> str:
    return f"{100 * value:{width - 1}.1f}%" if value is not None else f"{'-':>{width}}"


def print_table(rows: list[Row]) -> bool:
    """The table; True when every row meets the goal (held-out rows marked, judged alike)."""
    refs = any(r.fastai is not None for r in rows), any(r.lightning is not None for r in rows)
    was = any(r.before is not None for r in rows)
    head = (
        f"{'setting':<30} {'strategy':<8} {'ftgui':>7}"
        + (f" {'before':>7}" if was else "")
        + f" {'tutorial':>9}"
        + (f" {'fastai':>7}" if refs[0] else "")
        + (f" {'Lightn.':>7}" if refs[1] else "")
        + f" {'sweep best':>17} {'vs best other':>13} {'vs sweep':>9}  default learning rate"
    )
    print(head)
    print("-" * len(head))
    ok = True
    for r in rows:
        best_lr, best_acc = r.sweep_best if r.sweep else (math.nan, math.nan)
        others = [v for v in (r.tutorial, r.fastai, r.lightning) if v is not None]
        vs_o = 100 * (r.defaults - max(others))
        vs_s = 100 * (r.defaults - best_acc) if r.sweep else math.nan
        good = vs_o >= -1e-9 and (not r.sweep or vs_s >= -2.0)  # (a tie is not a miss)
        ok &= good
        sweep_text = f"{100 * best_acc:5.1f}% @ {best_lr:.0e}" if r.sweep else "-"
        name = r.setting + (" *" if r.held_out else "")
        print(
            f"{name:<30} {r.strategy:<8} {_pct(r.defaults, 7)}"
            + (f" {_pct(r.before, 7)}" if was else "")
            + f" {_pct(r.tutorial, 9)}"
            + (f" {_pct(r.fastai, 7)}" if refs[0] else "")
            + (f" {_pct(r.lightning, 7)}" if refs[1] else "")
            + f" {sweep_text:>17} {vs_o:+12.1f}  {vs_s:+8.1f}  {'OK ' if good else 'MISS'} {r.default_lr}"
        )
    if any(r.held_out for r in rows):
        print("* held out: not used to choose the defaults, reported as the check")
    if any(r.sweep for r in rows):
        print("\nsweep, every rate:")
        for r in rows:
            cells = "  ".join(f"{lr:.0e}: {100 * acc:5.1f}%" for lr, acc in r.sweep.items())
            print(f"  {r.setting:<30} {r.strategy:<8} {cells}")
    return ok


@dataclass
class PrecisionRow:
    """One setting and strategy at ftgui's defaults, fp32 and bf16, one accuracy per seed."""

    setting: str
    strategy: str
    fp32: list[float]
    bf16: list[float]

    def verdict(self) -> tuple[float, bool]:
        """bf16's mean minus fp32's, in points, and whether that is within 1 point or within
        the range fp32's own seeds span."""
        diff = 100 * (float(np.mean(self.bf16)) - float(np.mean(self.fp32)))
        spread = 100 * (max(self.fp32) - min(self.fp32))
        return diff, abs(diff) <= max(1.0, spread)


def precision_rows(
    setting: Setting, work: Path, strategies: tuple[str, ...], seeds: int
) -> list[PrecisionRow]:
    """ftgui's defaults in fp32 and in bf16 over ``seeds`` seeds (split and initialisation)."""
    data = prepare_setting(setting, work)
    rows = []
    for strategy in strategies:
        t0 = time.perf_counter()
        runs = {
            precision: [
                run_ftgui(data, strategy, setting, precision=precision, seed=s)[0] for s in range(seeds)
            ]
            for precision in ("fp32", "bf16")
        }
        rows.append(PrecisionRow(setting.name, strategy, runs["fp32"], runs["bf16"]))
        print(
            f"[{setting.name}] {strategy} fp32 and bf16 x {seeds} seeds: {time.perf_counter() - t0:.0f}s",
            flush=True,
        )
    return rows


def print_precision_table(rows: list[PrecisionRow]) -> bool:
    """fp32 against bf16 per row (mean ± half the range over seeds); True when bf16 keeps the
    accuracy everywhere (within 1 point of fp32's mean, or within fp32's own seed range)."""

    def cell(values: list[float]) -> str:
        return f"{100 * float(np.mean(values)):5.1f}% ± {50 * (max(values) - min(values)):4.1f}"

    head = (
        f"{'setting':<26} {'strategy':<8} {'fp32':>14} {'bf16':>14} {'bf16 - fp32':>11}  seeds: fp32 / bf16"
    )
    print(head)
    print("-" * len(head))
    ok = True
    for r in rows:
        diff, good = r.verdict()
        ok &= good
        each = " ".join(f"{100 * a:.1f}/{100 * b:.1f}" for a, b in zip(r.fp32, r.bf16))
        print(
            f"{r.setting:<26} {r.strategy:<8} {cell(r.fp32):>14} {cell(r.bf16):>14} {diff:+10.1f}  {'OK ' if good else 'MISS'} {each}"
        )
    return ok


def head_form_table(names: list[str], strategies: tuple[str, ...], args: argparse.Namespace) -> int:
    """ftgui's defaults with the linear and the concat head over --seeds seeds (each seed its own
    split), and the form selection.choose picks per strategy; with fastai installed, its head-only
    recipe with its own head and with a linear one (seed 0)."""
    import reference_recipes as ref
    import selection

    have = ref.available() if not args.no_references else {}
    forms = ("linear", "concat")  # cheapest first
    print(
        f"The head's form over {args.seeds} seed(s) (each its own split): ftgui's defaults with --head linear / concat"
    )
    measured: dict[str, dict[str, dict[str, float]]] = {}
    held = {n for n in names if SETTINGS[n].held_out}
    with work_folder("bench-accuracy", args.keep, args.work) as work:
        for name in names:
            setting = SETTINGS[name]
            data = prepare_setting(setting, work)
            for strategy in strategies:
                accs = {
                    form: [
                        run_ftgui(data, strategy, setting, head=form, seed=seed)[0]
                        for seed in range(args.first_seed, args.first_seed + args.seeds)
                    ]
                    for form in forms
                }
                measured.setdefault(name, {})[strategy] = {f: sum(a) / len(a) for f, a in accs.items()}
                cells = "   ".join(
                    f"{f} {100 * sum(a) / len(a):5.1f}% ({' '.join(f'{100 * x:.1f}' for x in a)})"
                    for f, a in accs.items()
                )
                line = f"{name + (' *' if setting.held_out else ''):<34} {strategy:<8} {cells}"
                if have.get("fastai") and strategy == "head":
                    fa = [
                        ref.run_fastai(data, "head", setting.epochs, linear_head=lin) for lin in (False, True)
                    ]
                    line += f"   fastai: own head {100 * fa[0]:5.1f}%, linear {100 * fa[1]:5.1f}%"
                print(line, flush=True)
    for strategy in strategies:
        if not any(strategy in measured[n] for n in measured if n not in held):
            continue
        chosen = selection.choose(measured, strategy, forms, held, tie=args.tie / 100)
        worst = max(selection.shortfalls(measured, strategy, chosen, [n for n in measured if n not in held]))
        check = selection.held_out_check(measured, strategy, chosen, held)
        said = "; ".join(f"{n}: {100 * v:.1f} below the best" for n, v in check.items())
        print(
            f"{strategy}: {chosen} (at most {100 * worst:.1f} points below the best form)"
            + (f"; held out: {said}" if said else "")
        )
    if held:
        print("* held out: not used to choose, reported as the check")
    return 0


SETTINGS = {
    "digits 0-4 -> 5-9, 32 px": Setting("digits 0-4 -> 5-9, 32 px", (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)),
    "digits 5-9 -> 0-4, 32 px": Setting("digits 5-9 -> 0-4, 32 px", (5, 6, 7, 8, 9), (0, 1, 2, 3, 4)),
    "0-4 -> 5-9, 10 per class": Setting(
        "0-4 -> 5-9, 10 per class", (0, 1, 2, 3, 4), (5, 6, 7, 8, 9), per_class=10
    ),
    # timm rows (with the timm extra): the same task on a timm ConvNeXt stand-in.
    "timm ConvNeXt, 0-4 -> 5-9": Setting(
        "timm ConvNeXt, 0-4 -> 5-9", (0, 1, 2, 3, 4), (5, 6, 7, 8, 9), arch="timm:test_convnext.r160_in1k"
    ),
    # Photographs-like JPEG folders at 224 px on the photograph stand-in (photo_data.py).
    "shapes, 224 px JPEG": Setting("shapes, 224 px JPEG", (), (), 224, data="shapes", counts=(40,) * 4),
    "textures, 224 px JPEG": Setting("textures, 224 px JPEG", (), (), 224, data="textures", counts=(30,) * 5),
    "textures, 16 per class": Setting(
        "textures, 16 per class", (), (), 224, data="textures", counts=(16,) * 5
    ),
    "shapes, imbalanced 60/30/15/8": Setting(
        "shapes, imbalanced 60/30/15/8", (), (), 224, data="shapes", counts=(60, 30, 15, 8)
    ),
    "digits 0-9, 224 px JPEG": Setting(
        "digits 0-9, 224 px JPEG", (), tuple(range(10)), 224, data="digits-jpeg", counts=(16,), held_out=True
    ),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="first setting only, no sweep")
    p.add_argument("--no-sweep", action="store_true", help="skip the learning-rate sweep")
    p.add_argument("--setting", action="append", choices=list(SETTINGS), help="run only these settings")
    p.add_argument("--strategy", action="append", choices=STRATEGIES, help="run only these strategies")
    p.add_argument(
        "--precision",
        action="store_true",
        help="instead of the recipe table: ftgui's defaults in fp32 and in bf16 over --seeds seeds",
    )
    p.add_argument(
        "--decide",
        action="store_true",
        help="instead of the recipe table: the BatchNorm candidates (keep, adapt, train) for head, "
        "last-1 and last-2 over --seeds seeds, and the defaults selection.py picks from them",
    )
    p.add_argument(
        "--head-form",
        action="store_true",
        help="ftgui's defaults with --head linear and --head concat (and fastai's head-only recipe with "
        "its own head and with a linear one, where fastai is installed)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per precision or --decide row (default 3)")
    p.add_argument("--first-seed", type=int, default=0, help="--head-form: the first seed (default 0)")
    p.add_argument(
        "--tie",
        type=float,
        default=0.5,
        metavar="POINTS",
        help="--head-form: worst shortfalls this close count as equal, the better mean decides (default 0.5)",
    )
    p.add_argument("--work", help="keep the generated folders and pretrained weights here (reused)")
    p.add_argument("--no-references", action="store_true", help="leave out fastai and Lightning")
    p.add_argument(
        "--before",
        action="store_true",
        help="add ftgui with the pretrained BatchNorm statistics kept (--bn-stats keep)",
    )
    add_keep_option(p)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    from ftgui.core.compute.precision import native_bf16

    # ftgui's "auto" precision without its timing trial, so that the table does not depend on
    # what else the machine runs (the accuracy is the same either way: --precision's table).
    os.environ.setdefault("FTGUI_PRECISION", "bf16" if native_bf16() else "fp32")
    print(f"ftgui's precision: {os.environ['FTGUI_PRECISION']}; the tutorial, fastai and Lightning: fp32")
    import importlib.util

    known = [
        n for n in SETTINGS if not SETTINGS[n].arch.startswith("timm:") or importlib.util.find_spec("timm")
    ]
    names = args.setting or (known[:1] if args.quick else known)
    strategies = tuple(args.strategy or STRATEGIES)
    rows: list[Row] = []
    if args.head_form:
        return head_form_table(names, strategies, args)
    if args.decide:
        import decide

        chosen = [SETTINGS[n] for n in (args.setting or SETTINGS) if SETTINGS[n].arch == "resnet18"]
        with work_folder("bench-accuracy", args.keep, args.work) as work:
            decide.decide(chosen, work, args.seeds)
        return 0
    if args.precision:
        from ftgui.core.compute.precision import native_bf16, processor_name

        print(
            f"processor: {processor_name()}; native bf16: {native_bf16() or 'none'}; torch {torch.__version__}"
        )
        found: list[PrecisionRow] = []
        with work_folder("bench-accuracy", args.keep, args.work) as work:
            for name in names:
                found += precision_rows(SETTINGS[name], work, strategies, args.seeds)
        print()
        ok = print_precision_table(found)
        print(
            "\ngoal: bf16 within 1 point of fp32 (or within fp32's seed range) in every row:",
            "met" if ok else "NOT met",
        )
        return 0
    with work_folder("bench-accuracy", args.keep, args.work) as work:
        for name in names:
            rows += run_setting(
                SETTINGS[name], work, not (args.quick or args.no_sweep), strategies, not args.no_references,
                args.before,
            )  # fmt: skip
    print()
    ok = print_table(rows)
    print(
        "\ngoal: defaults >= the tutorial (and fastai and Lightning, where run) in every row and within "
        "2 points of the sweep's best:",
        "met" if ok else "NOT met",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
