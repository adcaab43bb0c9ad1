"""Exports with deployment formats: at the end of training (the whole bundle) or into any
existing bundle (``ftgui-export``), each format measured in its own runtime and swapped in
with the bundle's model.json and MODEL_CARD.md."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftgui.core.base.errors import CheckpointError
from ftgui.core.base.files import OutputLock
from ftgui.core.base.options import MAX_ACCURACY_DROP, QUANTIZED_FORMATS, format_files
from ftgui.core.base.staging import staged_folder, write_synced
from ftgui.core.base.text import display_path
from ftgui.core.bundle.card import model_card, with_deployment
from ftgui.core.bundle.export import write_bundle_files
from ftgui.core.bundle.format import BUNDLE_FILES, CARD_FILE, META_FILE, dumps_json, read_metadata
from ftgui.core.bundle.trained import TrainedModel
from ftgui.core.deploy.measure import ExportCheck, Reference, files_size, judge, measure, reference, sign
from ftgui.core.deploy.registry import missing_format_packages, runtime_available, unknown_formats
from ftgui.core.deploy.runtimes import load_runtime
from ftgui.core.deploy.source import DeploySource
from ftgui.core.deploy.writers import WRITERS, file_of

if TYPE_CHECKING:
    from ftgui.core.evaluation.metrics import Evaluation

Progress = Callable[[str], None]
Stop = Callable[[], bool]
# Called with (format, None) as a format begins and (format, its check) when it is done.
Watch = Callable[[str, "ExportCheck | None"], None]


class ExportStopped(CheckpointError):
    """The user stopped an export (Ctrl+C, SIGTERM) between two formats; nothing was swapped in."""


def chosen_formats(formats: Iterable[str]) -> list[str]:
    """The extra formats of ``formats`` in the registry's order, after checking they exist and
    their packages are installed."""
    formats = [f for f in formats if f != "safetensors"]
    problem = unknown_formats(formats) or missing_format_packages(formats)
    if problem:
        raise CheckpointError(problem)
    return [f for f in WRITERS if f in formats]


def write_formats(
    source: DeploySource,
    stage: Path,
    formats: list[str],
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    progress: Progress | None = None,
    stop: Stop | None = None,
    watch: Watch | None = None,
) -> tuple[list[ExportCheck], dict[str, Any]]:
    """Each format written into ``stage``, run in its runtime on the validation images and
    judged; a format that fails or is refused costs only its own files. Returns the checks and
    the reference (the trained model in PyTorch on the same images). When ``stop()`` turns
    true, the formats not begun are left out (a converter is never interrupted half-way)."""
    say = progress or (lambda _text: None)
    example = source.example()
    say("Reading the validation images")
    images, labels, which = source.measured_images()
    ref = reference(source.model, images, labels, 0)
    calibration = source.calibration_images() if set(formats) & set(QUANTIZED_FORMATS) else example
    checks = []
    for fmt in formats:
        if stop is not None and stop():
            say(f"Stopped: {', '.join(formats[formats.index(fmt) :])} not exported")
            break
        say(f"Exporting {fmt}")
        if watch is not None:
            watch(fmt, None)
        checks.append(_one_format(fmt, source, stage, example, calibration, images, ref, max_accuracy_drop))
        if watch is not None:
            watch(fmt, checks[-1])
    record = {
        "images": which,
        "accuracy": ref.accuracy,
        "latency_ms": ref.latency_ms,
        "runtime": _torch_runtime(),
        "max_accuracy_drop": max_accuracy_drop,
    }
    return checks, record


def _torch_runtime() -> str:
    import torch

    return f"PyTorch {torch.__version__} fp32, {torch.get_num_threads()} threads"


def _one_format(
    fmt: str,
    source: DeploySource,
    stage: Path,
    example: Any,
    calibration: Any,
    images: Any,
    ref: Reference,
    max_accuracy_drop: float,
) -> ExportCheck:
    check = ExportCheck(fmt, str(file_of(fmt, stage)))
    # The converters' own log records (onnxruntime's "Axis 1 is out-of-range" once per layer,
    # coremltools' untested-version notices) are theirs, not the user's: ftgui says what
    # matters in the check. Errors still pass.
    logging.disable(logging.WARNING)
    try:
        check.converter = WRITERS[fmt](source.model, example, calibration, stage)
        check.size_bytes = files_size(stage, fmt)
        why = runtime_available(fmt)
        if why:
            check.note = f"not checked: {why}"
        else:
            runtime = load_runtime(fmt, stage)
            check.runtime = runtime.name
            if fmt in QUANTIZED_FORMATS:
                check.int8_tensors = runtime.int8_tensors
            measure(check, runtime.run, images, ref)
        judge(check, max_accuracy_drop)
    except MemoryError:
        raise
    except Exception as exc:
        text = str(exc).strip()
        check.error = f"{fmt} export failed: {text.splitlines()[0] if text else type(exc).__name__}"
    finally:
        logging.disable(logging.NOTSET)
    if check.error:
        for name in format_files(fmt):
            (stage / name).unlink(missing_ok=True)
    else:
        sign(check, stage, source.preprocess.crop_size, len(source.classes))
    return check


def _record(meta: dict[str, Any], checks: list[ExportCheck], ref: dict[str, Any]) -> dict[str, Any]:
    """model.json's ``exports``: the formats measured now, and those of an earlier export whose
    files stay."""
    earlier = meta.get("exports") if isinstance(meta.get("exports"), dict) else {}
    formats = dict(earlier.get("formats") or {}) if isinstance(earlier, dict) else {}
    for c in checks:
        formats[c.format] = c.to_dict()
    return {"reference": ref, "formats": formats}


def export_all(
    trained: TrainedModel,
    out_dir: str | os.PathLike[str],
    formats: tuple[str, ...] = ("safetensors",),
    evaluation: Evaluation | None = None,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    progress: Progress | None = None,
    stop: Stop | None = None,
    watch: Watch | None = None,
    discard_on_stop: bool = False,
) -> list[ExportCheck]:
    """The bundle, the chosen formats (each measured) and MODEL_CARD.md, swapped in together;
    formats not begun when ``stop()`` turns true are left out, the bundle is written anyway
    (``discard_on_stop``: nothing is written, the folder stays as it was: the window's Cancel)."""
    extra = chosen_formats(formats)
    out = Path(out_dir).expanduser()
    evaluation = evaluation if evaluation is not None else trained.evaluation
    checks: list[ExportCheck] = []
    with staged_folder(out, BUNDLE_FILES) as stage:
        meta = write_bundle_files(trained, stage, evaluation)
        if extra:
            checks, ref = write_formats(
                DeploySource.from_trained(trained), stage, extra, max_accuracy_drop, progress, stop, watch
            )
            meta["exports"] = _record({}, checks, ref)
            write_synced(stage / META_FILE, dumps_json(meta).encode("utf-8"))
        if discard_on_stop and stop is not None and stop():
            raise ExportStopped(f"cancelled; {out} is as it was")  # the stage is removed
        text = model_card(meta, evaluation)
        write_synced(stage / CARD_FILE, display_path(text).encode("utf-8"))
    return _moved(checks, out)


def _moved(checks: list[ExportCheck], out: Path) -> list[ExportCheck]:
    """Report where the files are now, not where they were checked."""
    return [dataclasses.replace(c, path=str(out / Path(c.path).name)) for c in checks]


def export_into_bundle(
    bundle_dir: str | os.PathLike[str],
    formats: Iterable[str],
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    data: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    stop: Stop | None = None,
) -> tuple[list[ExportCheck], dict[str, Any]]:
    """Deployment formats for an existing bundle, written into it with the same atomic swap:
    the chosen formats' files, model.json (its ``exports``) and MODEL_CARD.md are replaced,
    everything else stays. Returns the checks and the reference figures."""
    extra = chosen_formats(formats)
    if not extra:
        raise CheckpointError("Choose at least one format to export (--format).")
    folder = Path(bundle_dir).expanduser()
    lock = OutputLock(folder).acquire("ftgui-export")
    try:
        source, predictor = DeploySource.from_bundle(folder, data)
        meta = read_metadata(folder)
        replaced = [META_FILE, CARD_FILE, *(name for fmt in extra for name in format_files(fmt))]
        with staged_folder(folder, replaced) as stage:
            checks, ref = write_formats(source, stage, extra, max_accuracy_drop, progress, stop)
            if stop is not None and stop():
                raise ExportStopped(f"stopped; {folder} is unchanged")  # the stage is removed
            meta["exports"] = _record(meta, checks, ref)
            still_there = {
                k: v
                for k, v in meta["exports"]["formats"].items()
                if k in extra or (folder / format_files(k)[0]).is_file()
            }
            meta["exports"]["formats"] = still_there
            write_synced(stage / META_FILE, dumps_json(meta).encode("utf-8"))
            card = folder / CARD_FILE
            text = card.read_text(encoding="utf-8", errors="replace") if card.is_file() else model_card(meta)
            write_synced(stage / CARD_FILE, with_deployment(text, meta).encode("utf-8"))
        del predictor
    finally:
        lock.release()
    return _moved(checks, folder), meta["exports"]["reference"]
