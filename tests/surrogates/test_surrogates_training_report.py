"""The report that says whether a training learned: it kept its starting weights, or its loss rose
more than SPIKE_WARNING times above its start."""
from __future__ import annotations

import math

import pytest

from closedloop.surrogates.training_report import SPIKE_WARNING, TrainReport


def test_report_flags_a_training_that_kept_its_start_or_spiked():
    calm = TrainReport(losses=[0.9, 0.5, 0.6, 0.4], initial_loss=1.0, best_loss=0.4, best_epoch=3)
    assert not calm.kept_start and calm.warnings() == []
    assert calm.peak_over_start == pytest.approx(0.9) and calm.largest_spike == pytest.approx(0.6 / 0.5)
    stuck = TrainReport(losses=[1.5, 1.2, 1.1], initial_loss=1.0, best_loss=1.0, best_epoch=-1)
    assert stuck.kept_start and len(stuck.warnings()) == 1 and "unchanged" in stuck.warnings()[0]
    spiky = TrainReport(losses=[0.5, 12.0, 0.3], initial_loss=1.0, best_loss=0.3, best_epoch=2)
    assert spiky.peak_over_start == pytest.approx(12.0) and spiky.peak_over_start > SPIKE_WARNING
    assert spiky.largest_spike == pytest.approx(24.0)
    assert len(spiky.warnings()) == 1 and "12x its start" in spiky.warnings()[0]
    summary = spiky.summary()
    assert summary["last_loss"] == 0.3 and summary["best_epoch"] == 2 and summary["epochs"] == 3
    assert not TrainReport(initial_loss=1.0).warnings()  # no epoch run: nothing to flag
    assert math.isnan(TrainReport(initial_loss=1.0).peak_over_start)
