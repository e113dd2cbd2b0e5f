"""Personalization protocols: DreamBench as the DreamBooth paper scores it, and DCO's variant.

``dreambench``: DINO = cosine of DINO ViT-S/16 CLS embeddings (official eval transform: Resize 256
bicubic on the shorter side, CenterCrop 224, ImageNet mean/std), CLIP-I = cosine of OpenAI CLIP
ViT-B/32 image embeddings (open_clip ``ViT-B-32-quickgelu``, its eval transform: Resize 224
bicubic, CenterCrop 224, OpenAI mean/std), both over all (generated, reference) pairs of a subject;
CLIP-T = cosine of a generated image with its prompt without the unique token ("a dog in the
jungle"). Raw cosines (0–1), as DreamBooth's Table 1 prints them.

``dco``: DCO (Lee et al., NeurIPS 2024) reports image similarity with DINOv2 and image–text
similarity with SigLIP (from a summary of the paper; sizes and preprocessing unverified). The preset
uses DINOv2 ViT-S/14 (timm, 224 input after the DINO eval crop) and SigLIP ViT-B/16 (WebLI,
open_clip, squash resize to 224, mean = std = 0.5), and keeps DINO/CLIP-I/CLIP-T as in
``dreambench`` so both axes can be drawn with either family.
"""

from __future__ import annotations

from diffbench.protocols import Protocol

# The same constants as diffbench.features.dino/clip (a test checks); written out so that listing
# protocols does not import torch.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)

_DINO_CROP = {"resize": 256, "crop": 224, "resize_mode": "shortest", "interpolation": "bicubic",
              "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
_CLIP = {"extractor": "clip", "model": "ViT-B-32-quickgelu", "weights": "clip-vit-b-32-openai",
         "resize_mode": "shortest", "interpolation": "bicubic", "mean": list(OPENAI_MEAN),
         "std": list(OPENAI_STD), "average": "subject"}
_SIGLIP = {"extractor": "clip", "model": "ViT-B-16-SigLIP", "weights": "siglip-vit-b-16-webli",
           "resize_mode": "squash", "interpolation": "bicubic", "mean": list(SIGLIP_MEAN),
           "std": list(SIGLIP_STD), "average": "subject"}

DREAMBENCH_PARAMS = {
    "dino": {"extractor": "dino", "arch": "vit_small_patch16_224.dino", "weights": "dino-vits16",
             **_DINO_CROP, "average": "subject"},
    "clip_i": dict(_CLIP),
    "clip_t": {**_CLIP, "text": "base_prompt"},
}

DREAMBENCH = Protocol(
    name="dreambench",
    summary="DreamBooth paper (Table 1): DINO ViT-S/16 CLS and CLIP ViT-B/32 (OpenAI, QuickGELU) "
            "image cosines over generated x reference pairs per subject, CLIP-T on the prompt "
            "without the token; raw cosines, per-subject then overall mean",
    resize="per-metric (params)",
    metrics=("dino", "clip_i", "clip_t"),
    extractor="per-metric",
    layers={},
    params=DREAMBENCH_PARAMS,
    notes="DreamBooth gives no seeds and no CLIP variant in its repository; ViT-B/32 is what most "
          "re-implementations use. The real-image oracle (references against each other, no "
          "self-pairs) is reported as its own row.",
)

DCO = Protocol(
    name="dco",
    summary="DCO-style fronts: DINOv2 ViT-S/14 CLS (image similarity) and SigLIP ViT-B/16 "
            "(image-text similarity), plus the DreamBench DINO/CLIP metrics",
    resize="per-metric (params)",
    metrics=("dino", "clip_i", "clip_t", "dinov2", "siglip_i", "siglip_t"),
    extractor="per-metric",
    layers={},
    params={
        **DREAMBENCH_PARAMS,
        "dinov2": {"extractor": "dino", "arch": "vit_small_patch14_dinov2.lvd142m",
                   "weights": "dinov2-vits14", **_DINO_CROP, "average": "subject"},
        "siglip_i": dict(_SIGLIP),
        "siglip_t": {**_SIGLIP, "text": "base_prompt"},
    },
    notes="Which DINOv2 and SigLIP sizes, preprocessing, prompts and counts the DCO paper used is "
          "unverified (its repository ships no evaluation code); this preset is a reasonable, "
          "recorded choice, not a reproduction of the paper's numbers. timm resamples DINOv2's "
          "position embeddings to 224 once; torch.hub DINOv2 interpolates them per forward.",
)

PROTOCOLS = {p.name: p for p in (DREAMBENCH, DCO)}
