"""Train the demo digits classifier (diffbench/assets/demo/digits_classifier.safetensors).

    .venv/bin/python scripts/train_demo_classifier.py

Deterministic on CPU (seed 0, one thread). Train split: digits with index % 5 != 0; test split:
index % 5 == 0 (see diffbench/data/digits.py). Augmentation: random shifts of up to 2 pixels.
Prints the test accuracy and writes it with the settings to digits_classifier.json.
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from diffbench.data.digits import load_digits
from diffbench.features.digits import ASSETS, DEFAULT_WEIGHTS, DigitsNet, to_input
from diffbench.fsutil import file_sha256

SEED, EPOCHS, BATCH, LR = 0, 40, 64, 2e-3


def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to 2 pixels (zero padding; background is -1)."""
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    return padded[..., dy:dy + x.shape[-2], dx:dx + x.shape[-1]]


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    train_x, train_y = load_digits(32, "train")
    test_x, test_y = load_digits(32, "test")
    xtr, ytr = to_input(torch.from_numpy(train_x.copy())), torch.from_numpy(train_y.copy())
    xte, yte = to_input(torch.from_numpy(test_x.copy())), torch.from_numpy(test_y.copy())
    net = DigitsNet()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    start = time.time()
    for _ in range(EPOCHS):
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            loss = F.cross_entropy(net(shift(xtr[idx], gen))["logits"], ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(xte)["logits"].argmax(1) == yte).float().mean().item()
        train_acc = (net(xtr)["logits"].argmax(1) == ytr).float().mean().item()
    ASSETS.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(DEFAULT_WEIGHTS))
    info = {"seed": SEED, "epochs": EPOCHS, "batch": BATCH, "lr": LR, "test_accuracy": acc,
            "train_accuracy": train_acc, "train_images": len(xtr), "test_images": len(xte),
            "seconds": round(time.time() - start, 1), "torch": torch.__version__,
            "sha256": file_sha256(DEFAULT_WEIGHTS)}
    (ASSETS / "digits_classifier.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
