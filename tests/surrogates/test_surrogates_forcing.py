"""The plane forcing: a source window folds into interval means with exact on-time fractions."""
from __future__ import annotations

import torch

from closedloop.surrogates import Forcing


def test_window_folds_into_exact_on_fractions():
    src = torch.ones(1, 2, 2)
    f = Forcing(velocity=(torch.zeros(1, 3, 2), torch.zeros(1, 2, 3)), source=src,
                window=torch.tensor([[15.0, 35.0]]))
    series = f.as_series(5, 10.0).source_series
    assert series is not None and series.shape == (1, 5, 2, 2)
    assert series[0, :, 0, 0].tolist() == [0.0, 0.5, 1.0, 0.5, 0.0]
