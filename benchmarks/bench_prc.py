"""Time and peak memory of diffbench's k-NN precision/recall at the ADM scale.

Default work: 10k real vs 50k fake random features of dim 2048 (the ADM evaluator's reference
batch vs sample batch), k=3, ``mode="adm"``. Each measurement runs in a fresh subprocess so that
its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own.

    python benchmarks/bench_prc.py                       # ADM scale, adm mode
    python benchmarks/bench_prc.py --real 2000 --fake 5000 --peer
                                                          # + torch-fidelity mode vs torch-fidelity

``--peer`` also times diffbench's ``mode="torch-fidelity"`` and torch-fidelity's own
``calculate_precision_recall_part`` (its ``save_cpu_ram=True`` path) on the same features and
prints the ratio; its full path builds N x N matrices (about 10 GB for 50k fake), so it is not run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _features(n: int, dim: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Non-negative, Inception-pool3-like magnitudes (squared norms ~500 stay finite in float16).
    return (np.abs(rng.standard_normal((n, dim), dtype=np.float32)) * 0.5 + shift).astype(np.float32)


def _child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    real = _features(args.real, args.dim, 0, 0.0)
    fake = _features(args.fake, args.dim, 1, 0.01)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if args.child == "torch-fidelity-peer":
        from torch_fidelity.metric_prc import calculate_precision_recall_part

        p, r = calculate_precision_recall_part(torch.from_numpy(fake), torch.from_numpy(real),
                                               args.k, args.block_size)
    else:
        from diffbench.metrics.functional import precision_recall

        p, r = precision_recall(real, fake, k=args.k, mode=args.child, block_size=args.block_size)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"what": args.child, "precision": p, "recall": r, "seconds": seconds,
                      "peak_rss_mib": peak / 1024, "rss_before_mib": base_rss / 1024}))


def _run(what: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--real", str(args.real), "--fake",
           str(args.fake), "--dim", str(args.dim), "--k", str(args.k), "--block-size",
           str(args.block_size), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments, run each measurement in its own process, print a table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--real", type=int, default=10_000)
    ap.add_argument("--fake", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--block-size", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--peer", action="store_true", help="also torch-fidelity mode and its peer")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    whats = ["adm"] + (["torch-fidelity", "torch-fidelity-peer"] if args.peer else [])
    print(f"precision/recall k={args.k}: {args.real} real vs {args.fake} fake, dim {args.dim}, "
          f"block {args.block_size}")
    rows = {w: _run(w, args) for w in whats}
    for w, r in rows.items():
        print(f"{w:22s} {r['seconds']:8.1f} s  peak RSS {r['peak_rss_mib']:7.0f} MiB "
              f"(before {r['rss_before_mib']:.0f})  P={r['precision']:.6f} R={r['recall']:.6f}")
    if args.peer:
        ratio = rows["torch-fidelity-peer"]["seconds"] / rows["torch-fidelity"]["seconds"]
        same = (rows["torch-fidelity"]["precision"], rows["torch-fidelity"]["recall"]) == (
            rows["torch-fidelity-peer"]["precision"], rows["torch-fidelity-peer"]["recall"])
        print(f"torch-fidelity / diffbench time ratio: {ratio:.2f}; identical P/R: {same}")


if __name__ == "__main__":
    main()
