"""The ``paired`` family: SSIM and LPIPS of each generated image against its own ground truth.

Each generated image belongs to a dataset item whose ``refs["gt"]`` is its ground truth (the
person image in a paired try-on task). One pass decodes both images once, in loader workers, and
applies each distinct preparation the protocol asks for (`Prep`: ground-truth resize, JPEG round
trip, evaluation size, all with PIL as the published scripts do); SSIM (float64) and LPIPS then
run batched on the device. Per-image values are kept: the mean gets a percentile-bootstrap CI when
asked, and the record lists the worst images.

Under torchrun each rank scores whole global batches (`TaskInputs.shard`) and the per-image values
are gathered back in order, so every rank returns the numbers of a one-process run.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from diffbench.data.images import load_rgb
from diffbench.data.vton_reals import prediction_size, prepare_gt
from diffbench.errors import ConfigError, DataError, DiffbenchError, MetricInputError
from diffbench.log import progress
from diffbench.metrics.bootstrap import bootstrap_ci
from diffbench.scoring.base import EvalContext, FamilyResult, TaskInputs, metric_entry

GT_RESIZES = ("none", "lanczos-height", "bilinear")
SSIM_ARGS = {"color": "rgb", "data_range": 1.0, "sigma": 1.5, "k1": 0.01, "k2": 0.03,
             "border": "valid"}
LPIPS_ARGS = {"net": "alex"}
PREP_ARGS = {"gt_resize": "none", "gt_jpeg_quality": None, "eval_size": None}
# Pixels of the image pairs per LPIPS call. CPU: measured (1 thread, SqueezeNet, channels-last)
# one 512x384 or 1024x768 pair per call is fastest (0.09 s, 0.69 s per pair; 4 per call 0.17 s,
# 0.83 s): activations stay in cache. Smaller images are grouped up to the same pixel count.
LPIPS_PIXELS = {"cpu": 512 * 384, "cuda": 64 * 1024 * 768}
BOOTSTRAP_SEED = 0
WORST = 5
_NETS: OrderedDict[tuple, Any] = OrderedDict()


@dataclass(frozen=True)
class Prep:
    """How a (ground truth, prediction) pair is brought to the size a metric compares at."""

    gt_resize: str = "none"
    gt_jpeg_quality: int | None = None
    eval_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class Plan:
    """One metric: its preparation and settings."""

    metric: str
    prep: Prep
    settings: tuple[tuple[str, Any], ...]

    def get(self, name: str) -> Any:
        """A setting by name."""
        return dict(self.settings)[name]


def plan(metric: str, args: dict[str, Any]) -> Plan:
    """Validate a metric's protocol settings (with suite arguments laid over them)."""
    own = SSIM_ARGS if metric == "ssim" else LPIPS_ARGS
    unknown = set(args) - set(own) - set(PREP_ARGS) - {"library"}
    if unknown:
        raise ConfigError(f"metric {metric}: unknown arguments {sorted(unknown)}; allowed: "
                          f"{', '.join([*own, *PREP_ARGS])}")
    merged = {**PREP_ARGS, **own, **args}
    if merged["gt_resize"] not in GT_RESIZES:
        raise ConfigError(f"metric {metric}: gt_resize {merged['gt_resize']!r} is not one of "
                          f"{', '.join(GT_RESIZES)}")
    size = merged["eval_size"]
    if size is not None and (len(size) != 2 or min(int(s) for s in size) < 1):
        raise ConfigError(f"metric {metric}: eval_size must be [height, width], got {size!r}")
    if metric == "ssim" and merged["color"] not in ("rgb", "gray"):
        raise ConfigError(f"metric ssim: color {merged['color']!r} is not rgb or gray")
    prep = Prep(merged["gt_resize"], merged["gt_jpeg_quality"],
                tuple(int(s) for s in size) if size is not None else None)
    settings = tuple(sorted((k, v) for k, v in merged.items() if k in own))
    return Plan(metric, prep, settings)


def _pil_resize(arr: np.ndarray, size_wh: tuple[int, int], resample: int) -> np.ndarray:
    if (arr.shape[1], arr.shape[0]) == size_wh:
        return arr  # PIL returns an unchanged copy for the same size
    return np.asarray(Image.fromarray(arr).resize(size_wh, resample))


def prepare(gt: np.ndarray, pred: np.ndarray, prep: Prep, gt_path: str,
            key: str) -> tuple[np.ndarray, np.ndarray]:
    """The pair as `prep` compares it (uint8 H×W×3 each, same size), or a one-line error.

    A resized ground truth is prepared from its file (`vton_reals.prepare_gt`: resized in its own
    mode, re-saved when ``gt_jpeg_quality`` is set), as the scripts read it.
    """
    hp, wp = pred.shape[:2]
    if prep.gt_resize == "lanczos-height" and gt.shape[0] != hp:
        # CatVTON's copy_resize_gt: LANCZOS to the prediction's height, aspect kept, re-saved
        gt = prepare_gt(gt_path, hp, prep.gt_jpeg_quality)
    elif prep.gt_resize == "bilinear" and gt.shape != pred.shape:
        gt = prepare_gt(gt_path, hp, prep.gt_jpeg_quality, width=wp, resample=Image.BILINEAR)
    if prep.eval_size is not None:
        size_wh = (prep.eval_size[1], prep.eval_size[0])
        gt = _pil_resize(gt, size_wh, Image.BILINEAR)
        pred = _pil_resize(pred, size_wh, Image.BILINEAR)
    if gt.shape != pred.shape:
        raise MetricInputError(
            f"{key}: generated image is {pred.shape[1]}x{pred.shape[0]} but its ground truth "
            f"{gt_path} is {gt.shape[1]}x{gt.shape[0]} (after the protocol's gt_resize "
            f"'{prep.gt_resize}'); generate at the dataset's resolution or use a protocol that "
            "resizes (catvton, ladi, hr-viton)")
    return gt, pred


class _Pairs(Dataset):
    """Decode each pair once and apply every distinct preparation (runs in loader workers)."""

    def __init__(self, rows: list[tuple[str, str, str]], preps: list[Prep]):
        self.rows, self.preps = rows, preps

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        key, gen, gt_path = self.rows[i]
        try:
            if not Path(gen).is_file():
                raise DataError(f"{gen}: the generated image of '{key}' is missing; rerun the "
                                "task (generation resumes and fills it in)")
            gt, pred = load_rgb(gt_path), load_rgb(gen)
            return [prepare(gt, pred, p, gt_path, key) for p in self.preps], None
        except DiffbenchError as exc:
            return None, exc


def _collate(rows):
    return rows


def _rows(inputs: TaskInputs, metrics: list[str]) -> list[tuple[str, str, str]]:
    rows = []
    for key in inputs.samples.keys:
        item = inputs.item(key)
        gt = item.refs.get("gt")
        if not gt:
            raise MetricInputError(
                f"task {inputs.name}: {', '.join(metrics)} compare each image with its ground "
                f"truth, but item '{item.key}' has none (refs.gt); paired metrics need a paired "
                "task (e.g. vitonhd/dresscode with pairing: paired)")
        if not Path(gt).is_file():
            raise DataError(f"{gt}: ground truth of '{item.key}' not found; is --data pointing "
                            "at the dataset the images were generated for?")
        rows.append((key, str(inputs.samples.path(key)), str(gt)))
    if not rows:
        raise DataError(f"task {inputs.name}: no generated images to score")
    return rows


def lpips_net(net: str, ctx: EvalContext):
    """The LPIPS network of `net` with resolved weights (kept loaded across sweep points)."""
    from diffbench.metrics.lpips import BACKBONE_WEIGHTS, LPIPSNet
    from diffbench.weights import resolve

    path = Path(resolve(BACKBONE_WEIGHTS[net], dict(ctx.weights)))
    linear = ctx.weights.get(f"lpips-lin-{net}")
    st = path.stat()
    key = (net, str(path.resolve()), st.st_size, st.st_mtime_ns, linear, ctx.device)
    if key not in _NETS:
        _NETS[key] = LPIPSNet(net, path, linear).to(ctx.device)
        while len(_NETS) > 3:
            _NETS.popitem(last=False)
    _NETS.move_to_end(key)
    return _NETS[key]


def _ssim_values(p: Plan, gt: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    from diffbench.metrics.ssim import pil_gray, ssim_batch

    if p.get("color") == "gray":
        gt, pred = pil_gray(gt), pil_gray(pred)
    unit = float(p.get("data_range")) / 255.0
    return ssim_batch(pred.double() * unit, gt.double() * unit, data_range=float(p.get("data_range")),
                      sigma=float(p.get("sigma")), k1=float(p.get("k1")), k2=float(p.get("k2")),
                      border=p.get("border"))


def _lpips_values(net, gt: torch.Tensor, pred: torch.Tensor, device: str) -> torch.Tensor:
    # (x/255)*2-1 in float32: ToTensor then the scripts' [-1, 1] mapping
    budget = LPIPS_PIXELS["cuda" if device.startswith("cuda") else "cpu"]
    chunk = max(1, budget // (gt.shape[-2] * gt.shape[-1]))
    out = [net((gt[i:i + chunk].float() / 255) * 2 - 1, (pred[i:i + chunk].float() / 255) * 2 - 1)
           for i in range(0, gt.shape[0], chunk)]
    return torch.cat(out).double()


def _score(rows, plans: list[Plan], ctx: EvalContext, nets: dict[str, Any]) -> np.ndarray:
    """Per-pair values (len(rows) × len(plans), float64) of this process's rows."""
    from diffbench.cpu import default_workers

    preps = list(dict.fromkeys(p.prep for p in plans))
    workers = default_workers() if ctx.workers is None else ctx.workers
    loader = DataLoader(_Pairs(rows, preps), batch_size=ctx.batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_collate,
                        prefetch_factor=2 if workers else None)
    out = np.empty((len(rows), len(plans)))
    done = 0
    for batch in progress(loader, desc="paired metrics", total=len(rows), unit="pairs",
                          count=len):
        for _, err in batch:
            if err is not None:
                raise err
        for j, p in enumerate(plans):
            k = preps.index(p.prep)
            start = done
            # one stacked call per run of equally sized pairs (sizes rarely differ)
            for group in _same_size([b[0][k] for b in batch]):
                gt = torch.from_numpy(np.stack([g for g, _ in group])).permute(0, 3, 1, 2)
                pred = torch.from_numpy(np.stack([q for _, q in group])).permute(0, 3, 1, 2)
                gt, pred = gt.to(ctx.device), pred.to(ctx.device)
                vals = (_ssim_values(p, gt, pred) if p.metric == "ssim"
                        else _lpips_values(nets[p.get("net")], gt, pred, ctx.device))
                out[start:start + len(group), j] = vals.cpu().numpy()
                start += len(group)
        done += len(batch)
    return out


def _same_size(pairs: list[tuple[np.ndarray, np.ndarray]]):
    group: list = []
    for pair in pairs:
        if group and pair[0].shape != group[0][0].shape:
            yield group
            group = []
        group.append(pair)
    if group:
        yield group


def _entry(p: Plan, values: np.ndarray, keys: list[str], inputs: TaskInputs, ctx: EvalContext,
           fp: str | None) -> dict[str, Any]:
    from diffbench.registry import METRICS

    higher = bool(METRICS.get(p.metric).higher_is_better)
    ci = None
    if ctx.bootstrap and len(values) >= 2:
        low, high, _ = bootstrap_ci(lambda r: float(r.mean()), values, ctx.bootstrap,
                                    BOOTSTRAP_SEED)
        ci = {"low": low, "high": high, "level": 0.95, "n": ctx.bootstrap,
              "method": "percentile bootstrap over generated images"}
    order = np.argsort(values if higher else -values, kind="stable")[:WORST]
    return metric_entry(float(values.mean()), higher_is_better=higher,
                        protocol=inputs.protocol.name, n={"generated": len(values)},
                        extractor=fp, ci=ci, settings={**dict(p.settings), **p.prep.__dict__},
                        sample_std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                        worst={keys[i]: float(values[i]) for i in order})


def evaluate(metrics: list[str], inputs: TaskInputs, ctx: EvalContext) -> FamilyResult:
    """Score the task's paired metrics; every rank returns the same result."""
    from diffbench import dist
    from diffbench.features.base import fingerprint_hash

    plans = [plan(m, inputs.args(m)) for m in metrics]
    rows = _rows(inputs, metrics)
    if any(p.prep.gt_resize == "lanczos-height" for p in plans):
        # CatVTON scores at one height; refuse mixed sizes before decoding any pair.
        prediction_size([Path(r[1]) for r in rows], f"task {inputs.name}", inputs.protocol.name)
    nets = {n: lpips_net(n, ctx) for n in dict.fromkeys(p.get("net") for p in plans
                                                          if p.metric == "lpips")}
    start = time.perf_counter()
    mine = inputs.shard(len(rows), ctx.rank, ctx.world_size, ctx.batch_size)
    values = _score([rows[i] for i in mine], plans, ctx, nets)
    if ctx.world_size > 1:
        values = dist.gather_rows(values, mine, len(rows))
    seconds = time.perf_counter() - start
    fps = {n: net.fingerprint() for n, net in nets.items()}
    out = FamilyResult(extractors={fp["extractor"]: fp for fp in fps.values()},
                       counts={"scored": len(rows)}, timings={"paired": round(seconds, 3)},
                       notes=[])
    keys = [r[0] for r in rows]
    for j, p in enumerate(plans):
        fp = fingerprint_hash(fps[p.get("net")]) if p.metric == "lpips" else None
        out.metrics[p.metric] = _entry(p, values[:, j], keys, inputs, ctx, fp)
    return out
