"""Weight files of randomly initialised real architectures, for tests (no downloads).

`make_inception_weights` writes a seeded Inception in torch-fidelity's state-dict format with
BatchNorm calibrated on random images; both diffbench and the reference library load that file.
"""

from __future__ import annotations

from diffbench.features.random_weights import make_inception_weights

__all__ = ["make_inception_weights"]
