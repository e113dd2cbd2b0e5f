"""Try-on paired scoring speed and memory: diffbench's SSIM+LPIPS vs a per-image script loop.

    python benchmarks/bench_vton.py                           # 2032 pairs at 1024x768 (VITON-HD)
    python benchmarks/bench_vton.py --n 200 --size 512x384    # small, for a laptop CPU
    python benchmarks/bench_vton.py --device cuda --batch 32

Both sides score the same synthetic VITON-HD test set (ground truth ``test/image/*.jpg``,
predictions as diffbench stores them, ``<key>.png``) under the ``catvton`` protocol: SSIM on RGB
in [0, 1] (Gaussian 11/1.5, torchmetrics <= 1.4.1 border) and LPIPS SqueezeNet v0.1 on [-1, 1],
with the same backbone file (random SqueezeNet weights, or a real file with --squeeze). The peer is
CatVTON's ``eval.py`` style, one image at a time: PIL open, ToTensor (float32), torchmetrics SSIM
and the ``lpips`` package. diffbench decodes in loader workers and runs SSIM (float64) and LPIPS
batched. Each side runs in its own subprocess and reports its time, images/s and peak RSS (its
own plus its loader workers') and its peak traced Python allocations (tracemalloc).

The numbers must agree: LPIPS to 1e-5, SSIM to 1e-4 (the script's float32 sums are about 1e-5
from the exact value; diffbench sums in float64 — tests show parity to 1e-6 in float64).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(work: Path, n: int, size: tuple[int, int]) -> dict:
    """A VITON-HD layout with n persons, n predictions (as a run's sample folder), weights."""
    from PIL import Image

    from tests._vton import backbone_weights, smooth

    h, w = size
    root, made = work / "VITON-HD", work / "made"
    ids = [f"{i:05d}_00" for i in range(n)]
    if not (root / "test_pairs.txt").exists():
        for sub in ("image", "cloth"):
            (root / "test" / sub).mkdir(parents=True, exist_ok=True)
        made.mkdir(parents=True, exist_ok=True)
        rs = np.random.RandomState(0)
        for i, ident in enumerate(ids):
            gt = smooth(rs, size=(w, h), shift=i % 7)
            gt.save(root / "test" / "image" / f"{ident}.jpg", quality=95)
            os.link(root / "test" / "image" / f"{ident}.jpg", root / "test" / "cloth" / f"{ident}.jpg")
            pred = np.asarray(gt).astype(int) + rs.randint(-20, 21, (h, w, 3))
            Image.fromarray(np.clip(pred, 0, 255).astype(np.uint8)).save(made / f"{ident}.png")
        (root / "test_pairs.txt").write_text("".join(f"{i}.jpg {i}.jpg\n" for i in ids))
    samples = work / "samples"
    if not (samples / "manifest.jsonl").exists():
        from diffbench.adapters.folder import FolderAdapter
        from diffbench.data.vitonhd import VitonHD
        from diffbench.generate import generate, merge_manifests
        from diffbench.requests import task_requests

        reqs = task_requests(_task(), items=VitonHD(root).items())
        generate(FolderAdapter(str(made)), reqs, samples, 64, progress=False)
        merge_manifests(samples)
    squeeze = work / "squeeze-random.pth"
    if not squeeze.exists():
        shutil.copy(backbone_weights("squeeze"), squeeze)
    return {"root": str(root), "samples": str(samples), "squeeze": str(squeeze)}


def _task():
    from diffbench.suite import default_suites_dir, load_suite

    return load_suite(default_suites_dir() / "vitonhd.yaml").suite.tasks["paired"]


def _peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 1024


def run_diffbench(paths: dict, batch: int, workers: int | None, device: str) -> dict:
    """diffbench's paired family (SSIM + LPIPS) over the run's sample folder."""
    from diffbench.data.samples import SampleSet
    from diffbench.data.vitonhd import VitonHD
    from diffbench.metrics.lpips import lpips_model
    from diffbench.protocols import get_protocol
    from diffbench.scoring import EvalContext, TaskInputs
    from diffbench.scoring.paired import evaluate

    ctx = EvalContext(device=device, batch_size=batch, workers=workers,
                      weights={"squeezenet1_1-imagenet": paths["squeeze"]})
    start = time.perf_counter()
    lpips_model({"net": "squeeze"}, ctx.weights, ctx.device)
    loaded = time.perf_counter()
    inputs = TaskInputs("paired", _task(), get_protocol("catvton"), SampleSet(paths["samples"]),
                        VitonHD(paths["root"]))
    out = evaluate(["ssim", "lpips"], inputs, ctx)
    _sync(device)
    done = time.perf_counter()
    return {"values": {k: v["value"] for k, v in out.metrics.items()},
            "load_s": loaded - start, "score_s": done - loaded, "images": len(inputs.samples.keys)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_peer(paths: dict, device: str) -> dict:
    """CatVTON eval.py style: per image, PIL + ToTensor, torchmetrics SSIM, lpips package."""
    import lpips
    import torch
    from PIL import Image
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    from torchvision.transforms.functional import to_tensor

    from diffbench.features.lpips import TAPS

    start = time.perf_counter()
    net = lpips.LPIPS(net="squeeze", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(paths["squeeze"], weights_only=True)
    for k, _ in enumerate(TAPS["squeeze"]):
        for name, module in getattr(net.net, f"slice{k + 1}").named_children():
            module.load_state_dict({p: state[f"features.{name}.{p}"] for p in module.state_dict()})
    net = net.eval().to(device)
    loaded = time.perf_counter()
    ssim, lp = [], []
    samples = Path(paths["samples"])
    with torch.no_grad():
        for pred_path in sorted(samples.glob("*.png")):
            gt_path = Path(paths["root"]) / "test" / "image" / f"{pred_path.stem}.jpg"
            pred = to_tensor(Image.open(pred_path).convert("RGB"))[None].to(device)
            gt = to_tensor(Image.open(gt_path).convert("RGB"))[None].to(device)
            full = tm_ssim(pred, gt, data_range=1.0, return_full_image=True)[1]
            ssim.append(full[..., 5:-5, 5:-5].mean().item())  # torchmetrics <= 1.4.1
            lp.append(net(pred * 2 - 1, gt * 2 - 1).item())
    _sync(device)
    done = time.perf_counter()
    return {"values": {"ssim": float(np.mean(ssim)), "lpips": float(np.mean(lp))},
            "load_s": loaded - start, "score_s": done - loaded, "images": len(ssim)}


def _side(a: argparse.Namespace) -> None:
    paths = json.loads(a.paths)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    tracemalloc.start()
    out = (run_diffbench(paths, a.batch, a.workers, a.device) if a.side == "diffbench"
           else run_peer(paths, a.device))
    out["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    out["peak_rss_mib"] = _peak_mib()
    if a.device.startswith("cuda"):
        import torch

        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def main() -> None:
    """Build the data, run both sides in subprocesses, print values, throughput and memory."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2032, help="pairs (VITON-HD test: 2032)")
    ap.add_argument("--size", default="1024x768", help="HxW of every image")
    ap.add_argument("--batch", type=int, default=16, help="diffbench pairs per batch")
    ap.add_argument("--workers", type=int, default=None, help="diffbench loader workers")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of both sides (a loaded machine: 1; default: torch's)")
    ap.add_argument("--squeeze", type=Path, default=None, help="real SqueezeNet weights file")
    ap.add_argument("--work", type=Path, default=None, help="keep data here (default: temp)")
    ap.add_argument("--side", choices=["diffbench", "peer"], help=argparse.SUPPRESS)
    ap.add_argument("--paths", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        _side(a)
        return
    size = tuple(int(s) for s in a.size.lower().split("x"))
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-vton-"))
    t0 = time.perf_counter()
    paths = build(work, a.n, size)
    if a.squeeze:
        paths["squeeze"] = str(a.squeeze)
    print(f"data: {a.n} pairs at {size[0]}x{size[1]} in {work} ({time.perf_counter() - t0:.0f} s)")
    res = {}
    for side in ("diffbench", "peer"):
        cmd = [sys.executable, __file__, "--side", side, "--paths", json.dumps(paths),
               "--batch", str(a.batch), "--device", a.device, "--threads", str(a.threads or 0)]
        if a.workers is not None:
            cmd += ["--workers", str(a.workers)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    d, p = res["diffbench"], res["peer"]
    print(f"pairs: {d['images']}, device {a.device}, diffbench batch {a.batch}, "
          f"workers {a.workers if a.workers is not None else 'default'}, "
          f"torch threads {a.threads or 'default'}")
    for k, tol in (("ssim", 1e-4), ("lpips", 1e-5)):
        diff = abs(d["values"][k] - p["values"][k])
        print(f"{k:6s} diffbench {d['values'][k]:.9f}  peer {p['values'][k]:.9f}  |diff| {diff:.2e}")
        assert diff < tol, f"{k}: diffbench and the per-image loop disagree by {diff:.2e}"
    for name, r in res.items():
        cuda = f"  CUDA peak {r['cuda_peak_mib']:6.0f} MiB" if "cuda_peak_mib" in r else ""
        print(f"{name:9s} load {r['load_s']:5.2f} s  score {r['score_s']:7.2f} s  "
              f"{r['images'] / r['score_s']:7.2f} images/s  peak RSS {r['peak_rss_mib']:6.0f} MiB  "
              f"traced {r['traced_peak_mib']:6.1f} MiB{cuda}")
    print(f"speed ratio (scoring, diffbench / peer): {p['score_s'] / d['score_s']:.2f}x")


if __name__ == "__main__":
    main()
