"""A kill at every file-system call of a writer: the harness behind test_kill_points.py.

``python killpoints.py SCENARIO WORK`` prepares a folder as a user would have it (a previous
bundle beside the user's own files and folders), then, for k = 0, 1, 2, ..., forks a child
that runs the writer and dies with ``os._exit`` (what SIGKILL leaves: no ``finally``, no
``atexit``, no buffers flushed) right after its k-th file-system call. After each kill the
parent checks what a user would find, runs the writer again to the end (the next run), and
checks again. It stops at the first k the writer survives and prints one JSON summary line.

Counted calls: opening a file for writing, os.open with O_CREAT, write, rename, replace, link,
symlink, unlink, rmdir, mkdir, chmod, fsync, the atomic folder exchange and safetensors' file
write (native code: counted as one call).
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

KILLED = 77  # the child's exit status at its kill point

_COUNTED_OS = (
    "rename",
    "replace",
    "link",
    "symlink",
    "unlink",
    "remove",
    "rmdir",
    "mkdir",
    "chmod",
    "fsync",
    "write",
)


class _Counter:
    def __init__(self, kill_after: int) -> None:
        self.kill_after, self.calls = kill_after, 0

    def tick(self) -> None:
        self.calls += 1
        if self.calls >= self.kill_after:
            os._exit(KILLED)


_ACTIVE: list[_Counter] = []  # the child's counter, for writers that need more calls counted


def _install(counter: _Counter) -> None:
    """Wrap every counted call so that the counter ticks after it returns."""
    _ACTIVE.append(counter)

    def counted(fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            result = fn(*args, **kwargs)
            counter.tick()
            return result

        return wrapper

    for name in _COUNTED_OS:
        setattr(os, name, counted(getattr(os, name)))
    real_os_open, real_open = os.open, builtins.open

    def os_open(path, flags, *args, **kwargs):
        fd = real_os_open(path, flags, *args, **kwargs)
        if flags & os.O_CREAT:
            counter.tick()
        return fd

    def open_(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        if any(c in mode for c in "wax+"):
            counter.tick()
        return fh

    os.open, builtins.open = os_open, open_
    import safetensors.torch

    from ftgui.core.base import staging

    staging._exchange = counted(staging._exchange)
    safetensors.torch.save_file = counted(safetensors.torch.save_file)


# ---------------------------------------------------------------- what a user would find


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under ``folder``, by relative path."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = None if p.is_dir() else p.read_bytes()
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(*folders: Path) -> list[str]:
    return sorted(
        str(p)
        for f in folders
        if f.exists()
        for p in f.rglob("*")
        if ".partial" in p.name or p.name.endswith((".lock", ".tmp"))
    )


def _bundle_state(out: Path, shas: dict[str, str]) -> str:
    """'old' or 'new' when ``out`` holds a bundle that loads; else why not."""
    from ftgui.core.bundle.predict import Predictor

    try:
        Predictor.load(out)
        sha = json.loads((out / "model.json").read_text())["weights_sha256"]
    except Exception as exc:  # noqa: BLE001 - the harness reports any failure
        return f"does not load: {type(exc).__name__}: {exc}".splitlines()[0]
    return next((name for name, s in shas.items() if s == sha), "another bundle")


# ---------------------------------------------------------------- scenarios


def _tiny_trainer(data: Path, seed: int):
    import torch

    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer

    torch.manual_seed(seed)
    config = TrainConfig(
        data_dir=str(data), arch="squeezenet1_1", weights="none", freeze=FreezePlan.parse("full"), epochs=1,
        image_size=32, val_fraction=0.25, seed=seed, device="cpu",
    )  # fmt: skip
    trainer = Trainer(config)
    trainer.prepare()
    return trainer


def _user_files(out: Path) -> None:
    (out / "notes" / "deep").mkdir(parents=True)
    (out / "notes" / "todo.txt").write_text("retrain with more owls\n")
    (out / "notes" / "deep" / "plot.bin").write_bytes(os.urandom(3000))
    (out / "my-readme.md").write_text("# my model\n")


def bundle_scenario(work: Path, variant: str):
    """Export over a previous bundle with the user's files in OUT (``variant``: exchange, the
    atomic folder swap; files, the file-by-file fallback; inside, the stage inside OUT as on
    another file system than its parent; fresh, OUT does not exist yet)."""
    from ftgui.core.base import staging
    from ftgui.core.bundle.export import export_bundle
    from ftgui.core.data.example import make_example_dataset

    data = make_example_dataset(work / "data", per_class=6, size=32, seed=1)
    old, new = _tiny_trainer(data, 1).trained(), _tiny_trainer(data, 2).trained()
    template = work / "template" / "out"
    shas = {}
    if variant != "fresh":
        export_bundle(old, template)
        shas["old"] = _sha(template / "model.safetensors")
        _user_files(template)
    probe = work / "probe" / "out"
    export_bundle(new, probe)
    shas["new"] = _sha(probe / "model.safetensors")
    user = (
        {k: v for k, v in _tree(template).items() if k.split("/")[0] in ("notes", "my-readme.md")}
        if variant != "fresh"
        else {}
    )

    def prepare(case: Path) -> Path:
        if template.exists():
            shutil.copytree(template, case / "out", symlinks=True)
        else:
            case.mkdir(parents=True)
        return case / "out"

    def write(out: Path) -> None:
        if variant == "files":
            staging._exchange = lambda a, b: False
        if variant == "inside":
            staging._inside = lambda out: True
        export_bundle(new, out)

    def check(out: Path, after_next_run: bool) -> list[str]:
        problems = []
        state = (
            _bundle_state(out, shas) if (out / "model.json").exists() or variant != "fresh" else "none yet"
        )
        allowed = (
            ("new",) if after_next_run else ("old", "new") if variant != "fresh" else ("new", "none yet")
        )
        if state not in allowed:
            problems.append(f"bundle: {state}")
        stages = (
            [p for p in out.parent.iterdir() if p != out]
            + [p for p in out.iterdir() if p.name.startswith(".")]
            if out.exists()
            else []
        )
        for rel, content in user.items():
            places = [out / rel] if after_next_run else [out / rel, *(s / rel for s in stages if s.is_dir())]
            found = [p for p in places if p.exists() and (content is None or p.read_bytes() == content)]
            if not found:
                problems.append(f"user's {rel}: lost or changed")
        if after_next_run and _leftovers(out.parent):
            problems.append(f"left behind: {', '.join(_leftovers(out.parent))}")
        return problems

    return prepare, write, write, check


def checkpoint_scenario(work: Path):
    """A checkpoint written over the previous one (atomic_torch_save, as every epoch does)."""
    from ftgui.core.data.example import make_example_dataset
    from ftgui.core.training.checkpoint import load_checkpoint

    data = make_example_dataset(work / "data", per_class=6, size=32, seed=1)
    old, new = _tiny_trainer(data, 1), _tiny_trainer(data, 2)
    probe = work / "probe"
    probe.mkdir()
    shas = {
        "old": _sha(old.save_checkpoint(probe / "old.pt")),
        "new": _sha(new.save_checkpoint(probe / "new.pt")),
    }

    def prepare(case: Path) -> Path:
        case.mkdir(parents=True)
        shutil.copy(probe / "old.pt", case / "checkpoint.pt")
        (case / "mine.txt").write_text("the user's\n")
        return case

    def write(case: Path) -> None:
        new.save_checkpoint(case / "checkpoint.pt")

    def check(case: Path, after_next_run: bool) -> list[str]:
        problems = []
        try:
            load_checkpoint(case / "checkpoint.pt")
            state = next((n for n, v in shas.items() if v == _sha(case / "checkpoint.pt")), "another file")
        except Exception as exc:  # noqa: BLE001
            state = f"does not load: {exc}".splitlines()[0]
        if state not in (("new",) if after_next_run else ("old", "new")):
            problems.append(f"checkpoint: {state}")
        if (case / "mine.txt").read_text() != "the user's\n":
            problems.append("the user's file changed")
        if after_next_run and _leftovers(case):
            problems.append(f"left behind: {', '.join(_leftovers(case))}")
        return problems

    return prepare, write, write, check


def fixes_scenario(work: Path, action: str):
    """Data fixes (``action``: move, three images to another class folder; exclude; undo, of a
    move) killed at each call; the next run undoes every change still in effect, which must
    give back the user's folder exactly as it was."""
    from ftgui.core.data.example import make_example_dataset
    from ftgui.core.data.fixes import Fixes

    template = work / "template"
    make_example_dataset(template / "data", per_class=4, size=32, seed=1)
    root = template / "data"
    files = sorted(str(p.relative_to(root)) for p in (root / "circle").iterdir())[:3]
    original = _tree(root)
    if action == "undo":
        Fixes(template / "journal").move(root, files, "square")

    def prepare(case: Path) -> Path:
        shutil.copytree(template, case)
        return case

    def fixes(case: Path) -> Fixes:
        # The journal records absolute paths: a case is a copy, so its records are rewritten.
        journal = case / "journal"
        for f in journal.glob("*") if journal.exists() else []:
            f.write_text(f.read_text().replace(str(template), str(case)))
        return Fixes(journal)

    def write(case: Path) -> None:
        f = fixes(case)
        if action == "move":
            f.move(case / "data", files, "square")
        elif action == "exclude":
            f.exclude(case / "data", files)
        else:
            f.undo()

    def undo_all(case: Path) -> None:
        f = fixes(case)
        while f.undo() is not None:
            pass

    def check(case: Path, after_next_run: bool) -> list[str]:
        tree = _tree(case / "data")
        # One file under two names (the hard link of a no-overwrite move, before its unlink)
        # is one file: counted once here, and settled by the next run (checked below).
        inodes = {(p.stat().st_ino): p.read_bytes() for p in (case / "data").rglob("*") if p.is_file()}
        contents = sorted(inodes.values())
        if contents != sorted(v for v in original.values() if v is not None):
            return ["an image was lost, duplicated or changed"]
        try:
            Fixes(case / "journal").history()
        except Exception as exc:  # noqa: BLE001
            return [f"the journal does not read: {exc}".splitlines()[0]]
        if after_next_run and tree != original:
            return ["undoing every change did not give the folder back as it was"]
        if after_next_run and Fixes(case / "journal").excluded(case / "data"):
            return ["files are still excluded after undoing every change"]
        return []

    return prepare, write, undo_all, check


def row_store_scenario(work: Path, fresh: bool = False):
    """A disk row store (the frozen-layer cache, the pixel cache) records more rows over a
    finished earlier pass: its rows written in place, then its record of which rows are valid."""
    import numpy as np
    import torch

    from ftgui.core.data.stores import RowStore

    template = work / "template"
    template.mkdir()
    rows = torch.arange(8 * 3, dtype=torch.float32).reshape(8, 3)
    if not fresh:  # else the first pass makes the file
        first = RowStore(8, (3,), "disk", template / "f.npy")
        first.put([0, 1, 2], rows[:3])
        first.finish()
        first.close()

    def prepare(case: Path) -> Path:
        shutil.copytree(template, case)
        return case

    def write(case: Path) -> None:
        store = RowStore.reopen(case / "f.npy", 8, (3,)) or RowStore(8, (3,), "disk", case / "f.npy")
        missing = [i for i in range(8) if not store.valid[i]]
        if missing:
            store.put(missing, rows[missing])
        store.finish()

    def check(case: Path, after_next_run: bool) -> list[str]:
        store = RowStore.reopen(case / "f.npy", 8, (3,))
        valid = [] if store is None else np.flatnonzero(store.valid).tolist()
        if store is not None and valid and not torch.equal(store.get(valid), rows[valid]):
            return ["rows marked valid hold other values"]
        if after_next_run and valid != list(range(8)):
            return [f"after the next run rows {valid} are valid, not all 8"]
        if after_next_run and _leftovers(case):
            return [f"left behind: {', '.join(_leftovers(case))}"]
        return []  # before the next run: no store (rebuilt) or the old or new rows, all true

    return prepare, write, write, check


def job_scenario(work: Path):
    """A training job (job.json, run.sh, slurm.sbatch) written over a previous one, beside the
    user's own file: the three files are the old job's or the new one's, never a mix."""
    from ftgui.core.data.example import make_example_dataset
    from ftgui.core.data.samples import split_samples
    from ftgui.core.workflows.job import write_job

    data = make_example_dataset(work / "data", per_class=6, size=32, seed=1)
    old, new = _tiny_trainer(data, 1), _tiny_trainer(data, 2)
    new.config.epochs = 7  # another job: other bytes in all three files

    def job(trainer, out: Path) -> None:
        write_job(out, trainer.config, trainer.scan.classes, split_samples(trainer.scan, 0.25, 0))

    jobs = {}
    for name, trainer in (("old", old), ("new", new)):
        job(trainer, work / "probe" / name)
        jobs[name] = _tree(work / "probe" / name)

    def prepare(case: Path) -> Path:
        shutil.copytree(work / "probe" / "old", case / "job")
        (case / "job" / "mine.txt").write_text("the user's\n")
        return case / "job"

    def write(out: Path) -> None:
        job(new, out)

    def check(out: Path, after_next_run: bool) -> list[str]:
        problems = []
        files = {k: v for k, v in _tree(out).items() if k in jobs["new"]}
        # job.json holds its creation time: compare the scripts exactly, the record by its settings
        state = next(
            (
                name
                for name, tree in jobs.items()
                if files.keys() == tree.keys()
                and all(files[k] == tree[k] for k in tree if k != "job.json")
                and json.loads(files["job.json"])["training"] == json.loads(tree["job.json"])["training"]
            ),
            f"a mix or a damaged job: {sorted(files)}",
        )
        if state not in (("new",) if after_next_run else ("old", "new")):
            problems.append(f"job: {state}")
        if (out / "mine.txt").read_text() != "the user's\n":
            problems.append("the user's file changed")
        if after_next_run and _leftovers(out.parent):
            problems.append(f"left behind: {', '.join(_leftovers(out.parent))}")
        return problems

    return prepare, write, write, check


def run_record_scenario(work: Path):
    """A run's record written into the runs folder beside earlier records: the earlier ones stay
    readable, the new one is there whole or not at all, and a killed writer's temporary file is
    removed by the next record written (each record has a name of its own)."""
    from ftgui.core.data.example import make_example_dataset
    from ftgui.core.workflows.runs import list_runs, record_run

    data = make_example_dataset(work / "data", per_class=6, size=32, seed=1)
    trainer = _tiny_trainer(data, 1)
    for _ in trainer.run():
        pass
    template = work / "template" / "runs"
    earlier = record_run(trainer, "ftgui-train", folder=template)

    def prepare(case: Path) -> Path:
        shutil.copytree(template, case / "runs")
        return case / "runs"

    def write(out: Path) -> None:
        record_run(trainer, "ftgui-train", folder=out)

    def check(out: Path, after_next_run: bool) -> list[str]:
        problems = []
        ids = [r.id for r in list_runs(folder=out)]
        if earlier.id not in ids:
            problems.append("the earlier record is lost or unreadable")
        records = sorted(p.name for p in out.glob("*.json"))
        if len(records) != len(ids):
            problems.append(f"a record that does not read: {records} against {ids}")
        if after_next_run and len(ids) < 2:
            problems.append("the next run's record is missing")
        if after_next_run and _leftovers(out):
            problems.append(f"left behind: {', '.join(_leftovers(out))}")
        return problems

    return prepare, write, write, check


def export_format_scenario(work: Path):
    """ftgui-export of a deployment format (TorchScript) into a bundle beside the user's files:
    the bundle loads before and after, and its model.json's record of the format matches the
    file there (never a file without its record, or a record of another file)."""
    from ftgui.core.bundle.export import export_bundle
    from ftgui.core.data.example import make_example_dataset
    from ftgui.core.deploy.export import export_into_bundle
    from ftgui.core.deploy.runtimes import check_exported

    data = make_example_dataset(work / "data", per_class=6, size=32, seed=1)
    template = work / "template" / "out"
    export_bundle(_tiny_trainer(data, 1).trained(), template)
    _user_files(template)
    user = {k: v for k, v in _tree(template).items() if k.split("/")[0] in ("notes", "my-readme.md")}

    def prepare(case: Path) -> Path:
        shutil.copytree(template, case / "out")
        return case / "out"

    def write(out: Path) -> None:
        export_into_bundle(out, ["torchscript"], data=data)

    def check(out: Path, after_next_run: bool) -> list[str]:
        from ftgui.core.bundle.format import read_metadata

        problems = []
        try:
            meta = read_metadata(out)
        except Exception as exc:  # noqa: BLE001
            return [f"model.json does not read: {exc}".splitlines()[0]]
        exported = (out / "model.torchscript.pt").exists()
        if exported or after_next_run:
            try:
                check_exported("torchscript", out, meta)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"torchscript: {exc}".splitlines()[0])
        elif "torchscript" in (meta.get("exports") or {}).get("formats", {}):
            problems.append("model.json records a TorchScript file that is not there")
        for rel, content in user.items():
            if not (out / rel).exists() or (content is not None and (out / rel).read_bytes() != content):
                if after_next_run or not any((s / rel).exists() for s in out.parent.iterdir() if s != out):
                    problems.append(f"user's {rel}: lost or changed")
        if after_next_run and _leftovers(out.parent):
            problems.append(f"left behind: {', '.join(_leftovers(out.parent))}")
        return problems

    return prepare, write, write, check


def header_cache_scenario(work: Path):
    """The header cache of a folder written over the previous one (after new images were
    checked): whatever the kill left, a scan with the cache gives the same files and verdicts as
    a scan without any cache (a damaged cache is rebuilt, never trusted)."""
    from ftgui.core.data.example import make_example_dataset
    from ftgui.core.data.headers import HeaderCache
    from ftgui.core.data.scan import scan_folder

    template = make_example_dataset(work / "data", per_class=6, size=32, seed=1)
    (template / "circle" / "broken.jpg").write_bytes(b"not a picture")

    def summary(data: Path, cache: bool) -> tuple:
        result = scan_folder(data, cache=cache)
        return sorted(s.path for s in result.samples), sorted(result.skipped)

    def prepare(case: Path) -> Path:
        shutil.copytree(template, case / "data")
        os.environ["XDG_CACHE_HOME"] = str(case / "cache")  # this case's cache folder
        scan_folder(case / "data")  # the previous cache
        (case / "data" / "square" / "extra.png").write_bytes(b"also not a picture")
        shutil.copy(template / "circle" / "circle_0000.jpg", case / "data" / "stripes" / "new.jpg")
        return case

    def write(case: Path) -> None:
        os.environ["XDG_CACHE_HOME"] = str(case / "cache")
        scan_folder(case / "data")  # checks the two new files, saves the cache

    def check(case: Path, after_next_run: bool) -> list[str]:
        os.environ["XDG_CACHE_HOME"] = str(case / "cache")
        problems = []
        truth = summary(case / "data", cache=False)
        if summary(case / "data", cache=True) != truth:
            problems.append("a scan with the cache differs from one without")
        if after_next_run and not HeaderCache(str(case / "data")).path.exists():
            problems.append("no header cache after the next run")
        if after_next_run and _leftovers(case):
            problems.append(f"left behind: {', '.join(_leftovers(case))}")
        return problems

    return prepare, write, write, check


def tensorboard_scenario(work: Path):
    """A run's TensorBoard log written beside an earlier run's: the earlier log stays byte for
    byte, every event file reads (a killed writer's last record may be cut, as TensorBoard
    allows), and the next run's log is complete."""
    from ftgui.core.base import events as ev
    from ftgui.core.data.example import make_example_dataset
    from ftgui.core.workflows.tensorboard import TensorBoardLog

    data = make_example_dataset(work / "data", per_class=6, size=32, seed=1)
    config = _tiny_trainer(data, 1).config
    run = [
        *(ev.BatchEnded(1, b, 4, b, 1.0 / b, 1e-3, 10.0, 1.0) for b in range(1, 5)),
        ev.EpochEnded(1, 1, 0.9, 0.5, 0.8, 0.6, (0.5, 0.7), 1e-3, 1.0, True),
        ev.Finished(1, 1, 0.8, 0.6, False),
    ]

    def log(folder: Path) -> None:
        board = TensorBoardLog(folder, config)
        for e in run:
            board(e)
        board.close()

    template = work / "template" / "board"
    log(template / "earlier")
    earlier = _tree(template / "earlier")

    def records(path: Path) -> int:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

        return sum(1 for _ in EventFileLoader(str(path)).Load())

    def prepare(case: Path) -> Path:
        shutil.copytree(template, case / "board")
        return case / "board"

    def write(board: Path) -> None:
        import io

        if _ACTIVE:  # TensorBoard's writer opens its event file with io.open and appends records
            real = io.open

            def counted_open(file, mode="r", *args, **kwargs):
                fh = real(file, mode, *args, **kwargs)
                if any(c in mode for c in "wax+"):
                    _ACTIVE[0].tick()
                return fh

            io.open = counted_open
        log(board / "new")

    def check(board: Path, after_next_run: bool) -> list[str]:
        problems = []
        if _tree(board / "earlier") != earlier:
            problems.append("the earlier run's log changed")
        files = sorted((board / "new").rglob("events.out.tfevents.*")) if (board / "new").exists() else []
        try:
            counts = [records(f) for f in files]
        except Exception as exc:  # noqa: BLE001
            return [*problems, f"an event file does not read: {exc}".splitlines()[0]]
        if after_next_run and not any(c >= len(run) for c in counts):
            problems.append(f"the next run's log is incomplete: {counts} records")
        return problems

    return prepare, write, write, check


SCENARIOS = {
    "tensorboard": tensorboard_scenario,
    "header-cache": header_cache_scenario,
    "job-files": job_scenario,
    "run-record": run_record_scenario,
    "export-format": export_format_scenario,
    "row-store": row_store_scenario,
    "row-store-new": lambda work: row_store_scenario(work, fresh=True),
    "checkpoint": checkpoint_scenario,
    "fixes-move": lambda work: fixes_scenario(work, "move"),
    "fixes-exclude": lambda work: fixes_scenario(work, "exclude"),
    "fixes-undo": lambda work: fixes_scenario(work, "undo"),
    "bundle-exchange": lambda work: bundle_scenario(work, "exchange"),
    "bundle-files": lambda work: bundle_scenario(work, "files"),
    "bundle-inside": lambda work: bundle_scenario(work, "inside"),
    "bundle-fresh": lambda work: bundle_scenario(work, "fresh"),
}


# ---------------------------------------------------------------- the loop


def _in_child(fn: Callable[[], None], kill_after: int | None) -> int:
    """Run ``fn`` in a forked child (killed after that many calls); its exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            if kill_after is not None:
                _install(_Counter(kill_after))
            fn()
        except BaseException:  # noqa: BLE001 - reported through the exit status
            traceback.print_exc()
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def run(scenario: str, work: Path, limit: int = 400) -> dict:
    import torch

    torch.set_num_threads(1)  # no thread pool in the parent: the children are forked from it
    prepare, write, recover, check = SCENARIOS[scenario](work)
    failures: list[str] = []
    kills = 0
    for k in range(1, limit + 1):
        case = work / f"k{k:03d}"
        out = prepare(case)
        status = _in_child(functools.partial(write, out), k)
        if status == 0:
            break  # the writer made fewer than k calls: every point has been tried
        if status != KILLED:
            failures.append(f"kill point {k}: the writer failed (exit {status})")
            break
        kills += 1
        failures += [f"kill point {k}, before the next run: {p}" for p in check(out, False)]
        status = _in_child(functools.partial(recover, out), None)
        if status != 0:
            failures.append(f"kill point {k}: the next run failed (exit {status})")
        failures += [f"kill point {k}, after the next run: {p}" for p in check(out, True)]
        shutil.rmtree(case)
    return {"scenario": scenario, "kill_points": kills, "failures": failures}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], Path(sys.argv[2]))))
