"""Virtual try-on protocols: the scripts behind the published VITON-HD / DressCode tables.

Every try-on paper scores with some codebase's script, and the scripts disagree (see the README's
try-on section): LPIPS backbone, SSIM on RGB or gray, the evaluation resolution, the KID scale.
Each preset below fixes all of them; SSIM/LPIPS settings live in ``params`` and are read by the
``paired`` family (`diffbench.scoring.paired`), FID/KID use clean-fid's resize and KID definition.

Image preparation keys (in both ``ssim`` and ``lpips`` params):

- ``gt_resize``: how the ground truth is brought to the prediction's size when they differ —
  ``lanczos-height`` (CatVTON: LANCZOS to the prediction's height, width ``int(w·H/h)``),
  ``bilinear`` (HR-VITON: PIL bilinear to the prediction's size) or ``none`` (sizes must match);
- ``gt_jpeg_quality``: CatVTON's ``copy_resize_gt`` re-saves the resized ground truth with PIL's
  defaults for its extension (``.jpg``: JPEG quality 75) before scoring; the preset repeats that
  round trip in memory (only when it resized; `diffbench.data.vton_reals.prepare_gt`);
- ``eval_size``: ``[H, W]`` both images are resized to with PIL bilinear (torchvision's
  ``Resize`` on PIL images), or ``null`` for the prediction's size.

FID/KID's real set (``reals`` params, read by `diffbench.data.vton_reals`): the persons of the
task's pairs, prepared as the script prepares them before clean-fid reads them: CatVTON's copy
resized to the predictions' height and re-saved (JPEG q75), LaDI's files as they are.
"""

from __future__ import annotations

from diffbench.protocols import CLEAN_FID, Protocol

_KID = CLEAN_FID.param("kid")
_SSIM_TM = {"color": "rgb", "data_range": 1.0, "sigma": 1.5, "k1": 0.01, "k2": 0.03,
            "border": "valid"}

CATVTON = Protocol(
    name="catvton",
    summary="CatVTON eval.py (also Leffa's VtonEval): SSIM torchmetrics RGB [0,1], LPIPS "
            "SqueezeNet on [-1,1], GT LANCZOS-resized to the prediction's height, clean-fid "
            "FID and KID x1000",
    resize="clean",
    metrics=("fid", "kid", "ssim", "lpips"),
    params={
        "ssim": {**_SSIM_TM, "gt_resize": "lanczos-height", "gt_jpeg_quality": 75,
                 "eval_size": None},
        "lpips": {"net": "squeeze", "gt_resize": "lanczos-height", "gt_jpeg_quality": 75,
                  "eval_size": None},
        "kid": {**_KID, "scale": 1000},
        "reals": {"gt_resize": "lanczos-height", "gt_jpeg_quality": 75,
                  "script": "CatVTON eval.py copy_resize_gt: FID/KID read the resized copy"},
    },
    notes="SSIM border 'valid': torchmetrics <= 1.4.1 (current when eval.py was written, "
          "2024-08) averages the map without the reflect-padded border; torchmetrics >= 1.4.2 "
          "averages the whole map (set ssim args border: reflect to get that). clean-fid draws "
          "KID subsets from an unseeded RNG; diffbench seeds them. FID/KID reals: the real test "
          "person images of the task (never DressCode garments), LANCZOS-resized to the "
          "predictions' height and re-saved as JPEG q75 when heights differ, as eval.py's "
          "copy_resize_gt leaves them; mixed prediction sizes are refused.",
)

LADI = Protocol(
    name="ladi",
    summary="LaDI-VTON val_metrics.py (also OOTDiffusion, TryOn-Adapter): SSIM torchmetrics RGB "
            "and LPIPS AlexNet, both images resized to 512x384; clean-fid FID and raw KID",
    resize="clean",
    metrics=("fid", "kid", "ssim", "lpips"),
    params={
        "ssim": {**_SSIM_TM, "gt_resize": "none", "gt_jpeg_quality": None,
                 "eval_size": [512, 384]},
        "lpips": {"net": "alex", "gt_resize": "none", "gt_jpeg_quality": None,
                  "eval_size": [512, 384]},
        "kid": {**_KID, "scale": 1},
        "reals": {"gt_resize": "none",
                  "script": "LaDI-VTON generate_fid_stats.py: clean-fid custom statistics of "
                            "the original files"},
    },
    notes="LaDI pins torchmetrics 0.11.4 (SSIM border 'valid') and calls LPIPS with "
          "normalize=True on [0,1] inputs, the same as [-1,1] without it. Its FID/KID reference "
          "is clean-fid custom statistics of test/image (VITON-HD) or the first column of "
          "test_pairs_paired.txt (DressCode).",
)

HR_VITON = Protocol(
    name="hr-viton",
    summary="HR-VITON evaluate.py (also DCI-VTON's SSIM/LPIPS): scikit-image SSIM on PIL "
            "grayscale uint8 (Gaussian weights, population covariance, range 255), LPIPS AlexNet "
            "v0.1 on both images resized to 128x128; GT bilinear-resized to the prediction",
    resize="clean",
    metrics=("ssim", "lpips"),
    params={
        "ssim": {"color": "gray", "data_range": 255.0, "sigma": 1.5, "k1": 0.01, "k2": 0.03,
                 "border": "valid", "gt_resize": "bilinear", "gt_jpeg_quality": None,
                 "eval_size": None},
        "lpips": {"net": "alex", "gt_resize": "bilinear", "gt_jpeg_quality": None,
                  "eval_size": [128, 128]},
    },
    notes="HR-VITON's script has no FID/KID (DCI-VTON took them from torch-fidelity: use the "
          "torch-fidelity protocol for those metrics). Its average divides by the number of "
          "ground-truth files, not of pairs; diffbench divides by the pairs.",
)
