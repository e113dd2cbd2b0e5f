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


def _calibration_images(gen: torch.Generator, n: int) -> torch.Tensor:
    """Noise at several scales, like the images tests feed (normalised, 299×299)."""
    images = []
    for i in range(n):
        side = (4, 8, 16, 64)[i % 4]
        noise = torch.randint(0, 256, (1, 3, side, side), generator=gen).float()
        images.append(tf1_bilinear(noise, (299, 299)))
    return normalise(torch.cat(images))


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
            net(_calibration_images(gen, batch_size), sfid=False)
    net.eval()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    with torch.no_grad():
        # Scale the classifier so logits have a spread like the real network's (std ≈ 2).
        logits = net(_calibration_images(gen, batch_size), sfid=False)["logits_unbiased"]
        net.fc.weight.mul_(2.0 / logits.std().clamp_min(1e-6))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path
