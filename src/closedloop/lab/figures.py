"""Every figure of the lab (matplotlib, Agg, returned as PNG bytes): a campaign's learning curve, planes,
error map and plane series; steering's dose-response and before/after planes."""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def learning_curve(ledger: pd.DataFrame) -> bytes:
    """Validation error of each case (predicted before training on it) vs simulations so far."""
    done = ledger.cases.validated().copy()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    sims = 0
    for r, group in done.groupby("round", sort=True):
        sims_before = int((ledger["round"] < r).sum() + len(group))
        x = np.full(len(group), sims_before)
        ax.scatter(x, group["rel_l2"], s=14, alpha=0.6, color="tab:blue")
        ax.plot([sims_before], [group["rel_l2"].mean()], "o", color="tab:red")
        sims = sims_before
    means = done.groupby("round")["rel_l2"].mean()
    counts = ledger.groupby("round").size().cumsum()
    ax.plot(counts.loc[means.index], means.values, "-", color="tab:red", label="round mean")
    ax.set_yscale("log")
    ax.set_xlabel("reference simulations (cumulative)")
    ax.set_ylabel("validation rel. L2 (before training)")
    ax.set_title(f"learning curve ({sims} simulations)")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _png(fig)


def plane_comparison(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor, time_s: float,
                     title: str = "") -> bytes:
    """Reference, prediction and their difference on the plane at one time (x right, y up)."""
    p, r = pred.detach().cpu().numpy(), ref.detach().cpu().numpy()
    m = ~mask.cpu().numpy()
    vmax = max(float(np.abs(r).max()), float(np.abs(p).max()), 1e-30)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for ax, field, name, cmap, lim in ((axes[0], r, "reference", "viridis", (0, vmax)),
                                       (axes[1], p, "surrogate", "viridis", (0, vmax)),
                                       (axes[2], p - r, "surrogate − reference", "RdBu_r", (-vmax / 2, vmax / 2))):
        im = ax.imshow(np.ma.masked_array(field, m).T, origin="lower", cmap=cmap, vmin=lim[0], vmax=lim[1])
        ax.set_title(name)
        ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{title} t = {time_s:.0f} s")
    return _png(fig)


def plane_series_figure(times: torch.Tensor, plane: torch.Tensor, mask: torch.Tensor, count: int = 4,
                        title: str = "") -> bytes:
    """The plane field at ``count`` times spread over the series (shared colour scale)."""
    t_all = times.detach().cpu().numpy()
    idx = np.unique(np.linspace(1 if len(t_all) > 1 else 0, len(t_all) - 1, count).round().astype(int))
    data = plane.detach().cpu().numpy()
    vmax = max(float(data[idx].max()), 1e-30)
    m = ~mask.cpu().numpy()
    fig, axes = plt.subplots(1, len(idx), figsize=(3.6 * len(idx), 2.6), squeeze=False)
    for ax, i in zip(axes[0], idx):
        im = ax.imshow(np.ma.masked_array(data[i], m).T, origin="lower", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(f"t = {t_all[i]:.0f} s")
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8)
    fig.suptitle(title)
    return _png(fig)


def error_map(xs: torch.Tensor, ys: torch.Tensor, error: torch.Tensor, names: tuple[str, str],
              points: np.ndarray | None = None, title: str = "") -> bytes:
    """The error GP's predicted relative L2 on a 2D slice (log colour scale), cases as dots."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    z = np.ma.masked_invalid(error.numpy())
    im = ax.pcolormesh(xs.numpy(), ys.numpy(), np.log10(z), shading="auto", cmap="magma")
    fig.colorbar(im, ax=ax, label="log10 predicted rel. L2")
    if points is not None and len(points):
        ax.scatter(points[:, 0], points[:, 1], s=12, c="cyan", edgecolors="k", linewidths=0.4, label="cases")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(title or "error GP: predicted validation error")
    return _png(fig)


def dose_response_figure(dose: pd.DataFrame, reference: dict[str, float], title: str) -> bytes:
    """Distance to the target reference and three effect measures against α (dashed: the reference)."""
    fig, axes = plt.subplots(1, 4, figsize=(14, 3))
    for ax, key in zip(axes, ("distance", "centroid_x", "spread", "mass")):
        ax.plot(dose["alpha"], dose[key], "o-")
        if key in reference:
            ax.axhline(reference[key], ls="--", color="k", lw=1, label="target reference")
            ax.legend(loc="best", fontsize=7)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("α")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title, y=1.06)
    return _png(fig)


def before_after_figure(unsteered: torch.Tensor, steered: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor,
                        title: str) -> bytes:
    """Final-time plane: unsteered prediction, steered prediction, the target regime's reference."""
    m = ~mask.cpu().numpy()
    fields = [f.detach().cpu().numpy() for f in (unsteered, steered, reference)]
    vmax = max(max(float(np.abs(f).max()) for f in fields), 1e-30)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for ax, f, name in zip(axes, fields, ("unsteered", "steered", "target reference")):
        im = ax.imshow(np.ma.masked_array(f, m).T, origin="lower", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(name)
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    fig.suptitle(title, y=1.06)
    return _png(fig)
