"""One training job per GPU: a Prefect global concurrency limit per device, held while a model trains.

Contract: training on GPU ``k`` runs inside ``concurrency("closedloop-train-gpu-k", occupy=1)``; the limit
is created with 1 slot the first time it is needed (an operator may change it later in the UI's
Concurrency page or with ``prefect gcl update``; it is never overwritten). The limit lives on the Prefect
server, so it holds across flow runs, processes and workers that share the server. Training on the CPU
takes no slot, and simulations never do: they stay on CPU workers (threads or Dask).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

LIMIT_PREFIX = "closedloop-train-gpu"
SLOTS_PER_GPU = 1


def training_gpu() -> int | None:
    """Index of the GPU a training job on this process would use; None when there is none."""
    return torch.cuda.current_device() if torch.cuda.is_available() else None


def training_limit_name(gpu: int) -> str:
    if gpu < 0:
        raise ValueError(f"gpu: a device index is >= 0, got {gpu}")
    return f"{LIMIT_PREFIX}-{gpu}"


def ensure_training_limit(name: str, slots: int = SLOTS_PER_GPU) -> None:
    """Create the global concurrency limit ``name`` with ``slots`` slots unless it exists already."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        with contextlib.suppress(ObjectAlreadyExists):  # another process created it meanwhile
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))


@contextlib.contextmanager
def gpu_training_slot(gpu: int | None, timeout_seconds: float | None = None) -> Iterator[str | None]:
    """Hold GPU ``gpu``'s training slot for the block (waiting for it if another job holds it).

    Yields the limit's name, or None (and holds nothing) when ``gpu`` is None.
    """
    if gpu is None:
        yield None
        return
    name = training_limit_name(gpu)
    ensure_training_limit(name)
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True):
        yield name
