"""The arguments a metric accepts in a suite (``metrics: {name: {args: {...}}}``), as a schema.

Each metric's spec (`diffbench.metrics.spec.MetricSpec.args`) maps argument names to `Arg`s
(kind, default, one-line doc, allowed values, bounds). `check_args` turns a suite's arguments
into one line per problem (an unknown name with a "did you mean", a wrong type, a value out of
range) so that ``diffbench suites validate``, the start of ``diffbench run`` and the scoring
families refuse them before any image is made. The defaults that are not ``FROM_PROTOCOL`` are
the metric's own defaults (`MetricSpec.settings`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diffbench.errors import shown

FROM_PROTOCOL = "the protocol's"
KINDS = ("int", "float", "str", "bool", "size", "floats")
_KIND_TEXT = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
              "size": "[height, width] (two integers)", "floats": "a list of numbers"}


@dataclass(frozen=True)
class Arg:
    """One accepted argument: its kind, default, meaning, allowed values and bounds."""

    kind: str
    default: Any
    doc: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    nullable: bool = False
    extractor: bool = False  # passed to the metric's extractor (its network or preprocessing)
    display: bool = False  # changes how values are shown, never what is computed or comparable

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Arg kind {self.kind!r} is not one of {KINDS}")

    def describe(self) -> str:
        """What a valid value looks like, for error messages."""
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            text = _KIND_TEXT[self.kind]
            if self.minimum is not None:
                text += f" >= {self.minimum:g}"
        return text + (" or null" if self.nullable else "")

    def accepts(self, value: Any) -> bool:
        """True when `value` is of this argument's kind, allowed and in range."""
        if value is None:
            return self.nullable
        if not _kind_ok(self.kind, value) or (self.choices and value not in self.choices):
            return False
        if self.minimum is not None and self.kind in ("int", "float"):
            return value >= self.minimum
        return self.kind != "size" or all(v >= 1 for v in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return _is_number(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "size":
        return (isinstance(value, (list, tuple)) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(map(_is_number, value))


def check_args(schema: Mapping[str, Arg] | None, args: Mapping[str, Any]) -> list[str]:
    """One line ``name: problem`` per argument `schema` does not accept (empty when all are fine)."""
    if schema is None:
        return []
    problems = []
    for name, value in args.items():
        spec = schema.get(name)
        if spec is None:
            close = difflib.get_close_matches(str(name), list(schema), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(f"{name}: unknown argument; {hint}accepted: "
                            f"{', '.join(schema) or '(none)'}")
        elif not spec.accepts(value):
            problems.append(f"{name}: must be {spec.describe()}, got {shown(value)}")
    return problems


# Arguments several metrics share.
SCALE = Arg("float", FROM_PROTOCOL, "display scale: the value is shown multiplied by it (stored "
            "raw), e.g. 1000 for KID ×1000", minimum=0, display=True)
# How the paired metrics (SSIM, LPIPS) bring a (ground truth, prediction) pair to one size.
PAIRED_PREP_ARGS = {
    "gt_resize": Arg("str", "none", "how the ground truth is resized to the prediction's size: "
                     "lanczos-height (CatVTON), bilinear (HR-VITON) or none (sizes must match)",
                     choices=("none", "lanczos-height", "bilinear")),
    "gt_jpeg_quality": Arg("int", None, "JPEG round trip of a resized ground truth at this "
                           "quality (CatVTON: 75); null: none", minimum=0, nullable=True),
    "eval_size": Arg("size", None, "[height, width] both images are resized to (PIL bilinear); "
                     "null: the prediction's size", nullable=True),
    "library": Arg("str", None, "the library whose numbers the settings imitate (recorded only)",
                   nullable=True),
}
