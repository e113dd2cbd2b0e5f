"""Lazy registries: name -> "module:object", extended by entry points.

Built-in entries are strings so that listing names imports nothing heavy. Third-party
packages add entries through the entry-point groups ``diffbench.adapters`` (an `Adapter`
subclass), ``diffbench.metrics`` (a `MetricSpec`), ``diffbench.datasets``, ``diffbench.protocols``
(a `Protocol`) and ``diffbench.extractors`` (``build(resize, weights, device)``). A registry with a ``kind_of`` checks what a name points at
when it is loaded, so a wrong plugin is one clear error, not a failure deep inside a run.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from diffbench.errors import RegistryError


@dataclass(frozen=True)
class Entry:
    """One registered name: where it lives and where it came from."""

    name: str
    target: str
    source: str = "builtin"


@dataclass(frozen=True)
class Description:
    """What `diffbench models|metrics` prints for an entry."""

    name: str
    summary: str
    arguments: list[str]
    source: str


class Registry:
    """A lazy name -> object map of one kind (adapter, metric, dataset, protocol)."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str], kind_of: str = ""):
        self.kind = kind
        self.group = group
        self._builtins = dict(builtins)
        self._extra: dict[str, Entry] = {}
        self._loaded: dict[str, Any] = {}
        self._kind_of = kind_of  # "module:Class" every entry must be (a subclass or instance of)

    def register(self, name: str, target: str | Any, source: str = "runtime") -> None:
        """Add an entry at run time; `target` is "module:object" or the object itself."""
        if name in self._entries():
            raise RegistryError(f"{self.kind} '{name}' is already registered "
                                f"({self._entries()[name].target}); pick another name")
        if isinstance(target, str):
            self._extra[name] = Entry(name, target, source)
        else:
            self._extra[name] = Entry(name, f"{target.__module__}:{target.__qualname__}", source)
            self._loaded[name] = target

    def _plugin_entries(self) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        for ep in entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            origin = f"plugin {dist.name}" if dist is not None else "plugin"
            found[ep.name] = Entry(ep.name, ep.value, origin)
        return found

    def _entries(self) -> dict[str, Entry]:
        entries = {n: Entry(n, t) for n, t in self._builtins.items()}
        for name, entry in {**self._plugin_entries(), **self._extra}.items():
            # A plugin may not silently replace a built-in: numbers would change under the same name.
            if name not in entries:
                entries[name] = entry
        return entries

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries())

    def ordered_names(self) -> list[str]:
        """Built-in names in their declared order, then the others sorted."""
        return [*self._builtins, *sorted(n for n in self._entries() if n not in self._builtins)]

    def __contains__(self, name: str) -> bool:
        return name in self._entries()

    def entry(self, name: str) -> Entry:
        """The entry for `name`, or a RegistryError with a "did you mean" hint."""
        entries = self._entries()
        if name not in entries:
            close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
            raise RegistryError(f"unknown {self.kind} '{name}': {hint}"
                                f"known: {', '.join(sorted(entries)) or '(none)'}")
        return entries[name]

    def get(self, name: str) -> Any:
        """Import and return the object registered as `name`."""
        if name in self._loaded:
            return self._loaded[name]
        entry = self.entry(name)
        module_name, _, attr = entry.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise RegistryError(f"{self.kind} '{name}' ({entry.source}) points at "
                                f"'{entry.target}', which cannot be loaded: {exc}") from exc
        self._check_kind(name, entry, obj)
        self._loaded[name] = obj
        return obj

    def _check_kind(self, name: str, entry: Entry, obj: Any) -> None:
        if not self._kind_of:
            return
        module_name, _, attr = self._kind_of.partition(":")
        expected = getattr(importlib.import_module(module_name), attr)
        ok = issubclass(obj, expected) if inspect.isclass(obj) else isinstance(obj, expected)
        if not ok:
            raise RegistryError(f"{self.kind} '{name}' ({entry.source}) points at "
                                f"'{entry.target}', which is not a diffbench {attr}")
        if getattr(obj, "name", name) != name and not inspect.isclass(obj):
            raise RegistryError(f"{self.kind} '{name}' ({entry.source}) points at a {attr} "
                                f"named '{obj.name}'; register it under that name")

    def describe(self, name: str) -> Description:
        """One-line summary (first docstring line) and the arguments the object takes."""
        obj = self.get(name)
        doc = inspect.getdoc(obj) or ""
        summary = doc.strip().splitlines()[0] if doc.strip() else "(no description)"
        return Description(name, summary, _arguments(obj), self.entry(name).source)


def _arguments(obj: Any) -> list[str]:
    # An object that is not called with keyword arguments (a MetricSpec) lists its own.
    own = getattr(type(obj), "arguments", None)
    if callable(own) and not inspect.isclass(obj):
        return obj.arguments()
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    args = []
    for p in sig.parameters.values():
        if p.name in ("self", "cls") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        args.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return args


# Built-in entries. Each module named here exists; a test imports every one of them.
ADAPTERS = Registry("adapter", "diffbench.adapters", kind_of="diffbench.adapters.base:Adapter",
                    builtins={
    "toy": "diffbench.adapters.toy:ToyAdapter",
    "sit-repa": "diffbench.adapters.sit:SiTAdapter",
    "dit": "diffbench.adapters.dit:DiTAdapter",
    "demo-sit": "diffbench.adapters.demo:DemoSiTAdapter",
    "folder": "diffbench.adapters.folder:FolderAdapter",
    "sd-lora": "diffbench.adapters.sd_lora:SDLoRAAdapter",
    "sdxl-lora": "diffbench.adapters.sd_lora:SDXLLoRAAdapter",
    "dco": "diffbench.adapters.dco:DCOAdapter",
    "idm-vton": "diffbench.adapters.idm_vton:IDMVTONAdapter",
})
# Metric specs, in the order reports show their columns.
METRICS = Registry("metric", "diffbench.metrics", kind_of="diffbench.metrics.spec:MetricSpec",
                   builtins={
    "fid": "diffbench.metrics.distribution:FID",
    "sfid": "diffbench.metrics.distribution:SFID",
    "kid": "diffbench.metrics.distribution:KID",
    "isc": "diffbench.metrics.distribution:ISC",
    "prc": "diffbench.metrics.distribution:PRC",
    "ssim": "diffbench.metrics.ssim:SSIM",
    "lpips": "diffbench.metrics.lpips:LPIPS",
    "dino": "diffbench.metrics.alignment:DINO",
    "clip_i": "diffbench.metrics.alignment:CLIP_I",
    "clip_t": "diffbench.metrics.alignment:CLIP_T",
    "dinov2": "diffbench.metrics.alignment:DINOV2",
    "siglip_i": "diffbench.metrics.alignment:SIGLIP_I",
    "siglip_t": "diffbench.metrics.alignment:SIGLIP_T",
    "accuracy": "diffbench.metrics.distribution:ACCURACY",
    "fd_dinov2": "diffbench.metrics.representation:FD_DINOV2",
    "prdc": "diffbench.metrics.representation:PRDC",
    "cmmd": "diffbench.metrics.representation:CMMD",
    "fd_eff": "diffbench.metrics.dgm_specs:FD_EFF",
    "fd_infinity": "diffbench.metrics.dgm_specs:FD_INFINITY",
    "kd": "diffbench.metrics.dgm_specs:KD",
    "sw_approx": "diffbench.metrics.dgm_specs:SW_APPROX",
    "authpct": "diffbench.metrics.dgm_specs:AUTHPCT",
    "vendi": "diffbench.metrics.dgm_specs:VENDI",
    "vendi_per_class": "diffbench.metrics.dgm_specs:VENDI_PER_CLASS",
    "realism": "diffbench.metrics.dgm_specs:REALISM",
    "ct": "diffbench.metrics.memorization_specs:CT",
    "ct_test": "diffbench.metrics.memorization_specs:CT_TEST",
    "ct_modified": "diffbench.metrics.memorization_specs:CT_MODIFIED",
    "fls": "diffbench.metrics.memorization_specs:FLS",
    "fls_overfit": "diffbench.metrics.memorization_specs:FLS_OVERFIT",
})
DATASETS = Registry("dataset reader", "diffbench.datasets", {
    "sklearn-digits": "diffbench.data.digits:DigitsSource",
    "folder": "diffbench.data.folder:FolderSource",
    "adm-npz": "diffbench.data.npz:NpzSource",
    "dreambooth": "diffbench.data.dreambooth:DreamBoothDataset",
    "vitonhd": "diffbench.data.vitonhd:VitonHD",
    "dresscode": "diffbench.data.dresscode:DressCode",
})
PROTOCOLS = Registry("protocol", "diffbench.protocols", kind_of="diffbench.protocols:Protocol",
                     builtins={
    "adm": "diffbench.protocols:ADM",
    "torch-fidelity": "diffbench.protocols:TORCH_FIDELITY",
    "clean-fid": "diffbench.protocols:CLEAN_FID",
    "demo-digits": "diffbench.protocols:DEMO_DIGITS",
    "dreambench": "diffbench.protocols.dreambooth:DREAMBENCH",
    "dco": "diffbench.protocols.dreambooth:DCO",
    "catvton": "diffbench.protocols.vton:CATVTON",
    "ladi": "diffbench.protocols.vton:LADI",
    "hr-viton": "diffbench.protocols.vton:HR_VITON",
    "edm2": "diffbench.protocols.representation:EDM2",
    "dgm-eval": "diffbench.protocols.representation:DGM_EVAL",
    "cmmd": "diffbench.protocols.representation:CMMD",
})

# Feature extractors: `build(resize, weights, device, **options)` each (`build_extractor`).
EXTRACTORS = Registry("extractor", "diffbench.extractors", {
    "inception": "diffbench.features:build_inception",
    "vgg16": "diffbench.features:build_vgg16",
    "digits": "diffbench.features:build_digits",
    "dinov2-vits14": "diffbench.features:build_dinov2_vits14",
    "dinov2-vitb14": "diffbench.features:build_dinov2_vitb14",
    "dinov2-vitl14": "diffbench.features:build_dinov2_vitl14",
    "dinov2-vitg14": "diffbench.features:build_dinov2_vitg14",
    "clip-vit-l-14-336": "diffbench.features:build_clip_vit_l14_336",
    "clip": "diffbench.features:build_clip",
    "dino": "diffbench.features:build_dino",
})

REGISTRIES = {"adapters": ADAPTERS, "metrics": METRICS, "datasets": DATASETS,
              "protocols": PROTOCOLS, "extractors": EXTRACTORS}
