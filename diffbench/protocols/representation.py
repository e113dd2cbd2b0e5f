"""Protocols of the metrics on other networks' features: ``edm2``, ``dgm-eval`` and ``cmmd``.

- ``edm2``: NVlabs/edm2 ``calculate_metrics.py``: FID on the 2015 Inception (the same network and
  TF1 bilinear resize as the other Inception protocols) and FD_DINOv2 with
  ``DINOv2Detector(resize_mode='torch')``.
- ``dgm-eval``: layer6ai-labs/dgm-eval (Stein et al., NeurIPS 2023) on DINOv2 ViT-L/14 with the
  PIL bicubic resize (EDM2's ``resize_mode='pil'``): FD and precision/recall/density/coverage
  with its ``nearest_k`` 5 on at most ``reduced_n`` 10000 rows per side. Its input settings
  (``--protocol-arg``): ``clean_resize`` (per-channel float PIL bicubic, no uint8 rounding),
  ``max_images``/``subsample_seed`` (at most 50000 images per set, drawn as dgm-eval draws
  them: `diffbench.data.subset`) and ``arch`` (the DINOv2 size).
- ``cmmd``: google-research/cmmd (Jayasumana et al., CVPR 2024).
"""

from __future__ import annotations

from diffbench.protocols import Protocol

EDM2 = Protocol(
    name="edm2",
    summary="NVlabs/edm2 calculate_metrics.py: FID on the 2015 Inception (TF1 bilinear) and "
            "FD_DINOv2 (ViT-L/14, torch bicubic antialiased resize to 224)",
    resize="tf-bilinear",
    metrics=("fid", "fd_dinov2"),
    params={"fd_dinov2": {"resize_mode": "torch"}},
    notes="EDM2 loads DINOv2 through torch.hub (facebookresearch/dinov2:main, dinov2_vitl14); "
          "diffbench loads the same weights file into its own copy of that architecture. Its "
          "FID network is NVIDIA's pickle of the same 2015 Inception.",
)

# dgm-eval's two-set metrics: those its command line computes by default, then fd_eff and the
# per-fake realism score (asked with --metrics); all read the protocol's DINOv2 class token.
_DGM_METRICS = ("fd_dinov2", "prdc", "fd_infinity", "kd", "vendi_per_class", "authpct",
                "sw_approx", "vendi", "fd_eff", "realism")
# its memorization metrics: the training set's rows beside the held-out reference's
_DGM_TRAIN_METRICS = ("ct", "ct_test", "ct_modified", "fls", "fls_overfit")

DGM_EVAL = Protocol(
    name="dgm-eval",
    summary="layer6ai-labs/dgm-eval on DINOv2 ViT-L/14 (PIL bicubic to 224): FD_DINOv2, "
            "precision/recall/density/coverage (k=5, at most 10000 rows per side), FD∞, KD, "
            "Vendi, AuthPct, sliced W2, FD (eig), realism; with a training set C_T and FLS",
    resize="pil",
    metrics=_DGM_METRICS + _DGM_TRAIN_METRICS,
    extractor="dinov2-vitl14",
    layers={m: "dinov2_cls" for m in _DGM_METRICS + _DGM_TRAIN_METRICS},
    params={"fd_dinov2": {"resize_mode": "pil"},
            "prdc": {"nearest_k": 5, "subsample": 10000, "seed": 13579,
                     "features": "protocol"}},
    # dgm-eval's command line: --clean_resize, --nsample 50000 with --seed 13579, --arch
    inputs={"clean_resize": False, "max_images": 50000, "subsample_seed": 13579,
            "arch": "vitl14"},
    notes="dgm-eval draws its PRDC subsets (reduced_n) from numpy's global random state; "
          "diffbench draws them from RandomState(13579) (dgm-eval's default --seed), so the "
          "subset, and with fewer than 10000 images nothing, differs. FD∞, KD and the realism "
          "score's reference subset are unseeded in dgm-eval; diffbench seeds them with 13579 "
          "and records the seed. dgm-eval's default vendi is the mean per-class score "
          "(vendi_per_class, class-conditional runs; NaN on a flat folder); vendi is the whole "
          "generated set's. ct, ct_test, ct_modified, fls and fls_overfit read the training images "
          "(reference.train, --train) beside the held-out ones; their PCA/KMeans and FLS "
          "subsets draw from RandomState(13579), unseeded in dgm-eval. Each set holds at most "
          "max_images (50000) images, drawn as dgm-eval draws them (seed subsample_seed); "
          "clean_resize and arch are dgm-eval's --clean_resize and --arch.",
)

CMMD = Protocol(
    name="cmmd",
    summary="google-research/cmmd: CLIP ViT-L/14@336px (centre crop, PIL bicubic to 336), "
            "L2-normalised; Gaussian RBF MMD, sigma 10, x1000, biased estimator",
    resize="cmmd",
    metrics=("cmmd",),
    extractor="clip-vit-l-14-336",
    layers={"cmmd": "embed"},
    params={"cmmd": {"sigma": 10.0}},
    notes="The reference computes in JAX float32 with the full kernel matrices; diffbench sums "
          "the kernel in float64 blocks (memory flat in N).",
)
