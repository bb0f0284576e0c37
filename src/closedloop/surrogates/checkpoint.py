"""The surrogate's checkpoint format: one dict saved with ``torch.save``, read with ``weights_only``.

A checkpoint holds ``spec`` (:meth:`SurrogateSpec.to_dict`, enough to rebuild the model),
``state_dict`` (CPU tensors, float64 for a float64 model) and free metadata (what it was trained
on, losses, round, config hash, creation time). The CLI, the campaign and bench/ all write and
read it through this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from closedloop.surrogates.model import HybridSurrogate, SurrogateSpec

REQUIRED = frozenset({"spec", "state_dict"})


class NotACheckpoint(ValueError):
    """A file that loads but holds no ``spec`` and ``state_dict``."""


def checkpoint_payload(model: HybridSurrogate, **metadata: Any) -> dict[str, Any]:
    """The checkpoint of ``model`` (its tensors moved to CPU, loadable anywhere) plus ``metadata``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"spec": model.spec.to_dict(), "state_dict": state, **metadata}


def write_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Save a checkpoint dict (tensors and plain data only, so it reads back with ``weights_only``).

    Not atomic by itself: callers write a temporary path and rename it (``closedloop.lab.atomic``).
    """
    torch.save(checkpoint, path)


def read_checkpoint(path: str | Path, require_model: bool = True) -> dict[str, Any]:
    """Load a checkpoint on the CPU, tensors and plain data only (anything else raises
    ``pickle.UnpicklingError``); with ``require_model``, :class:`NotACheckpoint` unless it holds
    ``spec`` and ``state_dict``."""
    checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    if require_model and (not isinstance(checkpoint, dict) or not REQUIRED <= set(checkpoint)):
        raise NotACheckpoint(f"{path}: not a closedloop checkpoint (no spec/state_dict)")
    return checkpoint


def load_model(checkpoint: dict[str, Any]) -> HybridSurrogate:
    """The model of a checkpoint dict, in float64 and eval mode."""
    spec = SurrogateSpec.from_dict(checkpoint["spec"])
    # float64 before loading, so the saved float64 weights are not rounded through float32
    model = HybridSurrogate(spec, checkpoint["state_dict"]["mask"].bool()).double()
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
