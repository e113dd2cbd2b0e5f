"""One metric contract: every fact about a metric declared once, in a `MetricSpec` next to its
compute function, and read by everything else.

A spec says what a metric is called and which family scores it (``distribution``: a generated
set against a reference set through an extractor; ``paired``: each generated image against its
own ground truth; ``alignment``: each generated image against its subject's references or its
prompt), what it writes into a results record (its `Output`s: ``prc`` writes ``precision`` and
``recall``, each with a label, a direction, display decimals and a default gate tolerance), what
it reads (`Needs`), the arguments a suite may give it (`diffbench.metrics.args.Arg`, with
defaults) and the function that computes it (arrays in, numbers out). The protocols that define a
metric are not written here: they are read from the protocol registry (`MetricSpec.protocols`).

The scoring families, the gate's directions and default tolerances, the reports' labels, arrows
and decimals, Pareto directions and axes, ``suites validate``, the pre-run count checks,
``diffbench metrics`` and the CLI help all read the specs through `get_spec` / `output_info`;
no other module keeps a table of metric names. A plugin adds a metric by naming its spec in the
``diffbench.metrics`` entry-point group (or with `register_metric`); see docs/adding-a-metric.md.

This module imports neither numpy nor torch, so that listing and displaying metrics stays light.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from diffbench.metrics.args import FROM_PROTOCOL, Arg

FAMILIES = ("distribution", "paired", "alignment")
FORMS = ("moments", "rows", "fake_rows")
AGAINST = ("ground_truth", "references", "text")
DEFAULT_TOLERANCE: Mapping[str, float] = {"rel": 0.05}
NO_TRAIN = (" needs the model's training images: add reference: {train: {name: NAME, reader: "
            "folder}} to the task (and --data NAME=DIR)")  # `Needs.train`; score: --train DIR


@dataclass(frozen=True)
class Output:
    """One value a metric writes into a results record's ``metrics`` block.

    ``decimals`` counts the digits shown at display scale 1 (a scaled column shifts them, see
    `diffbench.display.decimals_at`). ``tolerance`` is the gate's default allowance for a worse
    value (``{"abs": x}`` and/or ``{"rel": x}``; bounded scores get an absolute one, unbounded
    ones a relative one). ``pareto`` names the outputs this one is drawn against on a sweep's
    front, this one on the x axis. ``label`` names the value on the protocol extractor
    ``features`` (FID: a Fréchet distance on Inception features); on another extractor's
    features the label is ``other_features`` with ``{extractor}`` filled in ("FD (digits)").
    """

    key: str
    label: str
    higher_is_better: bool
    decimals: int = 3
    tolerance: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCE))
    pareto: tuple[str, ...] = ()
    features: str | None = None
    other_features: str | None = None


@dataclass(frozen=True)
class Needs:
    """What a metric reads, besides its settings.

    Distribution metrics: ``form`` is ``moments`` (the Gaussian of each side's features: a
    `Gaussian`), ``rows`` (the feature rows of both sides) or ``fake_rows`` (rows of the generated
    side only); ``labels`` adds the requested class label of each generated image. The features
    come from the protocol's extractor and the layer the protocol names for the metric
    (``Protocol.layers``), unless ``extractor`` (with ``resize`` and ``layer``) names a network of
    the metric's own (a Fréchet distance on DINOv2 features is defined by that network).
    ``train`` (form ``rows``) adds the rows of the model's training images: the memorization
    metrics get ``compute(train, test, fake)``, the task's reference being the held-out test set
    (``reference.train`` in a suite, ``--train`` on ``diffbench score``).

    Paired and alignment metrics: ``against`` says what each generated image is compared with:
    ``ground_truth`` (its dataset item's ``refs["gt"]``), ``references`` (its subject's reference
    images) or ``text`` (its prompt's text).
    """

    form: str = ""
    labels: bool = False
    extractor: str = ""
    resize: str = ""
    layer: str = ""
    against: str = ""
    # moments: False when the metric reads only the means, so fewer images than feature
    # dimensions (a rank-deficient covariance) does not concern it
    covariance: bool = True
    train: bool = False


@dataclass(frozen=True)
class Value:
    """What a compute function may return besides a bare float: a std and details."""

    value: float
    std: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Gaussian:
    """The Gaussian of one side's features: mean, covariance and the number of rows behind it."""

    mu: Any
    sigma: Any
    n: int


@dataclass(frozen=True)
class Shortfall:
    """Too few images for a metric's settings, found before any work (`diffbench.preflight`).

    ``text`` continues the metric's name (``" with k=3 needs more than 3 images per side"`` or
    ``": 10 splits need ..."``); ``setting`` and ``suggest`` name the setting a user can lower
    and a value that fits, ``otherwise`` the other fix.
    """

    text: str
    setting: str = ""
    suggest: int = 0
    otherwise: str = ""


@dataclass(frozen=True)
class MetricSpec:
    """A metric, declared once (see the module docstring).

    ``compute`` is the metric's function; its inputs depend on the family:

    - distribution: ``compute(real, fake, **settings)`` with `Gaussian`s (form ``moments``) or
      float32 row arrays (``rows``); ``compute(fake, **settings)`` for ``fake_rows``,
      ``compute(fake, labels, **settings)`` with ``labels`` and ``compute(train, real, fake,
      **settings)`` with ``train``;
    - paired: ``compute(gt, pred, model=..., **settings)``: uint8 N×C×H×W tensors on the device,
      returns N float64 values (``model``: what ``model(settings, weights, device)`` built, e.g.
      the LPIPS network, or None);
    - alignment: ``compute(generated, against)``: float embeddings, returns one value per
      generated row.

    It returns a float, a `Value`, or for several outputs a mapping output key → float/`Value`.
    ``settings`` are the protocol's settings of the metric laid over the argument defaults, with
    the suite's ``args`` on top, limited to the arguments the function takes (see `settings`).
    A distribution function that names a ``device`` argument is given the scorer's device.

    ``resample`` (distribution) recomputes the first output on resampled generated rows for a
    bootstrap interval: ``resample(real, fake_rows, **settings)`` (``labels`` after the rows when
    the metric needs them); without it the metric gets no interval. ``features`` picks another
    extractor from the settings (precision/recall's ``features: vgg16``): it returns
    (extractor, resize, layer) or None for the protocol's. ``shortfalls(n_real, n_fake,
    settings)`` lists what the image counts cannot give; ``conflicts(settings, args)`` lists
    suite arguments the protocol's own settings would silently override.
    """

    name: str
    family: str
    summary: str
    outputs: tuple[Output, ...]
    compute: Callable[..., Any]
    needs: Needs = field(default_factory=Needs)
    args: Mapping[str, Arg] = field(default_factory=dict)
    resample: Callable[..., float] | None = None
    features: Callable[[Mapping[str, Any]], tuple[str, str, str] | None] | None = None
    model: Callable[..., Any] | None = None
    # The registry names of the weights `model` loads under these settings: preflight resolves
    # them before the first image (`diffbench.readiness`).
    weights: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
    shortfalls: Callable[[int, int, Mapping[str, Any]], list[Shortfall]] | None = None
    conflicts: Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]] | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.family not in FAMILIES:
            problems.append(f"family {self.family!r} is not one of {', '.join(FAMILIES)}")
        if not self.outputs:
            problems.append("it declares no outputs")
        if self.family == "distribution" and self.needs.form not in FORMS:
            problems.append(f"needs.form {self.needs.form!r} is not one of {', '.join(FORMS)}")
        if self.needs.train and self.needs.form != "rows":
            problems.append("needs.train reads feature rows: it needs form 'rows'")
        if self.family != "distribution" and self.needs.against not in AGAINST:
            problems.append(f"needs.against {self.needs.against!r} is not one of "
                            f"{', '.join(AGAINST)}")
        if problems:
            raise ValueError(f"MetricSpec '{self.name}': {'; '.join(problems)}")
        object.__setattr__(self, "__doc__", self.summary)  # what registry listings print

    def arguments(self) -> list[str]:
        """The suite arguments as ``name`` or ``name=default`` (the protocol's when not shown)."""
        return [n if a.default in (FROM_PROTOCOL, None) else f"{n}={a.default!r}"
                for n, a in self.args.items()]

    @property
    def higher_is_better(self) -> bool:
        """The direction of the first output (the one bootstrap intervals and orderings use)."""
        return self.outputs[0].higher_is_better

    def output(self, key: str) -> Output | None:
        """The output written under `key`, or None."""
        return next((o for o in self.outputs if o.key == key), None)

    def defaults(self) -> dict[str, Any]:
        """The arguments' own defaults (those not left to the protocol)."""
        return {k: a.default for k, a in self.args.items() if a.default != FROM_PROTOCOL}

    def settings(self, protocol_settings: Mapping[str, Any],
                 args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults, then the protocol's settings of this metric, then the suite's arguments."""
        return {**self.defaults(), **protocol_settings, **(args or {})}

    def run(self, *inputs: Any, **settings: Any) -> Any:
        """``compute(*inputs, **settings)`` with the settings it takes (`call`), after refusing
        NaN/inf in the inputs (features, embeddings, Gaussians) with a one-line error."""
        for x in inputs:
            for arr in (x.mu, x.sigma) if isinstance(x, Gaussian) else (x,):
                if not _finite(arr):
                    from diffbench.errors import MetricInputError

                    raise MetricInputError(
                        f"{self.name}: its inputs hold NaN/inf values; check the images and the "
                        "extractor (weights, dtype) that produced the features")
        return call(self.compute, *inputs, **settings)

    def protocols(self) -> list[str]:
        """The registered protocols that define this metric (read from the protocol registry)."""
        from diffbench.errors import DiffbenchError
        from diffbench.protocols import get_protocol
        from diffbench.registry import PROTOCOLS

        found = []
        for name in PROTOCOLS.names():
            try:
                if self.name in get_protocol(name).metrics:
                    found.append(name)
            except DiffbenchError:
                continue  # a broken plugin protocol is reported by `diffbench protocols`
        return found


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Register `spec` under its name at run time (entry points are the usual way)."""
    from diffbench.registry import METRICS

    METRICS.register(spec.name, spec)
    return spec


def get_spec(name: str) -> MetricSpec:
    """The spec registered as `name` (a RegistryError with a "did you mean" when unknown)."""
    from diffbench.registry import METRICS

    return METRICS.get(name)


def all_specs() -> list[MetricSpec]:
    """Every loadable spec, built-ins first in their declared order, then plugins by name."""
    from diffbench.errors import RegistryError
    from diffbench.registry import METRICS

    out = []
    for name in METRICS.ordered_names():
        try:
            out.append(METRICS.get(name))
        except RegistryError:
            continue  # a broken plugin: `diffbench metrics` shows it as BROKEN
    return out


def unused_train(what: str) -> str:
    """The message for training/held-out images given with no metric that reads them."""
    names = ", ".join(s.name for s in all_specs() if s.needs.train)
    return f"{what} are read only by the metrics that need the training set ({names}); add one " \
        "or remove them"


def output_info(key: str) -> tuple[MetricSpec, Output] | None:
    """The spec and output that write results key `key` (``precision`` → prc), or None."""
    from diffbench.errors import RegistryError
    from diffbench.registry import METRICS

    if key in METRICS:
        try:
            spec = METRICS.get(key)
        except RegistryError:  # a broken plugin is not this key's output
            spec = None
        if spec is not None and (out := spec.output(key)) is not None:
            return spec, out
    for spec in all_specs():
        if (out := spec.output(key)) is not None:
            return spec, out
    return None


def output_keys(names: list[str]) -> list[str]:
    """The results keys the metrics `names` write, in order (``prc`` → precision, recall)."""
    return [o.key for name in names for o in get_spec(name).outputs]


def call(fn: Callable[..., Any], *args: Any, **available: Any) -> Any:
    """``fn(*args, **kw)`` with the `available` keywords `fn` takes (all of them for ``**kw``).

    Settings carry more than one function needs (display ``scale``, recorded-only keys such as
    ``library``): each function names the ones it reads.
    """
    params = list(inspect.signature(fn).parameters.values())[len(args):]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return fn(*args, **available)
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return fn(*args, **{k: v for k, v in available.items() if k in names})


def _finite(x: Any) -> bool:
    """False for a float array or tensor holding NaN/inf (other inputs pass)."""
    kind = type(x).__module__.split(".")[0]
    if kind == "numpy":
        import numpy as np

        return not np.issubdtype(x.dtype, np.floating) or bool(np.isfinite(x).all())
    if kind == "torch":
        return not x.is_floating_point() or bool(x.isfinite().all())
    return True


def values_of(spec: MetricSpec, result: Any) -> dict[str, Value]:
    """A compute function's result as output key → `Value` (a bare number for one output)."""
    if not isinstance(result, Mapping):
        result = {spec.outputs[0].key: result}
    out = {}
    for o in spec.outputs:
        if o.key not in result:
            raise ValueError(f"metric '{spec.name}' returned no value for its output '{o.key}'")
        v = result[o.key]
        out[o.key] = v if isinstance(v, Value) else Value(float(v))
    return out
