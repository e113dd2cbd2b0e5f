"""`demo-sit`: the offline demo's class-conditional digits SiT with its shipped weights.

The same code as `sit-repa` (our SiT and REPA's samplers), in pixel space (no VAE): 1×32×32 grey
digits, 10 classes (null class 10 for guidance). Its weights and training script ship with
diffbench (`diffbench/assets/demo/digits_sit.*`, `scripts/train_demo_sit.py`). A smoke-test model.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffbench.adapters.sit import SiTAdapter

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "demo"
DEMO_SIT = ASSETS / "digits_sit.safetensors"


def demo_heads() -> int:
    """Attention heads of the shipped digits SiT (a checkpoint does not store them; its training
    record does)."""
    return int(json.loads((ASSETS / "digits_sit.json").read_text())["config"]["heads"])


class DemoSiTAdapter(SiTAdapter):
    """The offline demo's digits SiT (sit-repa in pixel space with the shipped weights)."""

    def __init__(self, ckpt: str = str(DEMO_SIT), uint8: str = "round", device: str = "cpu",
                 dtype: str = "fp32"):
        super().__init__(ckpt=ckpt, heads=demo_heads(), vae="none", uint8=uint8, device=device,
                         dtype=dtype)
