"""Training on several processes: torchrun's environment, PyTorch's process group, and the few
collectives the engine needs (sums for metrics and cached features, an agreed stop, small
objects from every rank).

ftgui never launches processes itself: ``torchrun`` (or ``python -m torch.distributed.run``)
starts one ``ftgui-train`` per device and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; the
engine then wraps the trainable part of the model in ``DistributedDataParallel``. Outside
torchrun a :class:`World` of one process is used and every collective here is a no-op.

Every rank runs the same control flow, so each collective is reached by all ranks in the same
order; each has the process group's timeout (``FTGUI_DIST_TIMEOUT`` seconds, default 300),
so a rank that stops answering ends the job with a message instead of a silent hang.
"""

from __future__ import annotations

import datetime
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import torch

from ftgui.core.base.errors import FtguiError, TrainingError
from ftgui.core.base.events import CancelToken

TIMEOUT_ENV = "FTGUI_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
# Fault injection for trying a cluster set-up: "RANK:EPOCH" makes that rank fail in that epoch;
# ":hang" makes it stop answering, ":kill" kills it (SIGKILL), so failure handling can be seen.
FAULT_ENV = "FTGUI_FAULT"


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher with its variables) started this process."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def collective_timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise FtguiError(f"{TIMEOUT_ENV} must be a number of seconds (got {text!r}).") from None
    if not value > 0:
        raise FtguiError(f"{TIMEOUT_ENV} must be above 0 seconds (got {text!r}).")
    return value


@dataclass(frozen=True)
class World:
    """The processes of one training job; a single process unless ``backend`` is set."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    node: int = 0  # torchrun's GROUP_RANK: which machine of the job
    backend: str | None = None  # "nccl" | "gloo" once the process group is up

    @property
    def active(self) -> bool:
        return self.backend is not None

    @property
    def main(self) -> bool:
        """Rank 0: the only process that writes files and prints the report."""
        return self.rank == 0

    def device(self, choice: str) -> torch.device:
        """This rank's device: cuda:LOCAL_RANK under NCCL, the CPU under gloo, else ``choice``."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        if self.backend == "gloo":
            return torch.device("cpu")
        from ftgui.core.compute.device import select_device

        return select_device(choice)

    def describe(self) -> str:
        return f"rank {self.rank} of {self.size}"

    def shard(self, indices: list[int]) -> list[int]:
        """This rank's part of a batch: every ``size``-th position from ``rank``.

        Sharding each global batch (rather than the epoch) keeps the batches of one process:
        when the batch size divides by the world size this is DistributedSampler's
        ``indices[rank::size]`` cut into per-process batches, without its padding copies.
        """
        return indices[self.rank :: self.size] if self.active else indices

    # ------------------------------------------------------------ collectives (no-ops alone)

    def _device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over all ranks (a new tensor on ``values``' device)."""
        if not self.active:
            return values.clone()
        import torch.distributed as dist

        t = values.detach().to(self._device(), copy=True)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.to(values.device)

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one of them."""
        if not self.active:
            return flag
        return bool(self.sum(torch.tensor([1.0 if flag else 0.0])).item() > 0)

    def largest(self, value: int) -> int:
        if not self.active:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable plain values), in rank order, on every rank."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            self.any(False)  # an all-reduce: unlike barrier(), it honours the group's timeout on gloo

    def fault(self, epoch: int, batch: int, batches: int) -> None:
        """The fault ``FTGUI_FAULT`` asks for, at the epoch's second batch (its first when it has
        only one): mid-epoch, on torchrun's first attempt only, so a restarted job can finish."""
        spec = os.environ.get(FAULT_ENV, "")
        if not spec or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
            return
        parts = spec.split(":")
        try:
            rank, at = int(parts[0]), int(parts[1])
            mode = parts[2] if len(parts) > 2 else "fail"
        except (ValueError, IndexError):
            mode = "?"
        if mode not in ("fail", "hang", "kill"):
            raise FtguiError(f"{FAULT_ENV} must be RANK:EPOCH or RANK:EPOCH:hang|kill (got {spec!r}).")
        if rank != self.rank or at != epoch or batch != min(2, batches):
            return
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "hang":
            # A rank that stops answering: the others' collectives time out. (A rank stuck in a
            # collective runs no Python signal handler; torchrun kills it 30 s after SIGTERM.
            # This one goes at SIGTERM, to keep the test short.)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            while True:
                time.sleep(3600)
        raise TrainingError(f"Failure injected by {FAULT_ENV}={spec} on {self.describe()} in epoch {epoch}.")


SINGLE = World()


def start_world(device_choice: str = "auto") -> World:
    """Join torchrun's process group: NCCL with one GPU per local rank where CUDA is used,
    gloo on the CPU. Outside torchrun: a single-process World, nothing started."""
    if not launched_by_torchrun():
        return SINGLE
    import torch.distributed as dist

    env = os.environ
    rank, size = int(env["RANK"]), int(env["WORLD_SIZE"])
    local_rank = int(env["LOCAL_RANK"])
    local_size = int(env.get("LOCAL_WORLD_SIZE", size))
    choice = (device_choice or "auto").lower()
    cuda = torch.cuda.is_available() and (choice == "auto" or choice.startswith("cuda"))
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise FtguiError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto.")
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise FtguiError(
                f"torchrun started {local_size} processes on this machine but it has "
                f"{torch.cuda.device_count()} GPU(s): use --nproc-per-node={torch.cuda.device_count()}."
            )
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=collective_timeout())
        kwargs: dict[str, Any] = {}
        if cuda:
            kwargs["device_id"] = torch.device("cuda", local_rank)
        store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=size, timeout=timeout))
        # torchrun keeps one store across its restarts: a prefix per attempt keeps a restarted
        # group from reading the addresses the failed one left there (gloo would connect to
        # ports nobody listens on any more, and wait).
        attempt = env.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = dist.PrefixStore(f"ftgui/attempt-{attempt}", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=timeout, **kwargs)
    return World(rank, size, local_rank, local_size, int(env.get("GROUP_RANK", 0)), backend)


def stop_world(world: World) -> None:
    """Leave the process group after a run every rank finished: once all are done (rank 0 may
    still be writing), and after the DDP wrappers are gone (a wrapper outliving its group
    aborts the process at exit). A failing rank does not call this: it exits at once."""
    if not world.active:
        return
    import gc

    import torch.distributed as dist

    gc.collect()  # the trainer and its DDP wrapper refer to each other
    if dist.is_initialized():
        world.barrier()
        dist.destroy_process_group()


def is_collective_failure(exc: BaseException) -> bool:
    """A collective that failed because another rank died or stopped answering."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return any(
        m in text
        for m in (
            "connection closed by peer",
            "connection reset",
            "timed out",
            "timeout",
            "broken pipe",
            "nccl",
        )
    )


def collective_message(exc: BaseException, world: World) -> str:
    first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return (
        f"Another process of this job stopped or stopped answering ({world.describe()} saw: {first}). "
        f"Its own message, printed by that rank, says why; collectives wait at most "
        f"{collective_timeout():g} s ({TIMEOUT_ENV})."
    )


class AgreedStop(CancelToken):
    """A cancel token all ranks agree on: reading ``cancelled`` is a collective under torchrun,
    true everywhere once one rank was asked to stop (Ctrl+C, SIGTERM), and it stays true.

    Every rank reads it at the same points of the same control flow, so all stop at the same
    batch and no rank is left waiting in a collective of a loop the others have left."""

    def __init__(self, token: CancelToken, world: World) -> None:
        super().__init__()
        self.token = token
        self.world = world
        self._agreed = False

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        if not self.world.active:
            return self.token.cancelled
        if not self._agreed:
            self._agreed = self.world.any(self.token.cancelled)
            if self._agreed:
                self.token.cancel()
        return self._agreed
