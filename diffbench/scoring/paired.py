"""The ``paired`` family: SSIM and LPIPS of each generated image against its own ground truth.

A metric writes one entry per output of its spec: its compute function returns the N per-pair
values, or output key → N values when it has several outputs.

Each generated image belongs to a dataset item whose ``refs["gt"]`` is its ground truth (the
person image in a paired try-on task). One pass decodes both images once, in loader workers, and
applies each distinct preparation the protocol asks for (`Prep`: ground-truth resize, JPEG round
trip, evaluation size, all with PIL as the published scripts do); SSIM (float64) and LPIPS then
run batched on the device. Per-image values are kept: the mean gets a percentile-bootstrap CI when
asked, and the record lists the worst images.

Under torchrun each rank scores whole global batches; its shard state is the per-image values,
merged in item order (``cat``, `diffbench.scoring.base.on_my_share`), so every rank returns the
numbers of a one-process run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffbench.data.images import load_rgb
from diffbench.data.vton_reals import prediction_size, prepare_gt
from diffbench.errors import ConfigError, DataError, MetricInputError
from diffbench.metrics.args import PAIRED_PREP_ARGS, check_args
from diffbench.metrics.bootstrap import interval
from diffbench.metrics.spec import get_spec
from diffbench.scoring.base import (
    EvalContext,
    FamilyResult,
    TaskInputs,
    metric_entry,
    on_my_share,
    read_batches,
)

WORST = 5


@dataclass(frozen=True)
class Prep:
    """How a (ground truth, prediction) pair is brought to the size a metric compares at."""

    gt_resize: str = "none"
    gt_jpeg_quality: int | None = None
    eval_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class PairPlan:
    """One metric: its preparation and its own settings."""

    metric: str
    prep: Prep
    settings: tuple[tuple[str, Any], ...]


def plan(metric: str, args: dict[str, Any]) -> PairPlan:
    """Check a metric's protocol settings with the suite's arguments laid over them (its spec's
    schema) and split them into the pair preparation and the metric's own settings."""
    spec = get_spec(metric)
    problems = check_args(spec.args, args)
    if problems:
        raise ConfigError(f"metric {metric}: {'; '.join(problems)}")
    merged = spec.settings(args)
    size = merged["eval_size"]
    prep = Prep(merged["gt_resize"], merged["gt_jpeg_quality"],
                tuple(int(s) for s in size) if size is not None else None)
    settings = tuple(sorted((k, v) for k, v in merged.items() if k not in PAIRED_PREP_ARGS))
    return PairPlan(metric, prep, settings)


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


def _read_pair(preps: list[Prep], row: tuple[str, str, str]) -> list[tuple]:
    """One (ground truth, prediction) pair decoded once, prepared as each `Prep` says."""
    key, gen, gt_path = row
    if not Path(gen).is_file():
        raise DataError(f"{gen}: the generated image of '{key}' is missing; rerun the task "
                        "(generation resumes and fills it in)")
    gt, pred = load_rgb(gt_path), load_rgb(gen)
    return [prepare(gt, pred, p, gt_path, key) for p in preps]


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


def _models(plans: list[PairPlan], ctx: EvalContext) -> dict[str, Any]:
    """The networks the metrics compute with (LPIPS), built once with resolved weights."""
    out = {}
    for p in plans:
        spec = get_spec(p.metric)
        if spec.model is not None:
            out[p.metric] = spec.model(dict(p.settings), ctx.weights, ctx.device)
    return out


def _columns(plans: list[PairPlan]) -> list[tuple[int, str]]:
    """(plan index, output key) of each column of the per-pair values."""
    return [(j, o.key) for j, p in enumerate(plans) for o in get_spec(p.metric).outputs]


def _score(rows, plans: list[PairPlan], ctx: EvalContext, models: dict[str, Any]) -> np.ndarray:
    """Per-pair values (len(rows) × the plans' outputs, float64) of this process's rows; a
    compute function returns N values, or output key → N values for several outputs."""
    preps = list(dict.fromkeys(p.prep for p in plans))
    specs = [get_spec(p.metric) for p in plans]
    columns = _columns(plans)
    out = np.empty((len(rows), len(columns)))
    done = 0
    for batch in read_batches(rows, partial(_read_pair, preps), ctx, "paired metrics", "pairs"):
        for j, p in enumerate(plans):
            k = preps.index(p.prep)
            start = done
            # one stacked call per run of equally sized pairs (sizes rarely differ)
            for group in _same_size([b[k] for b in batch]):
                gt = torch.from_numpy(np.stack([g for g, _ in group])).permute(0, 3, 1, 2)
                pred = torch.from_numpy(np.stack([q for _, q in group])).permute(0, 3, 1, 2)
                gt, pred = gt.to(ctx.device), pred.to(ctx.device)
                vals = specs[j].run(gt, pred, model=models.get(p.metric), **dict(p.settings))
                if not isinstance(vals, dict):
                    vals = {specs[j].outputs[0].key: vals}
                for c, (jj, key) in enumerate(columns):
                    if jj == j:
                        out[start:start + len(group), c] = vals[key].cpu().numpy()
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


def _entry(p: PairPlan, output: str, values: np.ndarray, keys: list[str], inputs: TaskInputs,
           ctx: EvalContext, fp: str | None) -> dict[str, Any]:
    higher = get_spec(p.metric).output(output).higher_is_better
    ci = None
    if len(values) >= 2:
        ci = interval(lambda r: float(r.mean()), values, ctx.bootstrap, "generated images")
    order = np.argsort(values if higher else -values, kind="stable")[:WORST]
    return metric_entry(float(values.mean()), higher_is_better=higher,
                        protocol=inputs.protocol.name, n={"generated": len(values)},
                        extractor=fp, ci=ci, settings={**dict(p.settings), **p.prep.__dict__},
                        sample_std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                        worst={keys[i]: float(values[i]) for i in order})


def evaluate(metrics: list[str], inputs: TaskInputs, ctx: EvalContext) -> FamilyResult:
    """Score the task's paired metrics; every rank returns the same result."""
    from diffbench.features.base import fingerprint_hash

    plans = [plan(m, inputs.metric(m).given) for m in metrics]
    rows = _rows(inputs, metrics)
    if any(p.prep.gt_resize == "lanczos-height" for p in plans):
        # CatVTON scores at one height; refuse mixed sizes before decoding any pair.
        prediction_size([Path(r[1]) for r in rows], f"task {inputs.name}", inputs.protocol.name)
    models = _models(plans, ctx)
    start = time.perf_counter()
    values = on_my_share(len(rows), ctx, lambda mine: {
        "values": _score([rows[i] for i in mine], plans, ctx, models)}, {"values": "cat"})["values"]
    seconds = time.perf_counter() - start
    fps = {m: model.fingerprint() for m, model in models.items()}
    out = FamilyResult(extractors={fp["extractor"]: fp for fp in fps.values()},
                       counts={"scored": len(rows)}, timings={"paired": round(seconds, 3)},
                       notes=[])
    keys = [r[0] for r in rows]
    for c, (j, key) in enumerate(_columns(plans)):
        p = plans[j]
        fp = fingerprint_hash(fps[p.metric]) if p.metric in fps else None
        out.metrics[key] = _entry(p, key, values[:, c], keys, inputs, ctx, fp)
    return out
