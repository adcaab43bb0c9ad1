"""Writing a trained model's bundle (model.safetensors + model.json + split and evaluation),
swapped in whole; ftgui.core.deploy.export adds the deployment formats and MODEL_CARD.md."""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ftgui.core.base.errors import CheckpointError
from ftgui.core.base.files import (
    DestinationError,
    bundle_bytes_needed,
    check_destination,
    normal_file_mode,
)
from ftgui.core.base.staging import staged_folder, write_synced
from ftgui.core.bundle.format import (
    BUNDLE_FILES,
    BUNDLE_FORMAT,
    EVALUATION_FILE,
    META_FILE,
    SPLIT_FILE,
    WEIGHTS_FILE,
    dumps_json,
    non_finite,
)
from ftgui.core.bundle.metadata import bundle_metadata, evaluation_summary, split_record
from ftgui.core.bundle.trained import TrainedModel

if TYPE_CHECKING:
    from ftgui.core.evaluation.metrics import Evaluation


def _weights_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors to save (contiguous, on the CPU, none sharing memory); refuses weights that are
    not finite numbers."""
    state: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        if t.untyped_storage().data_ptr() in storages:
            t = t.clone()  # safetensors refuses tensors that share memory
        storages.add(t.untyped_storage().data_ptr())
        state[k] = t
    bad = non_finite(state)
    if bad:
        raise CheckpointError(
            f"The model's weights are not finite numbers (NaN or infinity in {bad[0]}"
            + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
            + "); nothing was exported. Train again with a lower learning rate."
        )
    return state


def write_weights(model: torch.nn.Module, arch: str, path: Path) -> str:
    """model.safetensors at ``path``, synced; returns its SHA-256.

    The header is rewritten with sorted keys: safetensors writes ``__metadata__`` from a hash map
    whose order changes from process to process, so two identical trainings gave different bytes
    (and SHA-256). The tensors' offsets do not depend on it, and the length stays the same."""
    import json
    import struct

    from safetensors.torch import save_file

    save_file(_weights_state(model), str(path), metadata={"format": BUNDLE_FORMAT, "arch": arch})
    os.chmod(path, normal_file_mode())  # safetensors creates it 0600: unreadable to the user's group
    digest = hashlib.sha256()
    with open(path, "r+b") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) <= length:  # always, for the same content
            fh.seek(8)
            fh.write(text.ljust(length, b" "))
        fh.flush()
        os.fsync(fh.fileno())
        fh.seek(0)
        while chunk := fh.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle_files(
    trained: TrainedModel, folder: Path, evaluation: Evaluation | None = None
) -> dict[str, Any]:
    """model.safetensors and model.json (with the weights' SHA-256) into ``folder``."""
    import gzip

    meta = bundle_metadata(trained)
    evaluation = evaluation if evaluation is not None else trained.evaluation
    if evaluation is not None:
        meta["evaluation"] = evaluation_summary(evaluation)
        write_synced(folder / EVALUATION_FILE, dumps_json(evaluation.to_dict(), indent=None).encode("utf-8"))
    meta["weights_sha256"] = write_weights(trained.model, meta["arch"], folder / WEIGHTS_FILE)
    split = dumps_json(split_record(trained), indent=None).encode("utf-8")
    write_synced(folder / SPLIT_FILE, gzip.compress(split, compresslevel=6, mtime=0))
    write_synced(folder / META_FILE, dumps_json(meta).encode("utf-8"))
    return meta


def check_output_folder(
    out: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None,
    total_params: int = 0,
    trainable_params: int = 0,
    checkpoint: bool = False,
    what: str = "--out",
) -> Path:
    """Refuse an output folder before any work: a file, a file among its parents, read-only,
    inside a class folder of the dataset, or too little free space for the model (+ checkpoint)."""
    from ftgui.core.data.scan import output_inside_class_folder

    # The class folders first: the writability check leaves a probe file's trace (the folder's
    # modification time) where it looks, and a class folder is the user's, not ours to touch.
    inside = output_inside_class_folder(data_dir, out) if data_dir else None
    if inside:
        raise DestinationError(
            f"{what} {Path(out).expanduser().absolute()} is inside the class folder '{inside}' of the "
            "dataset: its files would be taken for images of that class. Choose a folder outside the dataset."
        )
    path = check_destination(out, what)
    foreign = foreign_bundle_files(path)
    if foreign:
        raise DestinationError(
            f"{what} {path} already holds {', '.join(foreign[:3])}, which ftgui did not write (there is no "
            "ftgui model.json beside them); an export would replace them. Choose another folder."
        )
    if total_params:
        check_destination(out, what, bundle_bytes_needed(total_params, trainable_params, checkpoint))
    return path


def foreign_bundle_files(out: Path) -> list[str]:
    """Files in ``out`` named like a bundle's (model.safetensors, model.onnx, ...) when ``out``
    holds no ftgui model description: someone else's files that an export would replace."""
    import json

    from safetensors import safe_open

    present = [name for name in BUNDLE_FILES if (out / name).is_file() or (out / name).is_symlink()]
    stages = [*out.parent.glob(f".{glob.escape(out.name)}.ftgui-stage-*"), *out.glob(".*.ftgui-stage-*")]
    if not present or stages:
        return []  # nothing of the kind, or an export of ftgui's that a kill left to be finished
    try:
        meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
        if isinstance(meta, dict) and meta.get("format") == BUNDLE_FORMAT:
            return []  # an earlier export of ftgui's: replaced whole, as the user asked
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        pass
    try:  # model.json damaged or missing: ftgui's weights carry the format in their header
        with safe_open(str(out / WEIGHTS_FILE), "np") as weights:
            if (weights.metadata() or {}).get("format") == BUNDLE_FORMAT:
                return []
    except Exception:  # safetensors' own error for a file that is not one: not ftgui's
        pass
    return present


def export_bundle(
    trained: TrainedModel, out_dir: str | os.PathLike[str], evaluation: Evaluation | None = None
) -> Path:
    """Write model.safetensors and model.json to ``out_dir``, swapped in together.

    Any file of an earlier export (MODEL_CARD.md, model.onnx, ...) goes with it; other files
    in ``out_dir`` (a checkpoint, the user's own) stay.
    """
    out = Path(out_dir).expanduser()
    with staged_folder(out, BUNDLE_FILES) as stage:
        write_bundle_files(trained, stage, evaluation)
    return out
