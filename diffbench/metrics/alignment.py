"""Subject- and prompt-fidelity metrics of personalization (DreamBench): DINO, CLIP-I, CLIP-T.

All are cosine similarities of embeddings, stored raw (0–1 scale; papers after DreamBooth often
print them ×100, recorded as the display scale):

- image metrics (``dino``, ``clip_i``, ``dinov2``, ``siglip_i``): each generated image against
  every reference image of its subject;
- text metrics (``clip_t``, ``siglip_t``): each generated image against its prompt's text.

Averaging (``average``): ``subject`` (default) — per generated image the mean over its subject's
references, per subject the mean over its generated images, overall the mean over subjects;
``image`` — the mean over generated images; ``pair`` — the mean over all (generated, reference)
pairs (subjects with more references weigh more). With DreamBench's equal 25 × 4 images per
subject, ``subject`` and ``image`` agree. The real-image oracle averages each subject's
reference pairs (i ≠ j), then over subjects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diffbench.errors import MetricInputError, shown
from diffbench.metrics.args import FROM_PROTOCOL, Arg
from diffbench.metrics.spec import MetricSpec, Needs, Output

AVERAGES = ("subject", "image", "pair")
TEXTS = ("base_prompt", "prompt", "context")

# Suite arguments (`diffbench.metrics.args`); the protocol's params give the defaults.
_PREP_ARGS = {
    "resize_mode": Arg("str", FROM_PROTOCOL, "shortest: resize the shorter side, then crop; "
                       "squash: resize both sides", choices=("shortest", "squash"),
                       extractor=True),
    "interpolation": Arg("str", FROM_PROTOCOL, "resize filter",
                         choices=("bicubic", "bilinear", "nearest", "lanczos"), extractor=True),
    "mean": Arg("floats", FROM_PROTOCOL, "per-channel mean of the input normalisation",
                extractor=True),
    "std": Arg("floats", FROM_PROTOCOL, "per-channel std of the input normalisation",
               extractor=True),
}
_COMMON_ARGS = {
    "weights": Arg("str", FROM_PROTOCOL, "weights name (`diffbench weights list`, --weights)"),
    "average": Arg("str", "subject", "how per-image scores are averaged", choices=AVERAGES),
    "scale": Arg("float", 100.0, "display scale (values are stored as raw cosines)", minimum=0,
                 display=True),
}
DINO_ARGS = {
    "extractor": Arg("str", "dino", "extractor family", choices=("dino",)),
    "arch": Arg("str", FROM_PROTOCOL, "timm architecture, e.g. vit_small_patch16_224.dino",
                extractor=True),
    "resize": Arg("int", FROM_PROTOCOL, "resize size in pixels", minimum=1, extractor=True),
    "crop": Arg("int", FROM_PROTOCOL, "center crop size (null: no crop)", minimum=1,
                nullable=True, extractor=True),
    **_PREP_ARGS, **_COMMON_ARGS,
}
CLIP_ARGS = {
    "extractor": Arg("str", "clip", "extractor family", choices=("clip",)),
    "model": Arg("str", FROM_PROTOCOL, "open_clip model config, e.g. ViT-B-32-quickgelu",
                 extractor=True),
    "tokenizer": Arg("str", None, "open_clip tokenizer name (null: the model's)",
                     nullable=True, extractor=True),
    **_PREP_ARGS, **_COMMON_ARGS,
}
CLIP_TEXT_ARGS = {
    **CLIP_ARGS,
    "text": Arg("str", "base_prompt", "which text: the prompt without the token (base_prompt), "
                "with it (prompt), or without token and class (context)", choices=TEXTS),
}


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); a zero row is an error."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if (norms == 0).any() or not np.isfinite(norms).all():
        raise MetricInputError("an embedding is zero or not finite; check the weights file")
    return x / norms


def image_scores(generated: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per generated row: the mean cosine with all reference rows."""
    if len(references) == 0:
        raise MetricInputError("a subject has no reference images")
    return (unit_rows(generated) @ unit_rows(references).T).mean(axis=1)


def text_scores(generated: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Per row: the cosine of a generated image with its own text (row-aligned)."""
    return (unit_rows(generated) * unit_rows(texts)).sum(axis=1)


def oracle_scores(references: np.ndarray) -> np.ndarray:
    """Per reference row: the mean cosine with the subject's other references (no self-pairs)."""
    n = len(references)
    if n < 2:
        raise MetricInputError("the real-image oracle needs at least 2 reference images per "
                               f"subject, got {n}")
    u = unit_rows(references)
    sim = u @ u.T
    return (sim.sum(axis=1) - np.diag(sim)) / (n - 1)


def aggregate(scores: np.ndarray, subjects: Sequence[str], average: str = "subject",
              weights: np.ndarray | None = None) -> tuple[float, dict[str, dict[str, float]]]:
    """The overall value and per-subject means of per-image `scores`.

    ``weights`` (``pair`` averaging) is the number of pairs behind each score.
    """
    if average not in AVERAGES:
        raise MetricInputError(f"average {shown(average)}: expected one of {', '.join(AVERAGES)}")
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        raise MetricInputError("no generated images to score")
    subj = np.asarray(subjects)
    per: dict[str, dict[str, float]] = {}
    for s in dict.fromkeys(subjects):
        sel = scores[subj == s]
        per[s] = {"value": float(sel.mean()), "n": int(len(sel))}
    if average == "subject":
        value = float(np.mean([v["value"] for v in per.values()]))
    elif average == "pair" and weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        value = float((scores * w).sum() / w.sum())
    else:
        value = float(scores.mean())
    return value, per


_IMAGES = Needs(against="references")
_TEXT = Needs(against="text")

DINO = MetricSpec(
    name="dino", family="alignment",
    summary="DINO ViT-S/16 CLS cosine of generated vs reference images of the subject (higher "
            "is better)",
    outputs=(Output("dino", "DINO", True, 3, {"abs": 0.01}),),
    compute=image_scores, needs=_IMAGES, args=DINO_ARGS)

CLIP_I = MetricSpec(
    name="clip_i", family="alignment",
    summary="CLIP image-embedding cosine of generated vs reference images of the subject "
            "(higher is better)",
    outputs=(Output("clip_i", "CLIP-I", True, 3, {"abs": 0.01}),),
    compute=image_scores, needs=_IMAGES, args=CLIP_ARGS)

CLIP_T = MetricSpec(
    name="clip_t", family="alignment",
    summary="CLIP cosine of each generated image with its prompt, token removed (higher is "
            "better)",
    # DreamBooth/DCO fronts: prompt fidelity on x, subject fidelity on y
    outputs=(Output("clip_t", "CLIP-T", True, 3, {"abs": 0.005}, pareto=("dino", "clip_i")),),
    compute=text_scores, needs=_TEXT, args=CLIP_TEXT_ARGS)

DINOV2 = MetricSpec(
    name="dinov2", family="alignment",
    summary="DINOv2 CLS cosine of generated vs reference images of the subject (higher is "
            "better)",
    outputs=(Output("dinov2", "DINOv2", True, 3),),
    compute=image_scores, needs=_IMAGES, args=DINO_ARGS)

SIGLIP_I = MetricSpec(
    name="siglip_i", family="alignment",
    summary="SigLIP image-embedding cosine of generated vs reference images (higher is better)",
    outputs=(Output("siglip_i", "SigLIP-I", True, 3),),
    compute=image_scores, needs=_IMAGES, args=CLIP_ARGS)

SIGLIP_T = MetricSpec(
    name="siglip_t", family="alignment",
    summary="SigLIP cosine of each generated image with its prompt, token removed (higher is "
            "better)",
    outputs=(Output("siglip_t", "SigLIP-T", True, 3, pareto=("dinov2", "siglip_i")),),
    compute=text_scores, needs=_TEXT, args=CLIP_TEXT_ARGS)
