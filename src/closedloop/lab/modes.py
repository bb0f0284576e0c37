"""``[campaign]``: how a campaign schedules its steps.

``mode = "sync"`` (the default) runs rounds: propose a batch, wait for all of it, validate, retrain.
Both are cadences of one loop (lab/campaign/scheduler.py, flows/campaign_loop.py).
``mode = "async"`` (lab/campaign/scheduler.py, flows/campaign_loop.py) keeps ``W`` simulations
running (``W`` = ``simulation.dask_workers`` with ``runner = "dask"``, else the flow's thread limit)
and ``queued`` more waiting, so that a worker that frees starts its next case at once while the
replacement is proposed; each finished case is validated on arrival, retraining runs beside the
simulations on its own worker. Neither field changes what a simulation or a training computes, so
neither is part of the config hash.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from closedloop.schema import Strict


class ModeConfig(Strict):
    """``[campaign] mode`` and, for ``async``, how many cases wait beyond the busy workers."""

    mode: Literal["sync", "async"] = Field(default="sync", description="sync rounds, or async: workers kept full")
    queued: int = Field(default=1, ge=0, le=64, description="async: cases waiting beyond the busy workers, so a "
                        "freed worker starts at once while the replacement is proposed")
