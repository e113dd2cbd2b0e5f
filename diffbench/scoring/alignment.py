"""The ``alignment`` family: DINO, CLIP-I, CLIP-T (and DINOv2/SigLIP) of a personalization task.

Each generated image belongs to a dataset item whose refs name its subject, the subject's reference
images and the CLIP-T texts (`diffbench.data.dreambooth`). One pass reads every image once —
generated images and the subjects' references together — and applies every distinct preprocessing
in loader workers; each extractor then runs once per image, whichever metrics share it (CLIP-I
and CLIP-T share the CLIP image embedding). Texts are embedded once per distinct text.

Under torchrun each rank embeds whole global batches of the images; its shard state is one
embedding array per extractor, merged in image order (``cat``, `diffbench.scoring.base.on_my_share`),
and every rank computes the same numbers, bit-identical to one process. Averaging is the
protocol's (``average``; see `diffbench.metrics.alignment`). `oracle` scores the references
against each other.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.data.base import is_task_dataset
from diffbench.data.images import load_rgb
from diffbench.errors import ConfigError, DataError
from diffbench.fsutil import hash_file_into
from diffbench.metrics import alignment as A
from diffbench.metrics.args import check_args
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


@dataclass(frozen=True)
class ExtractorSpec:
    """Which network and preprocessing a metric needs (metrics with equal specs share one)."""

    kind: str
    weights: str
    settings: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class EmbedPlan:
    """How one metric is computed: what it is compared against, with which extractor."""

    metric: str
    against: str
    spec: ExtractorSpec
    average: str
    text: str | None
    scale: float


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def plan(metric: str, args: dict[str, Any]) -> EmbedPlan:
    """The computation of `metric` under its protocol settings and suite arguments (checked
    against its spec's schema)."""
    spec = get_spec(metric)
    problems = check_args(spec.args, args)
    if problems:
        raise ConfigError(f"metric {metric}: {'; '.join(problems)}")
    merged = spec.settings(args)
    if "weights" not in merged:
        raise ConfigError(f"metric {metric}: the protocol gives no extractor settings "
                          f"(extractor: dino|clip, weights: NAME, ...); use a personalization "
                          f"protocol such as dreambench or dco")
    settings = tuple(sorted((k, _freeze(v)) for k, v in merged.items() if spec.args[k].extractor))
    against = spec.needs.against
    return EmbedPlan(metric, against, ExtractorSpec(merged["extractor"], str(merged["weights"]),
                                               settings),
                merged["average"], merged["text"] if against == "text" else None,
                float(merged["scale"]))


def extractor_of(spec: ExtractorSpec, ctx: EvalContext) -> Any:
    """The extractor of `spec`, from the extractor registry (kept loaded across sweep points)."""
    from diffbench.features import build_extractor

    return build_extractor(spec.kind, weights=ctx.weights, device=ctx.device,
                           weights_name=spec.weights, **dict(spec.settings))


def _read_image(preps: list[Any], path: str) -> tuple:
    image = load_rgb(path)
    return tuple(p(image) for p in preps)


def embed_images(paths: list[str], extractors: list[Any], ctx: EvalContext,
                 desc: str = "alignment") -> list[np.ndarray]:
    """float32 embeddings of `paths` by each extractor (its first layer), one read per image."""
    preps = list(dict.fromkeys(e.preprocessor() for e in extractors))
    which = [preps.index(e.preprocessor()) for e in extractors]
    parts: list[list[np.ndarray]] = [[] for _ in extractors]
    for batch in read_batches(paths, partial(_read_image, preps), ctx, desc, "images", 4):
        tensors = [torch.stack(parts) for parts in zip(*batch, strict=True)]
        for j, ext in enumerate(extractors):
            parts[j].append(ext.forward(tensors[which[j]])[ext.layers[0]].numpy())
    return [np.concatenate(p) if p else np.zeros((0, 0), np.float32) for p in parts]


def embed_sharded(paths: list[str], extractors: list[Any], ctx: EvalContext,
                  desc: str) -> list[np.ndarray]:
    """`embed_images` over this rank's whole global batches, merged in image order (``cat``:
    each image stays in the batch it has in a 1-process run, so values are bit-identical)."""
    how = dict.fromkeys(range(len(extractors)), "cat")
    merged = on_my_share(len(paths), ctx, lambda mine: dict(enumerate(embed_images(
        [paths[i] for i in mine], extractors, ctx, desc))), how)
    return [merged[j] for j in how]


@dataclass
class _Sample:
    key: str
    path: str
    subject: str
    refs: list[str]
    texts: dict[str, str]


def _samples(inputs: TaskInputs) -> list[_Sample]:
    out = []
    for key in inputs.samples.keys:
        item = inputs.item(key)
        refs = item.refs
        if not isinstance(refs.get("images"), list) or "subject" not in refs:
            raise DataError(f"task {inputs.name}: item '{item.key}' has no subject reference "
                            "images; alignment metrics (dino, clip_i, clip_t) need a "
                            "personalization reader such as dreambooth")
        texts = {"base_prompt": refs.get("text", item.condition.get("base_prompt", "")),
                 "prompt": item.condition.get("prompt", ""), "context": refs.get("context", "")}
        out.append(_Sample(key, str(inputs.samples.path(key)), str(refs["subject"]),
                           list(refs["images"]), texts))
    return out


def _refs_hash(refs: list[str]) -> str:
    h = hashlib.sha256()
    for path in refs:
        h.update(f"{Path(path).parent.name}/{Path(path).name}\0".encode())
        hash_file_into(h, path)
    return h.hexdigest()


def _ci(per_subject: dict, scores: np.ndarray, p: EmbedPlan, n_boot: int,
        weights: np.ndarray) -> dict[str, Any] | None:
    """Percentile bootstrap over subjects (``subject`` averaging) or generated images."""
    if not n_boot:
        return None
    if p.average == "subject":
        rows = np.array([v["value"] for v in per_subject.values()])
        fn, unit = (lambda r: float(r.mean())), "subjects"
    else:
        rows = np.stack([scores * weights, weights], axis=1)
        fn, unit = (lambda r: float(r[:, 0].sum() / r[:, 1].sum())), "generated images"
    if len(rows) < 2:
        return None
    return interval(fn, rows, n_boot, unit)


def _entry(p: EmbedPlan, output: str, scores: np.ndarray, subjects: list[str], weights: np.ndarray,
           n_refs: dict[str, int], protocol: str, fp: str, n_boot: int,
           n: dict[str, int]) -> dict[str, Any]:
    value, per = A.aggregate(scores, subjects, p.average, weights)
    for s, v in per.items():
        v["n_references"] = n_refs[s]
    details: dict[str, Any] = {"average": p.average, "subjects": per}
    if p.text:
        details["text"] = p.text
    higher = get_spec(p.metric).output(output).higher_is_better  # the spec's, as every family
    return metric_entry(value, higher_is_better=higher, protocol=protocol, n=n, extractor=fp,
                        ci=_ci(per, scores, p, n_boot, weights), scale=p.scale, **details)


def _extractors(plans: list[EmbedPlan], ctx: EvalContext) -> tuple[list[ExtractorSpec], list[Any]]:
    specs = list(dict.fromkeys(p.spec for p in plans))
    return specs, [extractor_of(s, ctx) for s in specs]


def _fingerprints(specs, exts) -> tuple[dict, dict]:
    fps = {s: e.fingerprint() for s, e in zip(specs, exts, strict=True)}
    hashes = {s: e.fingerprint_hash() for s, e in zip(specs, exts, strict=True)}
    return {fps[s]["extractor"]: fps[s] for s in specs}, hashes


def _text_features(p: EmbedPlan, ext: Any, samples: list[_Sample]) -> np.ndarray:
    texts = [s.texts[p.text or "base_prompt"] for s in samples]
    unique = list(dict.fromkeys(texts))
    emb = ext.encode_text(unique)
    return emb[[unique.index(t) for t in texts]]


def evaluate(metrics: list[str], inputs: TaskInputs, ctx: EvalContext) -> FamilyResult:
    """Score the task's alignment metrics; every rank returns the same result."""
    plans = [plan(m, inputs.metric(m).given) for m in metrics]
    samples = _samples(inputs)
    refs = list(dict.fromkeys(r for s in samples for r in s.refs))
    specs, exts = _extractors(plans, ctx)
    start = time.perf_counter()
    paths = [s.path for s in samples] + refs
    feats = dict(zip(specs, embed_sharded(paths, exts, ctx, "alignment"), strict=True))
    seconds = time.perf_counter() - start
    n_gen, row = len(samples), {r: len(samples) + i for i, r in enumerate(refs)}
    subjects = [s.subject for s in samples]
    n_refs = {s.subject: len(s.refs) for s in samples}
    extractors, hashes = _fingerprints(specs, exts)
    n = {"generated": n_gen, "references": len(refs), "subjects": len(n_refs)}
    out = FamilyResult(extractors=extractors, counts={"scored": n_gen},
                       timings={"alignment_embed": round(seconds, 3)},
                       references={"subject_images": {"n": len(refs), "subjects": len(n_refs),
                                                      "sha256": _refs_hash(refs)}})
    for p in plans:
        gen = feats[p.spec][:n_gen]
        weights = np.array([len(s.refs) for s in samples], dtype=np.float64)
        spec = get_spec(p.metric)
        if p.against == "text":
            scores = _outputs(spec, spec.run(gen, _text_features(
                p, exts[specs.index(p.spec)], samples)))
            weights = np.ones(n_gen)
        else:
            scores = {o.key: np.empty(n_gen) for o in spec.outputs}
            for subj in n_refs:
                sel = [i for i, s in enumerate(samples) if s.subject == subj]
                ref_rows = [row[r] for r in samples[sel[0]].refs]
                for key, part in _outputs(spec, spec.run(gen[sel],
                                                         feats[p.spec][ref_rows])).items():
                    scores[key][sel] = part
        for key, values in scores.items():
            out.metrics[key] = _entry(p, key, values, subjects, weights, n_refs,
                                      inputs.protocol.name, hashes[p.spec], ctx.bootstrap, n)
    return out


def _outputs(spec: Any, result: Any) -> dict[str, np.ndarray]:
    """A compute result as output key → per-row values (a bare array for one output)."""
    return dict(result) if isinstance(result, dict) else {spec.outputs[0].key: result}


def oracle(metrics: list[str], inputs: TaskInputs, ctx: EvalContext) -> FamilyResult:
    """The real-image oracle: each subject's references against each other (no self-pairs)."""
    if not is_task_dataset(inputs.dataset):
        raise DataError(f"task {inputs.name}: the oracle needs the task dataset's subjects")
    plans = [p for p in (plan(m, inputs.metric(m).given) for m in metrics) if p.against == "references"]
    out = FamilyResult(notes=[f"{m}: not defined for the real-image oracle (no prompt)"
                              for m in metrics if m not in {p.metric for p in plans}])
    if not plans:
        return out
    by_subject: dict[str, list[str]] = {}
    for item in inputs.dataset.items():
        by_subject.setdefault(str(item.refs["subject"]), list(item.refs["images"]))
    refs = [r for paths in by_subject.values() for r in paths]
    specs, exts = _extractors(plans, ctx)
    feats = dict(zip(specs, embed_sharded(refs, exts, ctx, "oracle"), strict=True))
    out.extractors, hashes = _fingerprints(specs, exts)
    subjects = [s for s, paths in by_subject.items() for _ in paths]
    n_refs = {s: len(paths) for s, paths in by_subject.items()}
    weights = np.array([n_refs[s] - 1 for s in subjects], dtype=np.float64)
    n = {"references": len(refs), "subjects": len(by_subject)}
    out.counts, out.references = {"scored": len(refs)}, {
        "subject_images": {"n": len(refs), "subjects": len(by_subject), "sha256": _refs_hash(refs)}}
    for p in plans:
        scores, start = np.empty(len(refs)), 0
        for paths in by_subject.values():
            scores[start:start + len(paths)] = A.oracle_scores(
                feats[p.spec][start:start + len(paths)])
            start += len(paths)
        key = get_spec(p.metric).outputs[0].key  # the oracle of the first output
        out.metrics[key] = _entry(p, key, scores, subjects, weights, n_refs, inputs.protocol.name,
                                  hashes[p.spec], ctx.bootstrap, n)
        out.metrics[key]["details"]["oracle"] = True
    return out
