"""Randomly initialised networks of the real architectures, for offline tests and smoke demos.

Real Inception weights cannot be downloaded on machines without internet; a random network of
the same architecture, saved to a file, stands in for it: diffbench and the reference library
load the same file, so their outputs must agree. BatchNorm statistics are calibrated on random
images (train mode, cumulative averages) so that features are well scaled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from diffbench.features.inception_net import InceptionNet
from diffbench.features.resize import normalise, tf1_bilinear


def make_inception_weights(path: str | Path, seed: int = 0, calibration_batches: int = 2,
                           batch_size: int = 8) -> Path:
    """Write a seeded, BatchNorm-calibrated random Inception in torch-fidelity's format."""
    path = Path(path)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = InceptionNet()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batches
            module.reset_running_stats()
    net.train()
    with torch.no_grad():
        for _ in range(calibration_batches):
            images = torch.randint(0, 256, (batch_size, 3, 64, 64), generator=gen).float()
            smooth = torch.nn.functional.avg_pool2d(images, 5, stride=1, padding=2)
            net(normalise(tf1_bilinear(smooth, (299, 299))), sfid=False)
    net.eval()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path
