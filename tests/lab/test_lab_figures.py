"""The lab's figures: each one a PNG, drawn from the data it is given."""
from __future__ import annotations

import base64

import pandas as pd
import pytest
import torch

from closedloop.lab import figures

PNG = b"\x89PNG\r\n\x1a\n"


def test_data_url_carries_the_png():
    url = figures.data_url(PNG + b"rest")
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.removeprefix("data:image/png;base64,")) == PNG + b"rest"


def test_learning_curve_of_a_ledger():
    ledger = pd.DataFrame({"round": [0, 0, 1, 1, 1], "status": ["done", "done", "done", "failed", "done"],
                           "rel_l2": [0.5, 0.4, 0.2, None, 0.1]})
    assert figures.learning_curve(ledger).startswith(PNG)


def test_planes_and_maps():
    gen = torch.Generator().manual_seed(0)
    plane = torch.rand(5, 6, 4, generator=gen, dtype=torch.float64)
    mask = torch.ones(6, 4, dtype=torch.bool)
    mask[2, 2] = False
    pngs = [figures.plane_comparison(plane[-1], plane[-2], mask, 40.0, "case"),
            figures.plane_series_figure(torch.arange(5.0) * 10, plane, mask),
            figures.error_map(torch.linspace(0, 1, 5), torch.linspace(0, 1, 5), 0.1 + plane[0, :5, :4].repeat(1, 2)[:, :5],
                              ("a", "b")),
            figures.before_after_figure(plane[0], plane[1], plane[2], mask, "steered")]
    assert all(p.startswith(PNG) for p in pngs)
    assert len({len(p) for p in pngs}) == len(pngs)  # four different pictures


def test_dose_response_of_the_measures():
    dose = pd.DataFrame({"alpha": [-1.0, 0.0, 1.0], "distance": [0.3, 0.2, 0.1], "mass": [1.0, 1.1, 1.2],
                         "centroid_x": [4.0, 4.5, 5.0], "spread": [1.0, 1.0, 1.1]})
    png = figures.dose_response_figure(dose, {"distance": 0.0, "mass": 1.15}, "inlet_speed_high")
    assert png.startswith(PNG) and len(png) > 1000


@pytest.mark.parametrize("figure", ["learning_curve", "plane_series_figure"])
def test_figures_leave_no_open_matplotlib_figure(figure):
    import matplotlib.pyplot as plt

    if figure == "learning_curve":
        figures.learning_curve(pd.DataFrame({"round": [0], "status": ["done"], "rel_l2": [0.5]}))
    else:
        figures.plane_series_figure(torch.arange(2.0), torch.rand(2, 3, 3), torch.ones(3, 3, dtype=torch.bool))
    assert plt.get_fignums() == []
