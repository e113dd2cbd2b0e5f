"""Feature extractors and their preprocessing; `build_extractor` makes the one a protocol names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diffbench.errors import ConfigError

EXTRACTORS = ("inception", "vgg16", "digits")


def build_extractor(name: str, resize: str = "tf-bilinear", weights: Mapping[str, str] | None = None,
                    device: str = "cpu") -> Any:
    """The distribution metrics' extractor `name` with verified weights (see diffbench.weights)."""
    weights = dict(weights or {})
    if name == "inception":
        from diffbench import weights as w
        from diffbench.features.inception import WEIGHTS_NAME, InceptionExtractor

        return InceptionExtractor(w.resolve(WEIGHTS_NAME, weights), resize=resize, device=device)
    if name == "vgg16":
        from diffbench import weights as w
        from diffbench.features.vgg16 import WEIGHTS_NAME, VGG16Extractor

        return VGG16Extractor(w.resolve(WEIGHTS_NAME, weights), device=device)
    if name == "digits":
        from diffbench.features.digits import DEFAULT_WEIGHTS, DigitsExtractor

        return DigitsExtractor(weights.get("digits-classifier", DEFAULT_WEIGHTS), device=device)
    raise ConfigError(f"extractor '{name}': expected one of {', '.join(EXTRACTORS)}")
