"""ftgui-predict: classify images with an exported bundle."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftgui import __version__
from ftgui.cli.common import Progress, bundle_missing, failure_exit
from ftgui.cli.options import positive_int
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.text import printable as display

if TYPE_CHECKING:
    from ftgui.core.bundle.predict import Prediction, Predictor


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ftgui-predict",
        description="Classify images, or whole folders (recursively), with a model exported by ftgui.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder with model.safetensors and model.json")
    p.add_argument("images", metavar="IMAGE_OR_FOLDER", nargs="+", help="image files and folders of images")
    p.add_argument("--topk", type=positive_int, default=5, help="how many classes to show (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument(
        "--csv",
        metavar="FILE",
        help="also write FILE: path, the top-k classes and probabilities, and the error of each image",
    )
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per batch (default 64)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="fp32 (default), or bf16 mixed precision: about twice as fast on processors with native "
        "bf16 (AVX-512 BF16, AMX) or a GPU; the top class can differ from fp32's on a few images "
        "whose top two are nearly tied",
    )
    p.add_argument(
        "--runtime",
        default="torch",
        metavar="RUNTIME",
        help="run the bundle's model.safetensors in PyTorch (torch, the default) or one of its exported "
        "formats in its own runtime: onnx, onnx-int8, openvino, openvino-int8, tflite, tflite-int8, "
        "torchscript (written by ftgui-export)",
    )
    p.add_argument(
        "--cam",
        metavar="PNG",
        help="one image: also write PNG, the picture with a heat map of where the evidence for the "
        "predicted class lies (Grad-CAM; needs the insight extra)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="let --csv and --cam replace an existing file that ftgui did not write (never one in a "
        "model folder or the model's dataset)",
    )
    p.add_argument("--version", action="version", version=f"ftgui {__version__}")
    return p


def predict_main(argv: Sequence[str] | None = None) -> int:
    args = predict_parser().parse_args(argv)
    missing = bundle_missing(args.model_dir)  # answered before PyTorch loads
    if missing:
        sys.stderr.write(f"ftgui-predict: error: {display(missing)}\n")
        return 2
    try:
        from ftgui.core.base.outputs import check_output_file, png_by_ftgui
        from ftgui.core.bundle.predict import Predictor
        from ftgui.core.insight.classify import PREDICTIONS_CSV, find_images, predictions_csv

        predictor = Predictor.load(args.model_dir, device=args.device)
        if args.precision != "fp32":
            if args.runtime != "torch":
                raise FtguiError(
                    "--precision bf16 applies to --runtime torch (the exported formats run as exported)."
                )
            predictor.use_precision(args.precision)
            if predictor.precision.slower:
                sys.stderr.write(f"ftgui-predict: warning: {predictor.precision.note}\n")
        paths = find_images(args.images)
        outputs = {"--csv": (args.csv, PREDICTIONS_CSV), "--cam": (args.cam, png_by_ftgui)}
        for option, (target, signature) in outputs.items():
            if target:
                refuse_input_as_output(option, target, paths, args.images)
                check_output_file(target, option, signature, args.overwrite, predictor.datasets())
        if args.runtime != "torch":
            use_runtime(predictor, args.runtime, args.cam)
        progress = Progress(sys.stderr)
        many = len(paths) > args.batch_size

        def show(done: int, total: int) -> None:
            if many:
                progress.line(f"classified {done} of {total} images")

        preds = list(predictor.predict_batches(paths, args.topk, args.batch_size, progress=show))
        if args.cam:
            _write_cam(predictor, paths, preds, args.cam)
        if args.csv:
            from ftgui.core.base.files import atomic_write

            text = predictions_csv(preds, min(args.topk, len(predictor.classes))).encode("utf-8")
            atomic_write(Path(args.csv).expanduser(), lambda fh: fh.write(text))
    except FtguiError as exc:
        sys.stderr.write(f"ftgui-predict: error: {display(str(exc))}\n")
        return 2
    except (KeyboardInterrupt, OSError, MemoryError) as exc:
        return failure_exit("ftgui-predict", exc)
    if args.json:
        from ftgui.core.bundle.format import dumps_json

        # Always valid JSON: names that are not UTF-8 escaped, no NaN.
        sys.stdout.write(dumps_json([p.to_dict() for p in preds]) + "\n")
    elif not args.csv or len(preds) <= 20:
        for p in preds:
            print(display(p.path))
            if p.error:
                print(f"  error: {display(p.error)}")
            width = max((len(display(c)) for c, _ in p.top), default=0)
            for cls, prob in p.top:
                print(f"  {display(cls):<{width}}  {100 * prob:5.1f}%")
    failed = sum(1 for p in preds if p.error)
    if args.csv:
        sys.stderr.write(
            f"wrote {display(args.csv)}: {len(preds) - failed} images classified"
            + (f", {failed} could not be read (listed with the reason)" if failed else "")
            + "\n"
        )
    return 1 if failed else 0


def use_runtime(predictor: Predictor, name: str, cam: str | None) -> None:
    """The predictor runs the exported file of ``name`` in its runtime instead of PyTorch."""
    import torch

    from ftgui.core.deploy.runtimes import check_exported, load_runtime, runtime_names

    if name not in runtime_names():
        why = " (the Core ML runtime runs only on macOS)" if name == "coreml" else ""
        raise FtguiError(f"--runtime {name}{why}: use one of {', '.join(runtime_names())}.")
    if cam:
        raise FtguiError("--cam needs the PyTorch model (its gradients); leave --runtime out.")
    assert predictor.folder is not None
    check_exported(name, predictor.folder, predictor.meta)
    runtime = load_runtime(name, predictor.folder)
    predictor.forward = lambda x: torch.from_numpy(runtime.run(x.contiguous().numpy()))


def refuse_input_as_output(option: str, target: str, paths: Sequence[str], given: Sequence[str]) -> None:
    """An output file is never one of the images (writing it would replace the user's photo),
    and a picture is never written into a folder being classified (it would join it)."""
    import os

    out = Path(target).expanduser()
    resolved = out.resolve()
    for path in paths:
        same = out.exists() and os.path.exists(path) and os.path.samefile(out, path)  # hard links too
        if same or Path(path).resolve() == resolved:
            raise FtguiError(
                f"{option} {target} is one of the images to classify; ftgui never writes over an input. "
                "Choose another file."
            )
    if option == "--cam":
        for folder in (Path(g).expanduser().resolve() for g in given if Path(g).is_dir()):
            if resolved.is_relative_to(folder):
                raise FtguiError(
                    f"--cam {target} is inside {folder}, a folder being classified: the picture would "
                    "join its images. Write it somewhere else."
                )


def _write_cam(predictor: Predictor, paths: list[str], preds: list[Prediction], target: str) -> None:
    from ftgui.core.base.files import atomic_write
    from ftgui.core.base.outputs import PNG_SOFTWARE
    from ftgui.core.insight.cam import image_heat_map

    if len(paths) != 1:
        raise FtguiError(f"--cam draws the heat map of one image; {len(paths)} were given.")
    if preds[0].error:
        raise FtguiError(f"--cam: {preds[0].error}")
    picture, heat = image_heat_map(predictor, paths[0])

    def save(fh: Any) -> None:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Software", f"{PNG_SOFTWARE} {__version__}")  # so a later --cam may replace it
        picture.save(fh, format="PNG", pnginfo=info)

    atomic_write(Path(target).expanduser(), save)
    sys.stderr.write(
        f"wrote {display(target)}: where the evidence for {display(predictor.classes[heat.targets[0]])} "
        f"lies ({heat.method} {heat.layer})\n"
    )
