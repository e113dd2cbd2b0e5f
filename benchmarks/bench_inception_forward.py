"""Inception forward speed on the CPU: diffbench's micro-batches vs torch-fidelity's network.

    python benchmarks/bench_inception_forward.py                 # batch 50, micro 4/8/16/50
    python benchmarks/bench_inception_forward.py --micro 8 --reps 5   # micro 8, fused vs not

Times only the network (preprocessed 3×299×299 input already in memory), which is ~90% of
end-to-end scoring on a small CPU. Every configuration runs once per round, rounds interleave
the configurations so that machine drift hits all of them alike, and the median per round is
reported. The weights are a random, calibrated Inception in torch-fidelity's format, given to
both. Values are checked equal across micro-batch sizes (bit for bit) and close to torch-fidelity.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    """Parse arguments, build both networks, time them in interleaved rounds, print a table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=50, help="images per forward call")
    ap.add_argument("--micro", default="4,8,16,50", help="diffbench micro-batch sizes to time")
    ap.add_argument("--reps", type=int, default=3, help="rounds (each runs every configuration)")
    ap.add_argument("--weights", default=None, help="Inception weights file (default: random)")
    ap.add_argument("--no-peer", action="store_true", help="skip torch-fidelity")
    ap.add_argument("--no-unfused", action="store_true", help="skip the unfused-conv run")
    a = ap.parse_args()

    from diffbench.features.inception import InceptionExtractor

    weights = a.weights
    if weights is None:
        from diffbench.features.random_weights import make_inception_weights

        root = Path(tempfile.mkdtemp(prefix="bench_inception_"))
        weights = str(make_inception_weights(root / "inception-random.pth"))
    gen = torch.Generator().manual_seed(0)
    # Integer-valued, so that torch-fidelity (which takes uint8) sees the same input.
    x = torch.randint(0, 256, (a.batch, 3, 299, 299), generator=gen).float()

    runs = {}
    for m in (int(s) for s in a.micro.split(",")):
        ext = InceptionExtractor(weights, micro_batch=m)
        runs[f"diffbench micro {m}"] = ext.forward
    if not a.no_unfused:
        # The largest micro-batch again, with separate conv and ReLU calls (no prepacked weights).
        ext = InceptionExtractor(weights, micro_batch=m)
        ext.net.prepack(enable=False)
        runs[f"unfused micro {m}"] = ext.forward
    if not a.no_peer:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        peer = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                           feature_extractor_weights_path=weights).eval()
        xu8 = x.to(torch.uint8)  # torch-fidelity normalises (and resizes, a no-op at 299) itself

        def tf_forward(_):
            with torch.inference_mode():
                return dict(zip(("pool3", "logits_unbiased"), peer(xu8), strict=True))

        runs["torch-fidelity"] = tf_forward

    outputs = {name: fn(x) for name, fn in runs.items()}  # warm-up, and values to compare
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(a.reps):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch}, "
          f"{a.reps} rounds")
    base = None
    for name, ts in times.items():
        ms = 1000 * statistics.median(ts) / a.batch
        base = base or ms
        print(f"{name:<22} {ms:7.1f} ms/image  (min {1000 * min(ts) / a.batch:.1f})  "
              f"x{base / ms:.2f} vs first")
    names = [n for n in outputs if n != "torch-fidelity"]
    ref = outputs[names[0]]
    for n in names[1:]:
        same = all(torch.equal(ref[k], outputs[n][k]) for k in ref)
        print(f"{n}: {'bit-identical' if same else 'DIFFERENT'} to {names[0]}")
    if "torch-fidelity" in outputs:
        diff = (ref["pool3"] - outputs["torch-fidelity"]["pool3"].float()).abs().max().item()
        print(f"pool3 max |diffbench - torch-fidelity| = {diff:.2e}")


if __name__ == "__main__":
    main()
