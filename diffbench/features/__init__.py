"""Feature extractors and their preprocessing; `build_extractor` makes the one a protocol or a
metric names, through the extractor registry (`diffbench.registry.EXTRACTORS`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from diffbench.features import weights_names as names

# Feature dimensions of the layers Fréchet distances are computed on (a test checks them against
# the extractors): the bias warning of a Fréchet distance from few images is given before any
# image is read.
LAYER_DIMS = {"pool3": 2048, "sfid": 2023, "features": 64, "dinov2_cls": 1024}
# where a layer's width depends on the extractor: the DINOv2 sizes' class tokens (the embed_dim
# of `diffbench.features.dinov2_vit.SIZES`, which a test compares with these)
EXTRACTOR_LAYER_DIMS = {(names.DINOV2[size], "dinov2_cls"): dim for size, dim in
                        zip(names.DINOV2_SIZES, (384, 768, 1024, 1536), strict=True)}


def layer_dim(extractor: str, layer: str) -> int | None:
    """The feature width of `layer` of `extractor` (None: not known without building it)."""
    return EXTRACTOR_LAYER_DIMS.get((extractor, layer), LAYER_DIMS.get(layer))


def build_extractor(name: str, resize: str = "tf-bilinear", weights: Mapping[str, str] | None = None,
                    device: str = "cpu", **options: Any) -> Any:
    """The extractor `name` with verified weights (see diffbench.weights).

    Extractors are found by name in `diffbench.registry.EXTRACTORS` (plugins add theirs with the
    ``diffbench.extractors`` entry point): each entry is ``build(resize, weights, device,
    **options)`` (the alignment extractors ``clip`` and ``dino`` take ``weights_name`` and their
    network and preprocessing settings). The builders here are named ``build_<name>``: a
    plain ``digits`` would be replaced by the submodule ``diffbench.features.digits`` as soon as
    that is imported.
    """
    from diffbench.registry import EXTRACTORS

    return EXTRACTORS.get(name)(resize, dict(weights or {}), device, **options)


_KEPT: OrderedDict[tuple, Any] = OrderedDict()  # alignment extractors, across sweep points


def _kept(kind: str, name: str, weights: dict[str, str], device: str,
          settings: dict[str, Any], make: Callable[[Path], Any]) -> Any:
    """`make(path)` for the resolved weights `name`, kept loaded (the last 4) while the weights
    file is unchanged."""
    from diffbench import weights as w

    path = Path(w.resolve(name, weights))
    st = path.stat()
    key = (kind, name, str(path.resolve()), st.st_size, st.st_mtime_ns, device,
           tuple(sorted(settings.items())))
    if key not in _KEPT:
        _KEPT[key] = make(path)
        while len(_KEPT) > 4:
            _KEPT.popitem(last=False)
    _KEPT.move_to_end(key)
    return _KEPT[key]


def build_clip(resize: str, weights: dict[str, str], device: str, *, weights_name: str,
               **settings: Any) -> Any:
    """An (open_)CLIP image and text tower: CLIP-I, CLIP-T, SigLIP."""
    from diffbench.features.clip import ClipExtractor

    return _kept("clip", weights_name, weights, device, settings, lambda path: ClipExtractor(
        path, name=weights_name, weights_name=weights_name, device=device, **settings))


def build_dino(resize: str, weights: dict[str, str], device: str, *, weights_name: str,
               **settings: Any) -> Any:
    """A DINO / DINOv2 ViT: the DINO subject-fidelity scores."""
    from diffbench.features.dino import DinoExtractor

    return _kept("dino", weights_name, weights, device, settings, lambda path: DinoExtractor(
        path, name=weights_name, device=device, **settings))


def loads(weights_name: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the weights (registry name, `diffbench.weights`) an extractor builder loads, as
    its ``weights_name`` attribute: preflight reads it without building the network."""
    def mark(build: Callable[..., Any]) -> Callable[..., Any]:
        build.weights_name = weights_name  # type: ignore[attr-defined]
        return build
    return mark


def extractor_weights(name: str) -> str | None:
    """The weights registry name extractor `name` loads (None: shipped weights, or a plugin's
    builder that does not declare them), read without building the network."""
    from diffbench.registry import EXTRACTORS

    return getattr(EXTRACTORS.get(name), "weights_name", None)


@loads(names.INCEPTION)
def build_inception(resize: str, weights: dict[str, str], device: str) -> Any:
    """The 2015 TF Inception (torch-fidelity's port): FID, sFID, KID, IS, precision/recall."""
    from diffbench import weights as w
    from diffbench.features.inception import InceptionExtractor

    return InceptionExtractor(w.resolve(build_inception.weights_name, weights), resize=resize,
                              device=device)


@loads(names.VGG16)
def build_vgg16(resize: str, weights: dict[str, str], device: str) -> Any:
    """torchvision VGG16 fc2_relu at 224 px: torch-fidelity's precision/recall features."""
    from diffbench import weights as w
    from diffbench.features.vgg16 import VGG16Extractor

    return VGG16Extractor(w.resolve(build_vgg16.weights_name, weights), device=device)


@loads(None)  # shipped with diffbench
def build_digits(resize: str, weights: dict[str, str], device: str) -> Any:
    """The offline demo's digits classifier (shipped weights): 64-d features and 10-way logits."""
    from diffbench.features.digits import DEFAULT_WEIGHTS, DigitsExtractor

    return DigitsExtractor(weights.get("digits-classifier", DEFAULT_WEIGHTS), device=device)


def _dinov2_builder(size: str) -> Callable[..., Any]:
    """The builder of the DINOv2 ``size`` backbone's class token at 224 px (resize ``torch``,
    ``pil`` or ``clean``): FD_DINOv2, PRDC and dgm-eval's metrics."""
    @loads(names.DINOV2[size])
    def build(resize: str, weights: dict[str, str], device: str) -> Any:
        from diffbench import weights as w
        from diffbench.features.dinov2 import DinoV2Extractor

        return DinoV2Extractor(w.resolve(names.DINOV2[size], weights), resize_mode=resize,
                               device=device, size=size)

    build.__name__ = build.__qualname__ = f"build_dinov2_{size}"
    build.__doc__ = f"DINOv2 {size} class token at 224 px: FD_DINOv2, PRDC, dgm-eval's metrics."
    return build


build_dinov2_vits14 = _dinov2_builder("vits14")
build_dinov2_vitb14 = _dinov2_builder("vitb14")
build_dinov2_vitl14 = _dinov2_builder("vitl14")
build_dinov2_vitg14 = _dinov2_builder("vitg14")


@loads(names.CLIP_VIT_L14_336)
def build_clip_vit_l14_336(resize: str, weights: dict[str, str], device: str) -> Any:
    """OpenAI CLIP ViT-L/14@336px image embeddings on cmmd's preprocessing: CMMD."""
    from diffbench import weights as w
    from diffbench.features.cmmd_clip import CmmdClipExtractor

    return CmmdClipExtractor(w.resolve(build_clip_vit_l14_336.weights_name, weights),
                             device=device)
