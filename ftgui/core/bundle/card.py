"""MODEL_CARD.md, rendered from the same metadata as model.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftgui.core.base.intervals import with_range
from ftgui.core.evaluation.metrics import Evaluation, headline
from ftgui.core.models.freeze import FreezePlan


def model_card(meta: dict[str, Any], evaluation: Evaluation | None = None) -> str:
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
        *(
            [f"- Precision: {cfg['precision_note']} (the weights are fp32)"]
            if cfg.get("precision_note")
            else []
        ),
        *(
            [
                f"- Data: {data['files']} files, {data['bytes'] / 2**20:,.1f} MB, SHA-256 `{data['sha256'][:16]}…` "
                f"(each file's in {data['file']}); deterministic algorithms "
                f"{'on' if meta['reproducibility'].get('deterministic') else 'off'}. "
                "`ftgui-train --reproduce <this folder>` trains it again and says whether it matches.",
            ]
            if (data := meta.get("data")) and meta.get("reproducibility")
            else []
        ),
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
        lines.append(f"  (in brackets: 95% intervals, what {evaluation.count} validation images allow)")
        for m in evaluation.per_class:
            pr = with_range(m.precision, m.precision_ci_low, m.precision_ci_high)
            rc = with_range(m.recall, m.recall_ci_low, m.recall_ci_high)
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
            if meta.get("model_kwargs", {}).get("head", "linear") == "linear"
            else "- `model.safetensors` + `model.json`: the concat head (`model_kwargs.head`): "
            "`ftgui.core.models.rebuild_for_inference(arch, K, model_kwargs)` builds the model "
            "(torchvision's, with `avgpool` pooling max and average side by side and the classifier a "
            "BatchNorm1d then a Linear), then `load_state_dict(strict=True)`"
        ),
    ]
    return with_deployment("\n".join(lines) + "\n", meta)


DEPLOYMENT = "## Deployment formats"


def with_deployment(card: str, meta: dict[str, Any]) -> str:
    """``card`` with its deployment section rendered again from model.json's ``exports``."""
    start = card.find(DEPLOYMENT)
    if start >= 0:
        rest = card.find("\n## ", start + len(DEPLOYMENT))
        card = card[:start] + (card[rest + 1 :] if rest >= 0 else "")
    card = card.rstrip("\n") + "\n"
    exports = meta.get("exports")
    if not isinstance(exports, dict) or not exports.get("formats"):
        return card
    return card + "\n" + DEPLOYMENT + "\n\n" + "\n".join(deployment_lines(exports)) + "\n"


def size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def _drop(points: float) -> str:
    return f"{points:g} point" + ("" if points == 1 else "s")


def _points(change: float | None) -> str:
    return "" if change is None else f" ({change:+.1f})"


def deployment_lines(exports: dict[str, Any]) -> list[str]:
    """The measured formats as a Markdown table (the trained model first), then a line for each
    format written but not checked, refused or failed."""
    ref = exports.get("reference") or {}
    acc = ref.get("accuracy")
    lines = [
        f"Each format run in its own runtime on {ref.get('images', 'the validation images')}, against the "
        "trained model in PyTorch (an INT8 format may lose at most "
        f"{_drop(ref.get('max_accuracy_drop', 1.0))} of accuracy).",
        "",
        "| file | runtime | top-1 agreement | largest logit difference | accuracy (change, points) "
        "| ms per image (batch 1) | size |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| `model.safetensors` | {ref.get('runtime', 'PyTorch')} | 100.0% | 0 | "
        + ("n/a" if acc is None else f"{100 * acc:.1f}%")
        + f" | {ref.get('latency_ms') or 0:.2f} | |",
    ]
    notes = []
    for fmt, c in (exports.get("formats") or {}).items():
        name = c.get("path") or fmt
        if c.get("error"):
            notes.append(f"- `{name}`: not kept ({c['error']})")
            continue
        if c.get("note"):
            notes.append(
                f"- `{name}`: written with {c.get('converter', '?')}, {size_text(c.get('size_bytes', 0))}; {c['note']}"
            )
            continue
        change = (
            None
            if c.get("accuracy") is None or c.get("reference_accuracy") is None
            else (100 * (c["accuracy"] - c["reference_accuracy"]))
        )
        accuracy = "n/a" if c.get("accuracy") is None else f"{100 * c['accuracy']:.1f}%{_points(change)}"
        diff = c.get("max_difference")
        int8 = f", {c['int8_tensors']} INT8 tensors" if c.get("int8_tensors") else ""
        lines.append(
            f"| `{name}` | {c.get('runtime', '')}{int8} | {100 * (c.get('agreement') or 0):.1f}% | "
            f"{'n/a' if diff is None else f'{diff:.1e}'} | {accuracy} | {c.get('latency_ms') or 0:.2f} | "
            f"{size_text(c.get('size_bytes', 0))} |"
        )
    return lines + ([""] + notes if notes else [])
