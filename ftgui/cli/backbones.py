"""``ftgui-compare --backbones a,b,c``: the backbone bake-off on the command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ftgui.cli.common import Progress
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.text import printable as display

if TYPE_CHECKING:
    from ftgui.core.workflows.backbones import BackboneResult

COLUMNS = (
    "backbone", "linear probe", "95% range", "vs best, points", "images", "features", "ms/image", "params",
    "licence", "time",
)  # fmt: skip


VS_BEST_NOTE = (
    "vs best: the difference from the top backbone, fold by fold over the same folds, with its 95% "
    "interval (corrected resampled t-test); ≈: these images cannot tell the two apart"
)


def backbone_table(results: Sequence[BackboneResult]) -> str:
    from ftgui.core.base.intervals import span
    from ftgui.core.workflows.backbones import difference_text, versus_best

    differences = versus_best(results)
    rows = [COLUMNS]
    for r in results:
        if r.accuracy is None:
            rows.append((r.arch, "failed", "", "", "", "", "", "", "", f"{r.seconds:.1f}s"))
            continue
        ci = r.interval()
        rows.append(
            (
                r.name, f"{r.accuracy:.1%}", span(*ci) if ci else "-", difference_text(r.arch, differences),
                f"{r.images:,}", f"{r.feature_dim:,}", f"{r.latency_ms:.1f}", f"{(r.params or 0) / 1e6:.1f}M",
                r.licence or "-", f"{r.seconds:.1f}s",
            )
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def bake_off_main(args: argparse.Namespace, progress: Progress) -> int:
    from ftgui.cli.train import _config
    from ftgui.core.base.files import atomic_write
    from ftgui.core.bundle.format import dumps_json
    from ftgui.core.workflows.backbones import bake_off, pick

    names = [b.strip() for b in args.backbones.split(",") if b.strip()]
    if not names:
        raise FtguiError(
            "--backbones needs at least one model name, e.g. resnet18,timm:convnextv2_atto.fcmae_ft_in1k"
        )
    cfg = _config(args)
    cfg.validate()
    progress.line(
        f"ranking {len(names)} backbones by a cross-validated linear probe on their frozen features"
    )
    results = bake_off(cfg, names, folds=args.folds, note=lambda text: progress.line(display(text)))
    print(backbone_table(results))
    print(VS_BEST_NOTE)
    print(pick(results))
    if args.out:
        out = Path(args.out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        record = {"backbones": [r.to_dict() for r in results], "pick": pick(results)}
        atomic_write(out / "backbones.json", lambda fh: fh.write(dumps_json(record).encode("utf-8")))
        progress.line(f"wrote {out / 'backbones.json'}")
    return 0 if any(r.accuracy is not None for r in results) else 1
