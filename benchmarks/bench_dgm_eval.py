"""Time and peak memory of diffbench's dgm-eval metrics beside a plain reference implementation.

The peer is `tests/_dgm_eval.py`: an independent, deliberately plain implementation of
dgm-eval's protocol (full float64 distance and kernel matrices, the same random draws as
layer6ai-labs/dgm-eval), the oracle of the parity tests; this benchmark compares diffbench's
blocked implementation with that plain one, not with dgm-eval's own code (not on PyPI). Both get
the same float32 rows (a reference/training set, a held-out test set and a generated set of N
rows of D dims, half-normal like post-ReLU features) and the same seeds. Each measurement runs
in a fresh subprocess, so its peak RSS is its own; "extra" is the peak minus the RSS once the
inputs exist (the libraries and the rows). The issue's scale is 10k × 10k rows of 1024 dims:

    python benchmarks/bench_dgm_eval.py                          # N=10000, D=1024, all metrics
    python benchmarks/bench_dgm_eval.py --n 2000 --metrics kd,authpct,vendi

The reference gets float64 copies of the rows (dgm-eval's representations are float64 arrays),
diffbench the float32 rows its scorer holds (it computes in float64). Both compute every metric
in float64 (the reference always on the CPU, diffbench on --device), so the values agree to
rounding (see the tests for the bounds). The reference is meant to be obviously correct, not
fast: its times and memory are those of the direct formulas, not of dgm-eval's code.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("fd_eff", "fd_infinity", "kd", "sw_approx", "authpct", "vendi", "realism", "ct",
           "fls")


def _rows(n: int, dim: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.abs(rng.standard_normal((n, dim), dtype=np.float32)) * 0.5 + shift


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _diffbench(name: str, real, test, fake, seed: int, device: str) -> float:
    from diffbench.metrics import dgm, memorization
    from diffbench.metrics.dgm_specs import realism
    from diffbench.metrics.spec import Gaussian

    def gauss(x):
        x = x.astype(np.float64)
        return Gaussian(x.mean(0), np.cov(x, rowvar=False), len(x))

    if name == "fd_eff":
        a, b = gauss(real), gauss(fake)
        return dgm.fd_eff(a.mu, a.sigma, b.mu, b.sigma)
    if name == "sw_approx":
        a, b = gauss(real), gauss(fake)
        return dgm.sw_approx(a.mu, a.sigma, a.n, b.mu, b.sigma, b.n)
    if name == "fd_infinity":
        return dgm.fd_infinity(real, fake, seed=seed)[0]
    if name == "kd":
        return dgm.kd(real, fake, seed=seed)[0]
    if name == "authpct":
        return dgm.authpct(real, fake, device=device)
    if name == "vendi":
        return dgm.vendi(fake)
    if name == "realism":
        return realism(real, fake, nearest_k=5, subsample=10000, seed=seed).value
    if name == "ct":
        return memorization.ct(real, test, fake, seed=seed, device=device)
    return memorization.fls(real, test, fake, seed=seed, device=device)["fls"]


def _reference(name: str, real, test, fake, seed: int, device: str) -> float:
    sys.path.insert(0, str(ROOT))
    from tests import _dgm_eval as ref

    np.random.seed(seed)  # the protocol draws these from numpy's global state
    # dgm-eval holds its representations in float64 (numpy arrays of the network's outputs)
    real, test, fake = (x.astype(np.float64) for x in (real, test, fake))
    if name == "fd_eff":
        return ref.compute_efficient_fd_with_reps(real, fake)
    if name == "sw_approx":
        return ref.sw_approx(real, fake)
    if name == "fd_infinity":
        return ref.compute_fd_infinity(real, fake, seed=seed)
    if name == "kd":
        return ref.compute_mmd(real, fake).mean()
    if name == "authpct":
        return ref.compute_authpct(real, fake)
    if name == "vendi":
        return ref.compute_vendi_score(fake)
    if name == "realism":
        inds = np.random.choice(len(real), min(10000, len(real), len(fake)), replace=False)
        return float(np.median(ref.prdc_realism(real[inds], fake, 5)))
    if name == "ct":
        return ref.compute_ct_score(real, test, fake)
    return ref.compute_fls(*ref.fls_inputs(real, test, fake))


def _child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    real = _rows(args.n, args.dim, 0, 0.0)
    test = _rows(args.n, args.dim, 2, 0.0)
    fake = _rows(args.n, args.dim, 1, 0.01)
    fn = _diffbench if args.child == "diffbench" else _reference
    import sklearn.cluster  # noqa: F401

    import diffbench.metrics.memorization  # noqa: F401  (imports outside the measurement)

    base = _rss_mib()
    start = time.perf_counter()
    value = float(fn(args.metric, real, test, fake, args.seed, args.device))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"what": args.child, "metric": args.metric, "value": value,
                      "seconds": seconds, "peak_rss_mib": peak, "extra_mib": peak - base}))


def _run(what: str, metric: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--metric", metric, "--n", str(args.n),
           "--dim", str(args.dim), "--seed", str(args.seed), "--threads", str(args.threads),
           "--device", args.device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments, run each metric by both codes in their own processes, print a table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="rows per set")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--metrics", default=",".join(METRICS))
    ap.add_argument("--seed", type=int, default=13579)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--metric", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        print(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}",
              file=sys.stderr)
        sys.exit(2)
    print(f"N={args.n} rows per set, D={args.dim}, device {args.device}")
    print(f"{'metric':<12} {'diffbench':>14} {'reference':>14} {'s (db)':>8} {'s (ref)':>8} "
          f"{'ratio':>6} {'extra MiB (db)':>15} {'extra MiB (ref)':>16}")
    for name in names:
        ours, peer = _run("diffbench", name, args), _run("reference", name, args)
        print(f"{name:<12} {ours['value']:>14.6g} {peer['value']:>14.6g} "
              f"{ours['seconds']:>8.2f} {peer['seconds']:>8.2f} "
              f"{peer['seconds'] / max(ours['seconds'], 1e-9):>6.2f} "
              f"{ours['extra_mib']:>15.0f} {peer['extra_mib']:>16.0f}", flush=True)
    print("ratio: reference seconds / diffbench seconds")


if __name__ == "__main__":
    main()
