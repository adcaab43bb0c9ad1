"""MODEL_CARD.md, rendered from the same metadata as model.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftgui.core.bundle.formats import FormatCheck
from ftgui.core.evaluation.metrics import Evaluation, headline
from ftgui.core.models.freeze import FreezePlan


def model_card(
    meta: dict[str, Any], checks: list[FormatCheck] | None = None, evaluation: Evaluation | None = None
) -> str:
    """A short Markdown description of the exported model, from the model.json it goes with
    (``meta``, so the two never disagree, not even on the creation time)."""
    cfg = meta["training"]
    counts = meta["class_counts"]
    lines = [
        f"# {meta['arch']} fine-tuned on {Path(meta['split']['root']).name}",
        "",
        f"Exported by ftgui {meta['ftgui_version']} on {meta['created']} "
        f"(torch {meta['torch_version']}, torchvision {meta['torchvision_version']}).",
        "",
        "## Model",
        f"- Architecture: `{meta['arch']}` ({meta.get('model_source', 'torchvision')}), {meta['num_classes']} classes",
        f"- Weights it started from: {meta['weights_source']}",
        *(
            [f"- Licence of the pretrained weights: {meta.get('weights_licence') or 'not recorded by timm'}"]
            if meta.get("model_source") == "timm" and str(meta["weights_source"]).startswith("timm ")
            else []
        ),
        f"- Which layers trained: {FreezePlan.from_dict(cfg['freeze']).describe()}; "
        f"{len(meta['trainable_parameter_names'])} parameter tensors trained",
        "",
        "## Classes",
        "| index | class | train images | validation images |",
        "|---:|---|---:|---:|",
    ]
    for i, name in enumerate(meta["classes"]):
        tr = counts["train"][i] if i < len(counts["train"]) else 0
        va = counts["val"][i] if i < len(counts["val"]) else 0
        lines.append(f"| {i} | {name} | {tr} | {va} |")
    lines += [
        "",
        "## Training",
        f"- Epochs: {meta['epochs_completed']} of {cfg['epochs']} (best epoch {meta['best_epoch']})",
        f"- Optimizer: {cfg['optimizer']}, learning rate {cfg['lr']:g}, schedule {cfg['schedule']}, "
        f"batch size {cfg['batch_size']}, weight decay {cfg['weight_decay']:g}",
        f"- Augmentation: {'random resized crops and flips' if cfg['augment'] else 'none'}; seed {cfg['seed']}",
        "",
        "## Results",
    ]
    history = meta["history"]
    best = (
        history[meta["best_epoch"] - 1]
        if meta["best_epoch"] and history
        else (history[-1] if history else None)
    )
    if evaluation is not None:
        line = headline(evaluation)
        lines.append(f"- {line[:1].upper()}{line[1:]}")
        for m in evaluation.per_class:
            pr = "n/a" if m.precision is None else f"{100 * m.precision:.1f}%"
            rc = "n/a" if m.recall is None else f"{100 * m.recall:.1f}%"
            lines.append(f"  - {m.name}: precision {pr}, recall {rc}")
    elif best and best.get("val_accuracy") is not None:
        lines.append(f"- Validation accuracy {100 * best['val_accuracy']:.1f}%, loss {best['val_loss']:.4f}")
    else:
        lines.append("- No validation results.")
    lines += [
        "",
        "## Preprocessing",
        f"RGB image, resize the shorter side to {meta['resize_size']} px ({meta['interpolation']}), "
        f"centre crop {meta['input_size']}×{meta['input_size']}, scale to [0, 1], normalise with mean "
        f"{meta['mean']} and std {meta['std']}.",
        "",
        "## Files",
        (
            "- `model.safetensors` + `model.json`: load with `timm.create_model(NAME, pretrained=False, "
            "num_classes=K, **model_kwargs)` (NAME: `arch` without `timm:`) and `load_state_dict(strict=True)`"
            if meta.get("model_source") == "timm"
            else "- `model.safetensors` + `model.json`: load with `torchvision.models.get_model(arch, "
            "num_classes=K, **model_kwargs)` and `load_state_dict(strict=True)`"
        ),
    ]
    for c in checks or []:
        if c.error:
            lines.append(f"- `{Path(c.path).name}`: not written ({c.format} export failed: {c.error})")
            continue
        diff = (
            "not checked"
            if c.max_difference != c.max_difference
            else f"max difference {c.max_difference:.1e}"
        )
        lines.append(f"- `{Path(c.path).name}`: checked with {c.runtime} at batch sizes 1 and 3, {diff}")
    return "\n".join(lines) + "\n"
