"""Long-step diffusion schemes that the peer benchmark (bench/reference_peer.py) races against py-pde.

Not part of the library: the reference solver integrates advection–diffusion with explicit SSP-RK2 /
Euler at the positivity limit (``closedloop.physics.steppers``), and these schemes cover pure,
symmetric diffusion only (no advection, no sources, no guaranteed positivity). They pay on the
benchmark's closed box, where the step is limited by diffusion alone:

* ``super_stepping``: RKL2 super-time-stepping, s stages per step of up to Δt_E (s² + s − 2)/4;
* ``exponential``: exp(t L) c by a Chebyshev expansion, one step over the whole horizon.

Both build on ``closedloop.physics`` (``diffuse``, ``outflow_coefficient``, ``Kernel``). Their tests
live in tests/bench/.
"""
