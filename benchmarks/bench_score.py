"""End-to-end scoring speed and memory: diffbench vs torch-fidelity on the same folders and weights.

    python benchmarks/bench_score.py --n 500            # throughput, fid+isc+kid, both libraries
    python benchmarks/bench_score.py --memory 1000,4000 # peak RSS of diffbench FID vs image count
    python benchmarks/bench_score.py --n 500 --tune-peer   # torch-fidelity with our allocator setting

Each run happens in its own subprocess, one after another; a child reports its wall time and its
peak RSS (its own and its loader workers'). The weights are a random, calibrated Inception saved
in torch-fidelity's format, given to both libraries. Caches are off on both sides. diffbench's
child sets the allocator as the `diffbench` CLI does (`diffbench.cpu.keep_freed_memory`);
`--tune-peer` gives torch-fidelity the same setting, to show how much of the ratio that is.
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


def make_folder(folder: Path, n: int, seed: int, size: int) -> Path:
    """n smooth random RGB PNGs of size×size (kept if already there)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rs = np.random.RandomState(seed)
    for i in range(n):
        path = folder / f"{i:05d}.png"
        if not path.exists():
            base = rs.randint(0, 256, (16, 16, 3)).astype(np.uint8)
            Image.fromarray(base).resize((size, size), Image.BILINEAR).save(path)
    return folder


def child(kind: str, real: str, fake: str, weights: str, metrics: str, kid_size: int,
          workers: int | None, batch: int, tune_peer: bool = False) -> dict:
    """Run one scorer in this process and report time, values and peak RSS (MiB)."""
    start = time.perf_counter()
    if kind != "diffbench" and tune_peer:
        from diffbench.cpu import keep_freed_memory

        keep_freed_memory()  # --tune-peer: torch-fidelity with diffbench's allocator setting
    if kind == "diffbench":
        import diffbench
        from diffbench.cpu import keep_freed_memory
        from diffbench.features.inception import WEIGHTS_NAME

        keep_freed_memory()  # as the `diffbench` CLI does at start
        out = diffbench.score(Path(real), Path(fake), metrics.split(","), "torch-fidelity",
                              {WEIGHTS_NAME: weights}, batch_size=batch, workers=workers,
                              cache=False, kid_subset_size=kid_size)
        values = {k: v["value"] for k, v in out["metrics"].items()}
    else:
        import torch_fidelity

        ms = metrics.split(",")
        ref = torch_fidelity.calculate_metrics(
            input1=fake, input2=real, fid="fid" in ms, isc="isc" in ms, kid="kid" in ms,
            kid_subset_size=kid_size, feature_extractor_weights_path=weights, cache=False,
            verbose=False, cuda=False, batch_size=batch, save_cpu_ram=True)
        names = {"frechet_inception_distance": "fid", "inception_score_mean": "isc",
                 "kernel_inception_distance_mean": "kid"}
        values = {names[k]: v for k, v in ref.items() if k in names}
    seconds = time.perf_counter() - start
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {"kind": kind, "seconds": seconds, "values": values, "peak_rss_mib": rss}


def spawn(args: list[str]) -> dict:
    """Run `child` in a fresh interpreter and parse its JSON line."""
    res = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments, prepare data and weights, run the children, print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="images per folder")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--weights", default=None, help="Inception weights file (default: random)")
    ap.add_argument("--metrics", default="fid,isc,kid")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--memory", default=None, help="counts for the flat-memory FID mode, e.g. 1000,4000")
    ap.add_argument("--tune-peer", action="store_true",
                    help="give torch-fidelity diffbench's allocator setting (cpu.keep_freed_memory)")
    ap.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, real, fake, weights, metrics, kid_size, workers, batch, tune = a.child
        print(json.dumps(child(kind, real, fake, weights, metrics, int(kid_size),
                               None if workers == "None" else int(workers), int(batch),
                               tune == "1")))
        return
    root = a.dir or Path(tempfile.mkdtemp(prefix="bench_score_"))
    weights = a.weights
    if weights is None:
        from diffbench.features.random_weights import make_inception_weights

        weights = str(make_inception_weights(root / "inception-random.pth"))
    counts = [int(x) for x in a.memory.split(",")] if a.memory else [a.n]
    for n in counts:
        real = make_folder(root / f"real{n}", n, 0, a.size)
        fake = make_folder(root / f"fake{n}", n, 1, a.size)
        kid = min(1000, n)
        common = [str(real), str(fake), weights]
        if a.memory:
            r = spawn(["diffbench", *common, "fid", str(kid), str(a.workers), str(a.batch), "0"])
            print(f"diffbench fid 2x{n}: {2 * n / r['seconds']:.1f} images/s, "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB")
            continue
        tune = "1" if a.tune_peer else "0"
        rows = [spawn([k, *common, a.metrics, str(kid), str(a.workers), str(a.batch), tune])
                for k in ("diffbench", "torch-fidelity")]
        for r in rows:
            vals = ", ".join(f"{k}={v:.6g}" for k, v in sorted(r["values"].items()))
            print(f"{r['kind']:<15} {2 * n / r['seconds']:7.1f} images/s  {r['seconds']:7.1f} s  "
                  f"peak RSS {r['peak_rss_mib']:6.0f} MiB  {vals}")
        print(f"speed ratio diffbench / torch-fidelity: {rows[1]['seconds'] / rows[0]['seconds']:.2f}x")


if __name__ == "__main__":
    main()
