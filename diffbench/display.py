"""How metric values are shown: labels, arrows, decimals and scales, read from the metric specs.

Every fact here comes from the `Output`s of the metric specs (`diffbench.metrics.spec`); reports,
the gate, Pareto plots and the console (``run``, ``score``) format values through this module, so
a number shows with the same digits everywhere. A results entry's own ``higher_is_better`` wins
over the spec (older records, plugins not installed here), and a metric no spec knows still shows
(its name as label, 4 decimals).

``decimals`` counts the digits shown for a value at display scale 1. A column or entry may use
another scale (a record's metric ``scale``, a published file's ``scales``: KID×1000 in try-on
tables, DINO×100 in some personalisation papers); `decimals_at` then shifts the digits so the same
precision shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

UNKNOWN_DECIMALS = 4


def _output(name: str):
    from diffbench.metrics.spec import output_info

    info = output_info(name)
    return info[1] if info else None


def label(name: str, extractor: str | None = None) -> str:
    """The display label of a results key (its name when no spec knows it). Read on features
    that are not the spec's (`extractor`: the protocol's, e.g. ``digits``), an output with an
    ``other_features`` label shows that one: a Fréchet distance on a digits classifier's
    features is "FD (digits)", never "FID"."""
    out = _output(name)
    if out is None:
        return name
    if extractor and out.other_features and extractor != out.features:
        return out.other_features.format(extractor=extractor)
    return out.label


def higher_is_better(name: str, entry: Mapping[str, Any] | None = None,
                     required: Callable[[str], Exception] | None = None) -> bool | None:
    """Is higher better? The results entry's own flag, else the spec's, else None (unknown); with
    `required`, an unknown direction raises ``required(name)`` instead."""
    if entry and "higher_is_better" in entry:
        return bool(entry["higher_is_better"])
    out = _output(name)
    if out is None and required is not None:
        raise required(name)
    return out.higher_is_better if out else None


def num(x: Any) -> bool:
    """A finite number (not None, not a bool, not NaN or ±inf)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def arrow(higher: bool) -> str:
    """↑ when higher is better, ↓ otherwise."""
    return "↑" if higher else "↓"


def decimals_at(name: str, scale: float = 1.0) -> int:
    """Digits to show for `name` multiplied by `scale` (the spec's decimals, shifted)."""
    out = _output(name)
    decimals = out.decimals if out else UNKNOWN_DECIMALS
    return decimals if scale <= 0 else max(0, decimals - round(math.log10(scale)))


def scale_suffix(scale: float) -> str:
    """`×1000` for a scaled column, empty for scale 1."""
    return "" if scale == 1 else f"×{scale:g}"


def supported_decimals(uncertainty: float | None, decimals: int) -> int:
    """Digits a value can show given its uncertainty (a half CI or a std, at display scale):
    those that put two significant digits on the uncertainty, never more than `decimals` (the
    spec's), so a noise-dominated value does not look more precise than it is."""
    if uncertainty is None or not math.isfinite(uncertainty) or uncertainty <= 0:
        return decimals
    return max(0, min(decimals, 1 - math.floor(math.log10(uncertainty))))


def value_text(value: float, decimals: int, scale: float = 1.0, ci: tuple[float, float] | None
               = None, std: float | None = None) -> str:
    """``value ± half CI`` (or ``± std``) times `scale`, with the digits the uncertainty supports
    (`supported_decimals`, at most `decimals`): the one way the console (`run`, `score`) and the
    reports write a number."""
    spread = (ci[1] - ci[0]) * scale / 2 if ci is not None else \
        std * scale if std is not None else None
    digits = supported_decimals(spread, decimals)
    text = f"{value * scale:.{digits}f}"
    if spread is not None:
        shown = f"{spread:.{digits}f}"
        if spread > 0 and float(shown) == 0:  # below the last digit shown
            shown = f"<{10.0 ** -digits:.{digits}f}"
        text += f" ± {shown}"
    return text


def format_value(name: str, entry: Mapping[str, Any]) -> str:
    """A results entry as the console shows it: value ± half CI (or ± std) at its scale, and the
    entry's reason when it has no spread (``details.no_spread``: KID whose subsets are all the
    whole set)."""
    scale = entry.get("scale") or 1.0
    ci = (entry["ci"]["low"], entry["ci"]["high"]) if entry.get("ci") else None
    text = value_text(entry["value"], decimals_at(name, scale), scale, ci, entry.get("std"))
    text += f" (×{scale:g})" if scale != 1.0 else ""
    no_spread = (entry.get("details") or {}).get("no_spread")
    return text + (f" (no ±: {no_spread})" if no_spread else "")


def metric_lines(metrics: Mapping[str, Mapping[str, Any]], indent: str = "") -> list[str]:
    """One console line per results entry: name and `format_value`."""
    return [f"{indent}{name:<10} {format_value(name, entry)}" for name, entry in metrics.items()]


def output_order() -> dict[str, int]:
    """Position of each known results key: the specs' order (reports order columns by it)."""
    from diffbench.metrics.spec import all_specs

    keys = [o.key for spec in all_specs() for o in spec.outputs]
    return {key: i for i, key in enumerate(dict.fromkeys(keys))}
