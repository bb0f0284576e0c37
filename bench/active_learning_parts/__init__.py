"""The parts of bench/active_learning.py that the library does not have: benchmark-only.

============  ======================================================================================
``learners``  the learner variants (default, ``--stable``, ``--learner``) and the initial fit that
              every strategy of a seed shares
``heldout``   campaign directories that share one case directory; the held-out test set and the
              oracles that draw their batches from it (bounds, not planners)
``probes``    proposal latency, the ``--control`` run without new data, the ``--sketch-check``
``summary``   headline, diagnostics, figures and tables of a finished study
============  ======================================================================================

Everything else a run does (propose, simulate, validate, retrain, stop) is a step function of
:mod:`closedloop.lab.campaign`, called the way the campaign flow calls it.
"""
