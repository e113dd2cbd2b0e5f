"""Sampling speed of a SiT with and without REPA's guidance interval, side by side.

The same work both ways: N images, Euler–Maruyama SDE (REPA's sampler), CFG scale w, per-sample
generators (as `sit-repa` draws them); only the guidance interval differs: [0, high] (REPA's
headline, CFG off for t > high) vs [0, 1] (CFG at every step). A guided step runs the doubled
batch, so the model rows evaluated per image are 2·guided + unguided. Each measurement runs in a
fresh subprocess (its own peak RSS; peak CUDA memory on a GPU). VAE decoding is not included.

    python benchmarks/bench_generate.py                          # demo-sized SiT, 40 steps
    python benchmarks/bench_generate.py --model demo --images 500  # the shipped demo weights
    python benchmarks/bench_generate.py --model SiT-B/2 --images 8 --steps 10
    python benchmarks/bench_generate.py --model SiT-XL/2 --images 64 --steps 250 --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SMALL = {"depth": 4, "hidden": 128, "heads": 2, "patch": 8, "in_channels": 1, "input_size": 32,
         "num_classes": 10, "projector_dims": []}


def _model(name: str, device: str):
    import torch

    from diffbench.adapters.sit_checkpoint import load_sit_checkpoint
    from diffbench.adapters.sit_model import PRESETS, SiT, SiTConfig

    if name == "demo":
        from diffbench.adapters.demo import DEMO_SIT, demo_heads
        return load_sit_checkpoint(DEMO_SIT, heads=demo_heads()).to(device)
    if name == "small":
        config = SiTConfig(**{**SMALL, "projector_dims": ()})
    else:
        config = PRESETS[name]
    torch.manual_seed(0)
    model = SiT(config)
    with torch.no_grad():  # random non-zero weights: adaLN-Zero init would make outputs 0
        for n, p in model.named_parameters():
            if n != "pos_embed":
                p.normal_(0.0, 0.02)
    return model.to(device).eval()


def _child(args: argparse.Namespace) -> None:
    import torch

    from diffbench.sampling.flow import SamplerConfig, sample
    from diffbench.sampling.seeding import make_generators, randn_per_sample

    if args.threads:
        torch.set_num_threads(args.threads)
    net = _model(args.model, args.device)
    cfg = net.config
    high = args.high if args.child == "interval" else 1.0
    config = SamplerConfig(mode="sde", steps=args.steps, cfg_scale=args.cfg,
                           guidance_interval=(0.0, high), null_class=cfg.num_classes)
    shape = (cfg.in_channels, cfg.input_size, cfg.input_size)

    def run(n: int, first: int):
        gens = make_generators(range(first, first + n), args.device)
        noise = randn_per_sample(gens, shape, args.device)
        labels = torch.arange(first, first + n, device=args.device) % cfg.num_classes
        return sample(net.forward_velocity, noise, labels, config, gens, model_dtype=torch.float32)

    with torch.inference_mode():
        run(min(2, args.batch), 10**9)  # warm-up
        if args.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        rows = guided = unguided = 0
        start = time.perf_counter()
        for first in range(0, args.images, args.batch):
            _, st = run(min(args.batch, args.images - first), first)
            rows, guided, unguided = rows + st.model_rows, st.guided_nfe, st.unguided_nfe
        if args.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None
    print(json.dumps({"what": args.child, "interval": [0.0, high], "seconds": seconds,
                      "images_per_s": args.images / seconds, "model_rows": rows,
                      "guided_nfe": guided, "unguided_nfe": unguided,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "peak_cuda_mib": peak_gpu}))


def _run(what: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--model", args.model, "--images",
           str(args.images), "--batch", str(args.batch), "--steps", str(args.steps), "--cfg",
           str(args.cfg), "--high", str(args.high), "--threads", str(args.threads), "--device",
           args.device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small",
                        help="small (demo-sized, random), demo (shipped weights), SiT-B/2, "
                             "SiT-L/2 or SiT-XL/2 (random weights)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--cfg", type=float, default=1.8)
    parser.add_argument("--high", type=float, default=0.7, help="guidance interval [0, high]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    print(f"SiT {args.model}, {args.images} images, batch {args.batch}, SDE {args.steps} steps, "
          f"cfg {args.cfg}, {args.device}, {args.threads} threads")
    res = {w: _run(w, args) for w in ("interval", "full")}
    head = f"{'guidance':<16}{'images/s':>10}{'seconds':>9}{'guided':>8}{'unguided':>9}" \
           f"{'rows':>9}{'rows/img':>9}{'peak RSS MiB':>13}"
    print(head)
    for r in res.values():
        label = f"[0, {r['interval'][1]:g}]"
        print(f"{label:<16}{r['images_per_s']:>10.2f}{r['seconds']:>9.2f}{r['guided_nfe']:>8}"
              f"{r['unguided_nfe']:>9}{r['model_rows']:>9}{r['model_rows'] / args.images:>9.1f}"
              f"{r['peak_rss_mib']:>13.0f}"
              + (f"  peak CUDA {r['peak_cuda_mib']:.0f} MiB" if r["peak_cuda_mib"] else ""))
    a, b = res["interval"], res["full"]
    print(f"interval / full: speed x{a['images_per_s'] / b['images_per_s']:.2f}, "
          f"model rows x{a['model_rows'] / b['model_rows']:.3f}")


if __name__ == "__main__":
    main()
