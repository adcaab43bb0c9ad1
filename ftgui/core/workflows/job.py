"""A training job for another machine: the window's whole configuration and split, to run there.

A job folder holds ``job.json`` (the training configuration, the freeze plan with the tree's
edits, the classes, and the split's file lists relative to the dataset folder), ``run.sh`` (one
machine: torchrun with a process per GPU, or per core without GPUs) and ``slurm.sbatch`` (a
SLURM cluster: torchrun on every node). ``ftgui-train --config job.json --data DATA --out OUT``
runs it; the result opens in the window with *File → Open exported model…*.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftgui import __version__
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.files import DestinationError
from ftgui.core.base.outputs import contains, first_line, json_with_keys
from ftgui.core.base.staging import staged_folder, write_synced
from ftgui.core.base.text import class_names_problem
from ftgui.core.data.samples import Sample, ScanResult, Split, split_record_problem
from ftgui.core.training.config import TrainConfig

JOB_FORMAT = "ftgui-job"
JOB_VERSION = 1
JOB_FILE, RUN_FILE, SLURM_FILE = "job.json", "run.sh", "slurm.sbatch"
_TIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")  # SLURM's [D-]HH:MM:SS


@dataclass(frozen=True)
class ClusterSettings:
    """What the SLURM script asks for."""

    nodes: int = 1
    gpus_per_node: int = 1  # 0: CPU nodes, a process per core of the task
    cpus_per_node: int = 8
    time: str = "04:00:00"
    partition: str = ""

    def check(self) -> None:
        if not 1 <= self.nodes <= 4096:
            raise FtguiError(f"Nodes must be from 1 to 4096 (got {self.nodes}).")
        if not 0 <= self.gpus_per_node <= 64:
            raise FtguiError(f"GPUs per node must be from 0 to 64 (got {self.gpus_per_node}).")
        if not 1 <= self.cpus_per_node <= 4096:
            raise FtguiError(f"CPUs per node must be from 1 to 4096 (got {self.cpus_per_node}).")
        if not _TIME.match(self.time):
            raise FtguiError(f"The time limit must read HH:MM:SS or D-HH:MM:SS (got {self.time!r}).")
        if self.partition and not re.fullmatch(r"[A-Za-z0-9_.,-]+", self.partition):
            raise FtguiError(f"The partition name {self.partition!r} has characters SLURM does not allow.")


@dataclass
class Job:
    config: TrainConfig
    classes: list[str]
    split: Split
    dataset: str  # where the window's dataset was (for people reading the job; DATA replaces it)


def job_record(config: TrainConfig, classes: list[str], split: Split) -> dict[str, Any]:
    training = config.to_dict()
    training.pop("lr_note", None)  # the run says why it uses its rate (and its precision)
    training.pop("precision_note", None)
    return {
        "format": JOB_FORMAT,
        "version": JOB_VERSION,
        "ftgui_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": config.data_dir,
        "training": training,
        "classes": list(classes),
        "split": split.to_dict(),
    }


def write_job(
    folder: str | os.PathLike[str],
    config: TrainConfig,
    classes: list[str],
    split: Split,
    cluster: ClusterSettings | None = None,
) -> list[Path]:
    """Write job.json, run.sh and slurm.sbatch into ``folder``; other files there stay."""
    from ftgui.core.bundle.format import dumps_json

    cluster = cluster or ClusterSettings()
    cluster.check()
    config.validate()
    out = Path(folder).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    record = job_record(config, classes, split)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(config.data_dir).name or "dataset").strip("-") or "dataset"
    summary = f"{config.arch}, {config.strategy}, {config.epochs} epochs, batch {config.batch_size}"
    files = {
        JOB_FILE: dumps_json(record) + "\n",
        RUN_FILE: run_script(summary, config.data_dir),
        SLURM_FILE: slurm_script(summary, config.data_dir, name, cluster),
    }
    refuse_foreign_files(out, config.data_dir)
    # The three files are swapped in together (a kill leaves the previous job or this one).
    with staged_folder(out, list(files)) as stage:
        for file, text in files.items():
            write_synced(stage / file, text.encode("utf-8"))
            if file != JOB_FILE:
                mode = (stage / file).stat().st_mode
                (stage / file).chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return [out / file for file in files]


_SIGNATURES = {
    JOB_FILE: json_with_keys("format", "training", "classes", "split"),
    RUN_FILE: first_line("#!/usr/bin/env bash\n# ftgui training job ("),
    SLURM_FILE: contains("\n# ftgui training job ("),
}


def refuse_foreign_files(out: Path, dataset: str) -> None:
    """A job replaces only a job's own files: never a job.json, run.sh or slurm.sbatch of the
    user's, and it is never written into one of the dataset's class folders."""
    root = Path(dataset).expanduser().resolve()
    real = out.resolve()
    if real.is_relative_to(root) and real != root:
        raise DestinationError(
            f"{out} is inside the dataset {root}; a job there would become part of its images' folders. "
            "Choose a folder outside the dataset."
        )
    for name, signed in _SIGNATURES.items():
        path = out / name
        if os.path.lexists(path) and (path.is_symlink() or not path.is_file() or not signed(path)):
            raise DestinationError(
                f"{out} already holds {name}, which ftgui did not write; ftgui never replaces such a "
                "file. Choose another folder, or move that file away first."
            )


_USAGE = "DATA_DIR OUT_DIR"


def run_script(summary: str, dataset: str) -> str:
    return f"""#!/usr/bin/env bash
# ftgui training job ({summary}).
# Run it on the machine that trains, where ftgui is installed:  bash run.sh {_USAGE}
#   DATA_DIR: the dataset, with the same files as {_shell_comment(dataset)}
#   OUT_DIR:  gets model.safetensors, model.json and checkpoint.pt; running again with the same
#             OUT_DIR resumes from its checkpoint.
# One process per GPU (nvidia-smi), or per CPU core without GPUs; NPROC=N overrides.
set -euo pipefail
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
data="${{1:?usage: bash run.sh {_USAGE}}}"
out="${{2:?usage: bash run.sh {_USAGE}}}"
shift 2
train="${{FTGUI_TRAIN:-$(command -v ftgui-train || true)}}"
if [ -z "$train" ]; then
  echo "run.sh: ftgui-train is not on PATH; activate the environment where ftgui is installed." >&2
  exit 2
fi
# torchrun starts ftgui-train as a program (--no-python): a Python script or the installed
# bundle's executable alike; the bundle brings its own torchrun, ftgui-torchrun, beside it.
launcher="$(dirname "$(readlink -f "$train")")/ftgui-torchrun"
[ -x "$launcher" ] || launcher="$(command -v torchrun || true)"
if [ -z "$launcher" ]; then
  echo "run.sh: torchrun is not on PATH; activate the environment where ftgui is installed." >&2
  exit 2
fi
if [ -z "${{NPROC:-}}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    NPROC="$(nvidia-smi -L | grep -c '^GPU')"
  else
    NPROC="$(nproc)"
  fi
fi
exec "$launcher" --standalone --nproc-per-node="$NPROC" --max-restarts="${{MAX_RESTARTS:-1}}" \\
  --no-python "$train" --config "$here/{JOB_FILE}" --data "$data" --out "$out" "$@"
"""


def slurm_script(summary: str, dataset: str, name: str, c: ClusterSettings) -> str:
    gpu_lines = f"#SBATCH --gpus-per-node={c.gpus_per_node}\n" if c.gpus_per_node else ""
    partition = f"#SBATCH --partition={c.partition}\n" if c.partition else ""
    nproc = str(c.gpus_per_node) if c.gpus_per_node else '"$SLURM_CPUS_PER_TASK"'
    return f"""#!/usr/bin/env bash
#SBATCH --job-name=ftgui-{name}
#SBATCH --nodes={c.nodes}
#SBATCH --ntasks-per-node=1
{gpu_lines}#SBATCH --cpus-per-task={c.cpus_per_node}
#SBATCH --time={c.time}
#SBATCH --output=ftgui-%j.out
{partition}# ftgui training job ({summary}).
# Submit from the folder holding job.json:  sbatch slurm.sbatch {_USAGE}
#   DATA_DIR: the dataset, with the same files as {_shell_comment(dataset)}
#   OUT_DIR:  model.safetensors, model.json and checkpoint.pt. Both must be on a file system
#             every node sees; a restarted or requeued job resumes from OUT_DIR/checkpoint.pt.
# torchrun starts one process per GPU on every node ({c.nodes} node(s)); they meet at the first
# node (port MASTER_PORT, default 29500). FTGUI_DIST_TIMEOUT (s) bounds every collective.
set -euo pipefail
data="${{1:?usage: sbatch slurm.sbatch {_USAGE}}}"
out="${{2:?usage: sbatch slurm.sbatch {_USAGE}}}"
shift 2
job="${{SLURM_SUBMIT_DIR:-$(pwd)}}/{JOB_FILE}"
head_node="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
train="$(command -v ftgui-train)"
launcher="$(dirname "$(readlink -f "$train")")/ftgui-torchrun"  # the installed bundle's torchrun
[ -x "$launcher" ] || launcher="$(command -v torchrun)"
srun --kill-on-bad-exit=1 "$launcher" \\
  --nnodes="$SLURM_NNODES" --nproc-per-node={nproc} --max-restarts=1 \\
  --rdzv-id="$SLURM_JOB_ID" --rdzv-backend=c10d --rdzv-endpoint="$head_node:${{MASTER_PORT:-29500}}" \\
  --no-python "$train" --config "$job" --data "$data" --out "$out" "$@"
"""


def _shell_comment(text: str) -> str:
    return text.replace("\n", " ")


def read_job(path: str | os.PathLike[str]) -> Job:
    """A job.json, checked field by field: a damaged or foreign file gets a message."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / JOB_FILE
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FtguiError(f"--config: {p} does not exist.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FtguiError(f"--config: {p} is not a job file written by ftgui ({exc}).") from None
    except RecursionError:  # JSON nested thousands deep: no job ftgui writes
        raise FtguiError(f"--config: {p} is not a job file written by ftgui (nested too deep).") from None

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise FtguiError(f"--config: {p.name} is damaged or not an ftgui job: {what}.")

    need(isinstance(record, dict) and record.get("format") == JOB_FORMAT, f"'format' must be {JOB_FORMAT!r}")
    version = record.get("version")
    need(version == JOB_VERSION and not isinstance(version, bool), f"'version' must be {JOB_VERSION}")
    training = record.get("training")
    need(isinstance(training, dict), "'training' must be an object")
    try:
        config = TrainConfig.from_dict(training)
        config.validate()
    except (FtguiError, TypeError, ValueError) as exc:
        need(False, f"its training settings are invalid: {exc}")
    classes = record.get("classes")
    need(
        isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes),
        "'classes' must list 2 or more class names",
    )
    need(class_names_problem(classes) is None, str(class_names_problem(classes)))
    split = record.get("split")
    problem = split_record_problem(split, len(classes), inside_only=True)
    need(problem is None, str(problem))
    dataset = record.get("dataset")
    return Job(config, list(classes), Split.from_dict(split), dataset if isinstance(dataset, str) else "")


def job_dataset(job: Job, data_dir: str | os.PathLike[str]) -> ScanResult:
    """The job's files under ``data_dir`` (no re-scan, no re-split): refuses a folder that lacks them."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FtguiError(f"--data: {root} is not a folder.")
    samples = job.split.train + job.split.val
    missing = [s.path for s in samples if not (root / s.path).is_file()]
    if missing:
        listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise FtguiError(
            f"--data: {root} lacks {len(missing)} of the job's {len(samples)} images ({listed}). "
            "Give the folder with the same files as the dataset the job was made from."
        )
    return ScanResult(str(root), list(job.classes), [Sample(s.path, s.label) for s in samples])
