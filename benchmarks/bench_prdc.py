"""Time and peak memory of diffbench's blocked PRDC beside ``prdc.compute_prdc``.

Default work: the ADM scale, 10k reference vs 50k generated rows of dim 2048, nearest_k 5.
``prdc.compute_prdc`` builds full distance matrices (50k × 50k float32 = 10 GB), so it runs
only with ``--peer`` (use a smaller scale). Each measurement runs in a fresh subprocess so its
peak RSS is its own.

    python benchmarks/bench_prdc.py                              # ADM scale, diffbench only
    python benchmarks/bench_prdc.py --real 2000 --fake 5000 --peer
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _features(n: int, dim: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.abs(rng.standard_normal((n, dim), dtype=np.float32)) * 0.5 + shift)


def _child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    real = _features(args.real, args.dim, 0, 0.0)
    fake = _features(args.fake, args.dim, 1, 0.01)
    start = time.perf_counter()
    if args.child == "prdc":
        from prdc import compute_prdc

        with contextlib.redirect_stdout(io.StringIO()):
            out = {k: float(v) for k, v in compute_prdc(real, fake, args.k).items()}
    else:
        from diffbench.metrics.functional import prdc

        out = prdc(real, fake, nearest_k=args.k, block_size=args.block_size, device=args.device)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"what": args.child, **out, "seconds": seconds, "peak_rss_mib": peak}))


def _run(what: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--real", str(args.real), "--fake",
           str(args.fake), "--dim", str(args.dim), "--k", str(args.k), "--block-size",
           str(args.block_size), "--threads", str(args.threads), "--device", args.device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments, run each measurement in its own process, print one line each."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--real", type=int, default=10_000)
    ap.add_argument("--fake", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--block-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--peer", action="store_true", help="also prdc.compute_prdc (full matrices)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    rows = [_run("diffbench", args)] + ([_run("prdc", args)] if args.peer else [])
    for r in rows:
        print(f"{r['what']:<10} precision={r['precision']:.6f} recall={r['recall']:.6f} "
              f"density={r['density']:.6f} coverage={r['coverage']:.6f} "
              f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB")
    if args.peer:
        same = all(rows[0][k] == rows[1][k] for k in ("precision", "recall", "density",
                                                      "coverage"))
        print(f"identical: {same}; speed ratio (prdc / diffbench): "
              f"{rows[1]['seconds'] / rows[0]['seconds']:.2f}")


if __name__ == "__main__":
    main()
