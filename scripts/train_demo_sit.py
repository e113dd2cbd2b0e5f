"""Train the demo class-conditional SiT (diffbench/assets/demo/digits_sit.safetensors).

    .venv/bin/python scripts/train_demo_sit.py                      # the shipped weights
    .venv/bin/python scripts/train_demo_sit.py --steps 300 --out /tmp/sit   # a quick try

A smoke-benchmark model, not a research one: our SiT code (`diffbench.adapters.sit_model.SiT`,
the same that loads REPA's checkpoints), pixel space (one grey channel in [-1, 1], 32×32, no
VAE), trained on scikit-learn's digits (train split: index % 5 != 0) with REPA's objective:
x_t = (1-t)·x0 + t·eps, t ~ U(0, 1), velocity target eps - x0, labels dropped to the null class
10 with probability 0.1 (for classifier-free guidance), EMA of the weights. Deterministic on CPU:
seed 0 and one thread (other thread counts may sum in another order).

Afterwards it samples 50 images per class through the `sit-repa` adapter (SDE, the demo
settings, and a few CFG scales) and measures the demo digits classifier's accuracy on them
(vs the requested labels) and the Frechet distance of its 64-d features to the test split.
Everything goes to digits_sit.json beside the weights.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from diffbench.adapters.base import Request
from diffbench.adapters.sit import SiTAdapter
from diffbench.adapters.sit_model import SiT, SiTConfig
from diffbench.data.digits import load_digits
from diffbench.features.digits import ASSETS, load_digits_net, to_input
from diffbench.fsutil import file_sha256
from diffbench.metrics.functional import frechet_distance
from diffbench.sampling.seeding import sample_seed

CONFIG = SiTConfig(depth=4, hidden=128, heads=2, patch=8, in_channels=1, input_size=32,
                   num_classes=10, class_dropout_prob=0.1, projector_dims=())
SEED, STEPS, BATCH, LR, WARMUP, EMA_DECAY, GRAD_CLIP, THREADS = 0, 4000, 128, 1e-3, 200, 0.999, 1.0, 1
# what suites/demo.yaml should use (chosen from the sweep recorded in digits_sit.json)
DEMO_SAMPLER = {"mode": "sde", "steps": 40, "cfg_scale": 2.0, "guidance_interval": [0.0, 0.7]}
PER_CLASS, EVAL_SEED, SWEEP_CFG = 50, 0, (1.0, 1.5, 2.0, 3.0)


def train_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """Digits train split as grey N×1×32×32 in [-1, 1] and labels."""
    images, labels = load_digits(CONFIG.input_size, "train")
    x = torch.from_numpy(images[..., 0].astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    return x, torch.from_numpy(labels.copy())


def lr_at(step: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of LR."""
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    frac = (step - WARMUP) / max(1, steps - WARMUP)
    return LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def flow_loss(net: SiT, x0: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """REPA's objective: MSE between the predicted velocity and eps - x0 at x_t = (1-t)x0 + t eps."""
    t = torch.rand(x0.shape[0], generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    tt = t.view(-1, 1, 1, 1)
    x_t = (1 - tt) * x0 + tt * eps
    return F.mse_loss(net(x_t, t, y), eps - x0)


@torch.no_grad()
def ema_update(ema: SiT, net: SiT, decay: float) -> None:
    """ema ← decay·ema + (1-decay)·net (parameters only; pos_embed is fixed)."""
    for e, p in zip(ema.parameters(), net.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)


def train(steps: int) -> tuple[SiT, list[float]]:
    """Train from seed SEED for `steps` steps; returns the EMA model and the loss every 100 steps."""
    torch.manual_seed(SEED)  # label dropout draws from the global generator
    gen = torch.Generator().manual_seed(SEED)
    x, y = train_tensors()
    net = SiT(CONFIG).train()
    ema = copy.deepcopy(net).eval()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=0.0)
    order, pos, losses, running = torch.randperm(len(x), generator=gen), 0, [], 0.0
    for step in range(steps):
        if pos + BATCH > len(order):
            order, pos = torch.randperm(len(x), generator=gen), 0
        idx = order[pos:pos + BATCH]
        pos += BATCH
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps)
        loss = flow_loss(net, x[idx], y[idx], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
        opt.step()
        ema_update(ema, net, EMA_DECAY)
        running += loss.item()
        if (step + 1) % 100 == 0:
            losses.append(round(running / 100, 5))
            print(f"step {step + 1}/{steps} loss {running / 100:.4f}", flush=True)
            running = 0.0
    return ema, losses


def requests(sampler: dict) -> list[Request]:
    """PER_CLASS requests per class, keyed and seeded as diffbench's balanced class tasks are."""
    out = []
    for i in range(PER_CLASS):
        for c in range(CONFIG.num_classes):
            key = f"c{c:04d}_{i:03d}"
            out.append(Request(key=key, seed=sample_seed(EVAL_SEED, key), condition={"class": c},
                               sampler=dict(sampler)))
    return out


@torch.no_grad()
def classify(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(64-d features, predicted labels) of uint8 N×H×W×3 images from the demo classifier."""
    out = load_digits_net()(to_input(torch.from_numpy(np.array(images, dtype=np.uint8))))
    return out["features"].double().numpy(), out["logits"].argmax(1).numpy()


def fd(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between two feature sets."""
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                            np.cov(b, rowvar=False))


def evaluate(ckpt: Path, sampler: dict, test_feats: np.ndarray) -> dict:
    """Sample through the sit-repa adapter and score accuracy and FD on classifier features."""
    adapter = SiTAdapter(ckpt=str(ckpt), heads=CONFIG.heads, vae="none")
    reqs = requests(sampler)
    start = time.perf_counter()
    images = np.stack([im for i in range(0, len(reqs), 250)
                       for im in adapter.generate(reqs[i:i + 250])])
    seconds = time.perf_counter() - start
    feats, pred = classify(images)
    labels = np.array([r.condition["class"] for r in reqs])
    return {"sampler": sampler, "images": len(reqs), "seconds": round(seconds, 2),
            "class_accuracy": round(float((pred == labels).mean()), 4),
            "fd_digits64_vs_test": round(fd(feats, test_feats), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=ASSETS)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    start = time.time()
    ema, losses = train(args.steps)
    train_seconds = round(time.time() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "digits_sit.safetensors"
    save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(weights))
    test_feats, _ = classify(load_digits(CONFIG.input_size, "test")[0])
    train_feats, _ = classify(load_digits(CONFIG.input_size, "train")[0])
    torch.set_num_threads(2)  # sampling speed as the demo sees it (2 cores)
    sweep = [evaluate(weights, {**DEMO_SAMPLER, "cfg_scale": w}, test_feats) for w in SWEEP_CFG]
    sweep.append(evaluate(weights, {**DEMO_SAMPLER, "guidance_interval": [0.0, 1.0]}, test_feats))
    info = {
        "what": "smoke-benchmark SiT for the offline demo (sklearn digits, 32x32 grey, pixel "
                "space); not a research model",
        "config": {k: list(v) if isinstance(v, tuple) else v
                   for k, v in dataclasses.asdict(CONFIG).items()},
        "parameters": sum(p.numel() for p in ema.parameters()),
        "training": {"seed": SEED, "steps": args.steps, "batch": BATCH, "lr": LR,
                     "warmup": WARMUP, "schedule": "cosine to 0.1 lr", "ema_decay": EMA_DECAY,
                     "grad_clip": GRAD_CLIP, "threads": THREADS, "objective":
                     "linear path x_t=(1-t)x0+t eps, target eps-x0, t~U(0,1), label drop 0.1",
                     "train_images": int(len(train_feats)), "seconds": train_seconds,
                     "loss_per_100_steps": losses},
        "demo_sampler": {**DEMO_SAMPLER, "images_per_class": PER_CLASS, "seed": EVAL_SEED},
        "evaluation": {"classifier": "diffbench/assets/demo/digits_classifier.safetensors",
                       "reference": "digits test split (index % 5 == 0, 360 images)",
                       "fd_train_split_vs_test": round(fd(train_feats, test_feats), 3),
                       "sweep": sweep},
        "torch": torch.__version__,
        "sha256": file_sha256(weights),
    }
    (args.out / "digits_sit.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
