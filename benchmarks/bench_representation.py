"""Extraction speed and peak memory of the FD_DINOv2 and CMMD networks, beside their references.

FD_DINOv2: diffbench's DINOv2 ViT-L/14 extractor (`diffbench.features.dinov2`, EDM2's
``resize_mode='torch'`` preprocessing per image) vs the reference path: EDM2's detector
preprocessing on the batch (transcribed in tests/test_fd_dinov2.py) and the ``dinov2``
package's ``DinoVisionTransformer`` (the model code torch.hub loads), same random weights of the
real ViT-L/14 shape. CMMD: diffbench's CLIP ViT-L/14@336 extractor (cmmd's io_util
preprocessing) vs open_clip's own preprocessing and ``encode_image`` on the same network (the
cmmd reference itself runs in JAX/scenic, which is not installed here). Real weights cannot be
downloaded here; the FLOPs, and so the time, are the real networks'.

Each measurement runs in a fresh subprocess, so its peak RSS is its own; the feature checksum
printed with it shows both sides computed the same thing.

    python benchmarks/bench_representation.py --what dinov2 --n 64
    python benchmarks/bench_representation.py --what cmmd --n 16 --batch 8
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _images(n: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _weights(what: str, folder: Path) -> Path:
    """Random weights of the real network shape, saved as the loaders read them."""
    import torch

    torch.manual_seed(0)
    if what == "dinov2":
        from diffbench.features.dinov2_vit import VITL14, DinoV2ViT

        path = folder / "dinov2-vitl14-random.pth"
        torch.save(DinoV2ViT(VITL14).state_dict(), path)
    else:
        import open_clip

        path = folder / "clip-vit-l-14-336-random.pt"
        torch.save(open_clip.create_model("ViT-L-14-336-quickgelu").state_dict(), path)
    return path


def _diffbench(args: argparse.Namespace, images: np.ndarray):
    import torch

    if args.what == "dinov2":
        from diffbench.features.dinov2 import DinoV2Extractor

        ext, key = DinoV2Extractor(args.weights, resize_mode="torch"), "dinov2_cls"
    else:
        from diffbench.features.cmmd_clip import CmmdClipExtractor

        ext, key = CmmdClipExtractor(args.weights), "embed"
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), args.batch):
            batch = torch.stack([ext.preprocess(im) for im in images[i:i + args.batch]])
            out.append(ext.forward(batch)[key])
    return torch.cat(out)


def _reference(args: argparse.Namespace, images: np.ndarray):
    import torch

    if args.what == "dinov2":
        from dinov2.models.vision_transformer import DinoVisionTransformer

        from diffbench.features.dinov2_vit import VITL14 as c

        net = DinoVisionTransformer(img_size=c.img_size, patch_size=c.patch_size,
                                    embed_dim=c.embed_dim, depth=c.depth, num_heads=c.num_heads,
                                    mlp_ratio=c.mlp_ratio, init_values=1.0, ffn_layer="mlp",
                                    block_chunks=0)
        net.load_state_dict(torch.load(args.weights, weights_only=True), strict=True)
        net.eval()
        mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, -1, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, -1, 1, 1)

        def prep(x):  # EDM2 DINOv2Detector, resize_mode='torch'
            x = torch.nn.functional.interpolate(x.to(torch.float32), size=(224, 224),
                                                mode="bicubic", antialias=True)
            return (x / 255 - mean) / std

        forward = net
    else:
        import open_clip
        from PIL import Image

        net, _, transform = open_clip.create_model_and_transforms(
            "ViT-L-14-336-quickgelu", pretrained=str(args.weights))
        net.eval()

        def prep(x):
            return torch.stack([transform(Image.fromarray(a)) for a in
                                x.permute(0, 2, 3, 1).numpy()])

        forward = net.encode_image
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), args.batch):
            x = torch.from_numpy(images[i:i + args.batch]).permute(0, 3, 1, 2)
            out.append(forward(prep(x)).float())
    return torch.cat(out)


def _child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    images = _images(args.n, *args.size)
    run = _diffbench if args.child == "diffbench" else _reference
    run(args, images[:min(2, args.n)])  # warm-up: weights load, first-call allocations
    start = time.perf_counter()
    feats = run(args, images)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"what": args.child, "seconds": seconds, "images_per_s": args.n / seconds,
                      "peak_rss_mib": peak, "checksum": float(feats.double().abs().mean())}))


def _run(who: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", who, "--what", args.what, "--n", str(args.n),
           "--batch", str(args.batch), "--size", *map(str, args.size), "--threads",
           str(args.threads), "--weights", str(args.weights)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments, run both sides in their own processes, print a line each and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--what", choices=("dinov2", "cmmd"), default="dinov2")
    ap.add_argument("--n", type=int, default=64, help="images (timed after a 2-image warm-up)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--weights", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.weights = _weights(args.what, Path(tmp))
        rows = [_run("diffbench", args), _run("reference", args)]
    for r in rows:
        print(f"{args.what} {r['what']:<10} {r['images_per_s']:.2f} img/s ({r['seconds']:.1f} s "
              f"for {args.n}), peak RSS {r['peak_rss_mib']:.0f} MiB, checksum {r['checksum']:.6g}")
    print(f"speed ratio (reference / diffbench time): {rows[1]['seconds'] / rows[0]['seconds']:.2f}")


if __name__ == "__main__":
    main()
