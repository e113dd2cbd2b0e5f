"""Samplers for linear-interpolant flow models (REPA/SiT) and per-sample seeding.

`seeding` gives every sample its own seed and `torch.Generator`, so an image never depends on the
batch it was drawn in; `flow` holds the Euler/Heun ODE and Euler–Maruyama SDE samplers with
classifier-free guidance restricted to a guidance interval (REPA's convention: t=1 noise, t=0 data).
"""

from __future__ import annotations
