"""The GPU check: diffbench's main jobs on a CUDA device, compared with the CPU, in one table.

With random weights and no download it runs, on ``--device`` (cuda by default):

1. the demo suite end to end (``diffbench run demo --model demo-sit``: generation with REPA's
   SDE sampler, scoring, the results record), timed;
2. ``score`` with Inception FID/KID/IS (torch-fidelity protocol) and FD_DINOv2 + PRDC (dgm-eval
   protocol) on seeded synthetic images, once on the device and once on the CPU; each
   difference is checked against a bound derived from the feature rows both devices gave:
   - FD (FID, FD_DINOv2): √FD is the Gelbrich (Gaussian W2) distance, a metric that is at most
     the W2 distance of the samples (Gelbrich's inequality); pairing each image with itself,
     the fit of one side moves by ε ≤ √(n/(n−1)·mean‖Δx‖²), so |√FD' − √FD| ≤ ε_real + ε_fake;
   - KID: each kernel value (x·y/d + 1)³ moves by ≤ 3·max(|s|,|s'|)²·|Δs| with
     |Δs| ≤ (‖x‖‖Δy‖ + ‖Δx‖‖y‖ + ‖Δx‖‖Δy‖)/d, and an MMD² estimate weighs kernel values with
     coefficients of absolute sum ≤ 4 (mean and std of the subsets move by no more);
   - IS: log-softmax moves by ≤ 2δ (δ = max |Δlogit|), entropies H by ≤ (e^{2δ}−1)H + 2δ, so
     log IS of a split by ≤ (e^{2δ}−1)(H(p̄) + mean H) + 4δ;
   - PRDC: a distance moves by ≤ ‖Δx‖ + ‖Δy‖ and a radius by ≤ 2·max‖Δ‖ (triangle
     inequality); only comparisons whose margin is below that can flip, each moving a
     share by 1/n (counted, not assumed);
   plus 1e-9 relative for float64 rounding of the math;
3. sampling throughput of a SiT-XL/2-shaped model (random init) with REPA's SDE sampler
   (cfg 1.8 in [0, 0.7]) at batch 64, in bf16 and fp32: images/s and peak device memory.

It prints one table and exits 0 when every difference is within its bound, 1 otherwise, and 2
with one line when the device does not exist. ``--small`` shrinks every size (tiny DINOv2 and
SiT of the same code, few images) so the tests run it on the CPU:

    make gpu-check                                    # python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --device cpu --small
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZES = {  # full (one H100, < 8 minutes) and --small (the CPU test)
    False: {"score_images": 200, "demo_limit": None, "sit_batches": 3, "sit_steps": 50,
            "sit_batch": 64, "dinov2": "vitl14", "sit": "SiT-XL/2"},
    True: {"score_images": 12, "demo_limit": 10, "sit_batches": 1, "sit_steps": 4,
           "sit_batch": 4, "dinov2": "tiny", "sit": "tiny"},
}


def _device_ok(device: str) -> str | None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        return (f"gpu_check: no CUDA device here (torch {torch.__version__}, "
                f"torch.cuda.is_available() is False); run it on a GPU machine or with "
                "--device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        return f"gpu_check: unknown device {device!r}; use cuda, cuda:N or cpu"
    return None


def _images(folder: Path, n: int, seed: int, shift: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rs = np.random.RandomState(seed)
    for i in range(n):
        base = rs.randint(0, 256, (16, 16, 3)).astype(int) + shift
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((96, 96),
                                                                                Image.BILINEAR)
        img.save(folder / f"{i:04d}.png")
    return folder


def _dinov2_weights(path: Path, size: str) -> Path:
    import torch

    from diffbench.features.dinov2_vit import VITL14, DinoV2ViT, ViTConfig

    cfg = VITL14 if size == "vitl14" else ViTConfig(embed_dim=64, depth=2, num_heads=1,
                                                    mlp_ratio=4.0)
    torch.manual_seed(0)
    state = DinoV2ViT(cfg).state_dict()
    for key, value in state.items():  # visible weights everywhere (zeros would hide mistakes)
        state[key] = torch.randn_like(value) * (0.02 if value.dim() > 1 else 0.5)
        if key.endswith(("norm1.weight", "norm2.weight")) or key == "norm.weight":
            state[key] = 1 + 0.1 * torch.randn_like(value)
    torch.save(state, path)
    return path


# ------------------------------------------------------------------ bounds (see the docstring)

def _fd_bound(fd: float, rows: tuple[np.ndarray, ...]) -> float:
    eps = 0.0
    for a, b in (rows[0:2], rows[2:4]):
        n = len(a)
        eps += math.sqrt(n / (n - 1) * float(((a - b) ** 2).sum(1).mean()))
    return (math.sqrt(max(fd, 0.0)) + eps) ** 2 - max(fd, 0.0) + 1e-9 * abs(fd)


def _kid_bound(value: float, rows: tuple[np.ndarray, ...]) -> float:
    r, r2, f, f2 = rows
    d = r.shape[1]
    x = np.concatenate([r, f])
    dx = np.linalg.norm(np.concatenate([r2 - r, f2 - f]), axis=1)
    nx = np.linalg.norm(x, axis=1)
    s = np.abs(x @ x.T) / d + 1
    ds = (np.outer(nx, dx) + np.outer(dx, nx) + np.outer(dx, dx)) / d
    dk = 3 * (s + ds) ** 2 * ds
    return 4 * float(dk.max()) + 1e-9 * abs(value)


def _is_bound(value: float, logits: tuple[np.ndarray, np.ndarray]) -> float:
    a, b = logits
    delta = float(np.abs(a - b).max())
    p = np.exp(a - a.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = -(p * np.log(np.clip(p, 1e-300, None))).sum(1)
    pbar = p.mean(0)
    h_bar = float(-(pbar * np.log(np.clip(pbar, 1e-300, None))).sum())
    log_bound = (math.exp(2 * delta) - 1) * (h_bar + float(h.mean())) + 4 * delta
    return value * (math.exp(log_bound) - 1) + 1e-9 * value


def _prdc_bound(rows: tuple[np.ndarray, ...], k: int = 5) -> float:
    """Largest share any of precision/recall/density/coverage can move (ambiguous / n)."""
    r, r2, f, f2 = rows
    dr, df = np.linalg.norm(r2 - r, axis=1), np.linalg.norm(f2 - f, axis=1)
    slack = 2 * max(dr.max(), df.max())
    big = 2 * max(np.linalg.norm(r, axis=1).max(), np.linalg.norm(f, axis=1).max()) + slack

    def dist(a, b):
        return np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T,
                                  0))

    def e32(dist):  # float32 distances (prdc's arithmetic): |Δd²| ≤ gamma(D+2)·(|x|+|y|)²
        return (r.shape[1] + 2) * 2.0**-24 * big**2 / (2 * np.maximum(dist, 1e-12))

    rad_r = np.sort(dist(r, r), 1)[:, k]
    rad_f = np.sort(dist(f, f), 1)[:, k]
    cross = dist(r, f)
    margin = dr[:, None] + df[None, :] + slack + 2 * e32(cross)
    margin = margin + np.maximum(e32(rad_r)[:, None], e32(rad_f)[None, :])
    near_r = np.abs(cross - rad_r[:, None]) <= margin  # real balls around fakes
    near_f = np.abs(cross - rad_f[None, :]) <= margin
    per_fake = near_r.any(0).sum() / len(f)
    per_real = max(near_f.any(1).sum(), near_r.any(1).sum()) / len(r)
    density = near_r.sum() / (k * len(f))
    return float(max(per_fake, per_real, density)) + 1e-12


# ------------------------------------------------------------------ the three checks

def _features(folder: Path, name: str, resize: str, layers: tuple[str, ...], weights: dict,
              device: str, batch: int) -> dict[str, np.ndarray]:
    from diffbench.data import open_images
    from diffbench.extract import extract
    from diffbench.features import build_extractor

    ext = build_extractor(name, resize, weights, device)
    fs = extract(open_images(folder), ext, (), layers, batch, 0)
    return {layer: fs.banks[layer].array().astype(np.float64) for layer in layers}


def _score(real: Path, fake: Path, weights: dict, device: str, batch: int) -> dict[str, dict]:
    from diffbench import api

    out = {}
    for protocol, metrics in (("torch-fidelity", "fid,kid,isc"), ("dgm-eval", "fd_dinov2,prdc")):
        rec = api.score(real, fake, metrics, protocol, weights=weights, device=device,
                        batch_size=batch, workers=0, cache=False,
                        kid_subset_size=min(1000, len(list(real.glob("*.png")))))
        out.update({k: v["value"] for k, v in rec["metrics"].items()})
        out[f"seconds_{protocol}"] = rec["timings"]["total"]
    return out


def score_check(tmp: Path, device: str, sizes: dict) -> list[tuple]:
    """Rows (what, device value, cpu value, |diff|, bound, ok) of the score comparison."""
    from diffbench.features.random_weights import make_inception_weights

    sys.path.insert(0, str(ROOT))
    from tests._rounding import fid_rows_bound, kid_bound  # the repository's derived bounds

    n, batch = sizes["score_images"], 50
    real, fake = _images(tmp / "real", n, 0, 0), _images(tmp / "fake", n, 1, 40)
    weights = {"inception-2015-12-05": str(make_inception_weights(tmp / "inception.pth")),
               "dinov2-vitl14": str(_dinov2_weights(tmp / "dinov2.pth", sizes["dinov2"]))}
    # on the CPU itself (the tests) the comparison is with the same run: differences are 0
    devices = (device, "cpu") if device != "cpu" else ("cpu",)
    vals = {dev: _score(real, fake, weights, dev, batch) for dev in devices}
    feats = {}
    for dev in devices:
        inc = [_features(x, "inception", "tf-bilinear", ("pool3", "logits_unbiased"), weights,
                         dev, batch) for x in (real, fake)]
        dino = [_features(x, "dinov2-vitl14", "pil", ("dinov2_cls",), weights, dev, batch)
                for x in (real, fake)]
        feats[dev] = (inc, dino)
    (inc_d, dino_d), (inc_c, dino_c) = feats[device], feats["cpu"]

    def quad(side_d, side_c, layer):  # real (cpu, device), fake (cpu, device)
        return side_c[0][layer], side_d[0][layer], side_c[1][layer], side_d[1][layer]

    a, b = vals[device], vals["cpu"]
    # plus each side's own rounding: rank-deficient FD (fid_rows_bound) and float32 KID kernels
    pool = quad(inc_d, inc_c, "pool3")
    dino = quad(dino_d, dino_c, "dinov2_cls")
    fd_round = {"fid": 2 * fid_rows_bound(pool[0].astype(np.float32), pool[2].astype(np.float32)),
                "fd_dinov2": 2 * fid_rows_bound(dino[0].astype(np.float32),
                                                dino[2].astype(np.float32))}
    kid_round = 2 * kid_bound(pool[2], pool[0], 100, min(1000, n), seed=2020)[0]
    bounds = {"fid": _fd_bound(b["fid"], pool) + fd_round["fid"],
              "kid": _kid_bound(b["kid"], pool) + kid_round,
              "isc": _is_bound(b["isc"], (inc_d[1]["logits_unbiased"],
                                          inc_c[1]["logits_unbiased"])),
              "fd_dinov2": _fd_bound(b["fd_dinov2"], dino) + fd_round["fd_dinov2"]}
    prdc = _prdc_bound(dino)
    bounds.update({k: prdc for k in ("precision", "recall", "density", "coverage")})
    rows = []
    for key, bound in bounds.items():
        diff = abs(a[key] - b[key])
        rows.append((f"score {key}", a[key], b[key], diff, bound, diff <= bound))
    for protocol in ("torch-fidelity", "dgm-eval"):
        s = f"seconds_{protocol}"
        rows.append((f"score {protocol} s", a[s], b[s], None, None, True))
    return rows


def demo_check(tmp: Path, device: str, sizes: dict) -> list[tuple]:
    """The demo suite end to end on the device: images/s and its numbers."""
    from diffbench import api

    start = time.perf_counter()
    records = api.run("demo", model="demo-sit", out=tmp / "demo", device=device,
                      limit=sizes["demo_limit"])
    seconds = time.perf_counter() - start
    rec = records[0]
    n = rec["counts"].get("generated") or rec["counts"].get("fake") or 0
    return [("demo run (images/s)", n / seconds, None, None, None, True),
            ("demo fid", rec["metrics"]["fid"]["value"], None, None, None, True),
            ("demo accuracy", rec["metrics"]["accuracy"]["value"], None, None, None, True)]


def sit_check(device: str, sizes: dict) -> list[tuple]:
    """SiT-XL/2-shaped sampling throughput (REPA SDE sampler) in bf16 and fp32."""
    import torch

    from diffbench.adapters.sit_model import PRESETS, SiT, SiTConfig
    from diffbench.sampling.flow import SamplerConfig, sample
    from diffbench.sampling.seeding import make_generators

    cfg = PRESETS["SiT-XL/2"] if sizes["sit"] != "tiny" else SiTConfig(depth=2, hidden=64,
                                                                       heads=2, encoder_depth=1)
    config = SamplerConfig(mode="sde", steps=sizes["sit_steps"], cfg_scale=1.8,
                           guidance_interval=(0.0, 0.7))
    rows, bs = [], sizes["sit_batch"]
    for dtype in (torch.bfloat16, torch.float32):
        model = SiT(cfg).to(device=device, dtype=dtype).eval()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        seconds = 0.0
        for i in range(sizes["sit_batches"] + 1):  # the first batch warms up, untimed
            noise = torch.randn(bs, cfg.in_channels, cfg.input_size, cfg.input_size,
                                generator=torch.Generator().manual_seed(i)).to(device)
            labels = torch.arange(bs, device=device) % cfg.num_classes
            gens = make_generators(list(range(i * bs, (i + 1) * bs)), device)
            _sync(device)
            start = time.perf_counter()
            with torch.no_grad():
                sample(model.forward_velocity, noise, labels, config, gens, model_dtype=dtype)
            _sync(device)
            seconds += (time.perf_counter() - start) if i else 0.0
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") \
            else None
        name = str(dtype).split(".")[-1]
        rows.append((f"sit {sizes['sit']} b{bs} {name} (img/s)",
                     sizes["sit_batches"] * bs / seconds, None, None, None, True))
        rows.append((f"sit {name} peak GiB", peak, None, None, None, True))
        del model
    return rows


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    """Run the checks, print one table; 0 all within bounds, 1 a difference above its bound."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny sizes (the CPU test)")
    ap.add_argument("--skip", default="", help="comma list of demo,score,sit to leave out")
    args = ap.parse_args(argv)
    problem = _device_ok(args.device)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    sizes, skip = SIZES[args.small], set(filter(None, args.skip.split(",")))
    rows: list[tuple] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diffbench-gpu-check-") as tmp:
        if "demo" not in skip:
            rows += demo_check(Path(tmp), args.device, sizes)
        if "score" not in skip:
            rows += score_check(Path(tmp), args.device, sizes)
        if "sit" not in skip:
            rows += sit_check(args.device, sizes)
    print(f"{'check':<34} {args.device:>12} {'cpu':>12} {'|diff|':>10} {'bound':>10}  ok")
    for what, dev, cpu, diff, bound, ok in rows:
        print(f"{what:<34} {_fmt(dev):>12} {_fmt(cpu):>12} {_fmt(diff):>10} {_fmt(bound):>10}  "
              f"{'yes' if ok else 'NO'}")
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0 if all(r[5] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
