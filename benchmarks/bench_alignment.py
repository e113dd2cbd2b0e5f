"""DreamBench scoring speed and memory: diffbench's alignment family vs a per-image open_clip/timm loop.

    python benchmarks/bench_alignment.py                      # 4 subjects x 5 prompts x 4 images
    python benchmarks/bench_alignment.py --subjects 8 --prompts 10 --batch 64 --device cuda

Both sides score DINO (ViT-S/16), CLIP-I and CLIP-T (ViT-B-32-quickgelu) on the same images with
the same weights files (random weights of the real architectures, or real files with --clip and
--dino). The peer is the usual evaluation loop: each image opened with PIL, the library's own
transform, one forward per image (each image embedded once — fairer than the one-pair-per-call
loops seen in the wild), cosines averaged per subject. Each side runs in its own subprocess and
reports model-load time, scoring time and peak RSS (its own plus its loader workers').
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(work: Path, subjects: int, prompts: int, per: int, refs: int) -> dict:
    """A DreamBench-layout dataset, generated PNGs and random weights (kept if present)."""
    from tests._dreambooth import (
        make_clip_weights,
        make_timm_weights,
        smooth_image,
        write_dataset,
    )

    contexts = [f"in place {i}" for i in range(prompts - 1)]
    classes = {f"subj{i}": ("dog" if i % 3 == 0 else "toy", refs) for i in range(subjects)}
    root = work / "dataset"
    if not root.exists():
        write_dataset(root, classes)
        from tests._dreambooth import prompts_text
        (root / "prompts_and_classes.txt").write_text(
            prompts_text({s: c for s, (c, _) in classes.items()}, contexts, contexts))
        rs = np.random.RandomState(1)
        for s in classes:  # references at DreamBench-like sizes
            for j in range(refs):
                smooth_image(rs, (1024 - 64 * j, 960)).save(root / s / f"{j:02d}.jpg", quality=92)
    gen = work / "made"
    if not gen.exists():
        gen.mkdir()
        rs = np.random.RandomState(2)
        for s in classes:
            for p in range(prompts):
                for i in range(per):
                    smooth_image(rs, (512, 512)).save(gen / f"{s}-p{p:02d}-{i}.png")
    clip, dino = work / "clip.safetensors", work / "dino.pth"
    if not clip.exists():
        make_clip_weights(clip)
        make_timm_weights(dino)
    return {"root": str(root), "gen": str(gen), "clip": str(clip), "dino": str(dino)}


def _peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 1024


def run_diffbench(paths: dict, per: int, batch: int, workers: int | None, device: str) -> dict:
    """diffbench: requests → folder adapter → sample set → alignment family."""
    from diffbench.adapters.folder import FolderAdapter
    from diffbench.data.dreambooth import DreamBoothDataset
    from diffbench.data.samples import SampleSet
    from diffbench.generate import generate, merge_manifests
    from diffbench.protocols import get_protocol
    from diffbench.requests import task_requests
    from diffbench.scoring import EvalContext, TaskInputs, evaluate_task
    from diffbench.scoring.alignment import extractor_of, plan
    from diffbench.suite import default_suites_dir, load_suite

    task = load_suite(default_suites_dir() / "dreambooth.yaml", [
        f"tasks.dreambench.generation.images_per_condition={per}"]).suite.tasks["dreambench"]
    ds = DreamBoothDataset(paths["root"])
    samples = Path(paths["gen"]).parent / "samples"
    generate(FolderAdapter(paths["gen"]), task_requests(task, items=ds.items()), samples, 64,
             progress=False)
    merge_manifests(samples)
    proto = get_protocol("dreambench")
    ctx = EvalContext(device=device, batch_size=batch, workers=workers,
                      weights={"clip-vit-b-32-openai": paths["clip"], "dino-vits16": paths["dino"]})
    start = time.perf_counter()
    for m in ("dino", "clip_i"):
        extractor_of(plan(m, proto.param(m)).spec, ctx)
    loaded = time.perf_counter()
    out = evaluate_task(TaskInputs("dreambench", task, proto, SampleSet(samples), ds), ctx)
    done = time.perf_counter()
    return {"values": {k: v["value"] for k, v in out.metrics.items()},
            "load_s": loaded - start, "score_s": done - loaded,
            "images": out.metrics["dino"]["n"]["generated"] + out.metrics["dino"]["n"]["references"]}


def run_peer(paths: dict, device: str) -> dict:
    """The per-image loop with open_clip's and the official DINO transforms."""
    import open_clip
    import timm
    import torch
    from PIL import Image
    from torchvision import transforms as T

    from diffbench.data.dreambooth import DreamBoothDataset

    start = time.perf_counter()
    clip, _, clip_tf = open_clip.create_model_and_transforms("ViT-B-32-quickgelu",
                                                             pretrained=paths["clip"])
    clip = clip.eval().to(device)
    tok = open_clip.get_tokenizer("ViT-B-32-quickgelu")
    dino = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0)
    dino.load_state_dict(torch.load(paths["dino"], weights_only=True))
    dino = dino.eval().to(device)
    dino_tf = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
                         T.CenterCrop(224), T.ToTensor(),
                         T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    loaded = time.perf_counter()

    def unit(x):
        return torch.nn.functional.normalize(x.double(), dim=-1)[0].cpu().numpy()

    @torch.no_grad()
    def embed(path):
        img = Image.open(path).convert("RGB")
        return (unit(dino(dino_tf(img)[None].to(device))),
                unit(clip.encode_image(clip_tf(img)[None].to(device))))

    ds = DreamBoothDataset(paths["root"])
    scores = {"dino": [], "clip_i": [], "clip_t": []}
    images = 0
    for subject in ds.subjects:
        refs = [embed(p) for p in ds.reference_paths(subject)]
        images += len(refs)
        per_subject = {k: [] for k in scores}
        for item in (it for it in ds.items() if it.refs["subject"] == subject):
            with torch.no_grad():
                text = unit(clip.encode_text(tok([item.refs["text"]]).to(device)))
            for g in sorted(Path(paths["gen"]).glob(f"{item.key}-*.png")):
                d, c = embed(g)
                images += 1
                per_subject["dino"].append(np.mean([d @ r[0] for r in refs]))
                per_subject["clip_i"].append(np.mean([c @ r[1] for r in refs]))
                per_subject["clip_t"].append(c @ text)
        for k in scores:
            scores[k].append(np.mean(per_subject[k]))
    done = time.perf_counter()
    return {"values": {k: float(np.mean(v)) for k, v in scores.items()},
            "load_s": loaded - start, "score_s": done - loaded, "images": images}


def main() -> None:
    """Build the data, run both sides in subprocesses, print values, throughput and memory."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=5)
    ap.add_argument("--per", type=int, default=4, help="images per prompt")
    ap.add_argument("--refs", type=int, default=4, help="reference images per subject")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", type=Path, default=None, help="keep data here (default: temp)")
    ap.add_argument("--side", choices=["diffbench", "peer"], help=argparse.SUPPRESS)
    ap.add_argument("--paths", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        paths = json.loads(a.paths)
        out = (run_diffbench(paths, a.per, a.batch, a.workers, a.device) if a.side == "diffbench"
               else run_peer(paths, a.device))
        out["peak_rss_mib"] = _peak_mib()
        print(json.dumps(out))
        return
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-alignment-"))
    paths = build(work, a.subjects, a.prompts, a.per, a.refs)
    res = {}
    for side in ("diffbench", "peer"):
        cmd = [sys.executable, __file__, "--side", side, "--paths", json.dumps(paths),
               "--per", str(a.per), "--batch", str(a.batch), "--device", a.device]
        if a.workers is not None:
            cmd += ["--workers", str(a.workers)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    d, p = res["diffbench"], res["peer"]
    print(f"images: {d['images']} (generated + references), device {a.device}, batch {a.batch}")
    for k in d["values"]:
        print(f"{k:7s} diffbench {d['values'][k]:.9f}  peer {p['values'][k]:.9f}  "
              f"|diff| {abs(d['values'][k] - p['values'][k]):.2e}")
    for name, r in res.items():
        print(f"{name:9s} load {r['load_s']:6.2f} s  score {r['score_s']:7.2f} s  "
              f"{r['images'] / r['score_s']:7.2f} images/s  peak RSS {r['peak_rss_mib']:7.0f} MiB")
    print(f"speed ratio (scoring, diffbench / peer): {p['score_s'] / d['score_s']:.2f}x")


if __name__ == "__main__":
    main()
