"""Known network weights: where they come from, how to check them, where to find them.

Resolution order for a name: an explicit path (``--weights NAME=PATH``) → ``weights.NAME`` in the
user config (``diffbench config set weights.NAME PATH``) → ``$DIFFBENCH_HOME/weights`` (default
``~/.cache/diffbench/weights``) → the usual library cache (torch hub's
``$TORCH_HOME/hub/checkpoints``) → download (unless offline: ``DIFFBENCH_OFFLINE=1`` or
``HF_HUB_OFFLINE=1``; `diffbench.download.is_offline`), then verification against the full sha256 when
known, else the published prefix. A path the user gave (option or config) that is not the
official file is used with a warning. Verified digests are remembered per (path, size, mtime) so
big files are hashed once.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from diffbench.config import config_path, get_value
from diffbench.download import diffbench_home, download, import_copy, is_offline
from diffbench.errors import WeightsError
from diffbench.fsutil import file_sha256
from diffbench.log import logger


@dataclass(frozen=True)
class WeightSpec:
    """One known weights file."""

    name: str
    url: str
    filename: str
    sha256: str | None
    sha256_prefix: str | None
    size: int | None
    licence: str
    description: str
    # Where the usual libraries keep this file: "torch_hub" ($TORCH_HOME/hub/checkpoints),
    # "openai_clip" (~/.cache/clip, the `clip` package's download root).
    library_caches: tuple[str, ...] = ("torch_hub",)


_TF = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
WEIGHTS: dict[str, WeightSpec] = {s.name: s for s in (
    WeightSpec("inception-2015-12-05", _TF + "weights-inception-2015-12-05-6726825d.pth",
               "weights-inception-2015-12-05-6726825d.pth",
               # Full digest from a third-party manifest; the 8-hex prefix is torch-fidelity's.
               "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", "6726825d",
               None, "Apache-2.0 (TF Inception, ported by torch-fidelity)",
               "2015 TF Inception in torch-fidelity's PyTorch port: FID, sFID, KID, IS, PR"),
    WeightSpec("inception-2015-12-05-pytorch-fid",
               "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth",
               None, "6726825d", None, "Apache-2.0 (TF Inception, ported by pytorch-fid)",
               "pytorch-fid's port of the same network (same module names, unverified identity)"),
    WeightSpec("vgg16-imagenet", "https://download.pytorch.org/models/vgg16-397923af.pth",
               "vgg16-397923af.pth", None, "397923af", None, "BSD-3-Clause (torchvision)",
               "torchvision VGG16 IMAGENET1K_V1: torch-fidelity PRC features, LPIPS-VGG backbone"),
    WeightSpec("alexnet-imagenet", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
               "alexnet-owt-7be5be79.pth", None, "7be5be79", None, "BSD-3-Clause (torchvision)",
               "torchvision AlexNet: LPIPS-Alex backbone"),
    WeightSpec("squeezenet1_1-imagenet",
               "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
               "squeezenet1_1-b8a52dc0.pth", None, "b8a52dc0", None, "BSD-3-Clause (torchvision)",
               "torchvision SqueezeNet 1.1: LPIPS-Squeeze backbone"),
    WeightSpec("clip-vit-b-32-openai",
               "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c"
               "18be219cc2a73407c4526f58eba950af/ViT-B-32.pt", "ViT-B-32.pt",
               "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", None, None,
               "MIT (OpenAI CLIP)", "OpenAI CLIP ViT-B/32 (JIT archive): CLIP-I, CLIP-T",
               ("openai_clip",)),
    # DINO/DINOv2/SigLIP: URLs as torch.hub (DINO hubconf, DINOv2 README) and open_clip use them;
    # no sha256 is published for these files (unknown: not checked until one is recorded here).
    WeightSpec("dino-vits16", "https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/"
               "dino_deitsmall16_pretrain.pth", "dino_deitsmall16_pretrain.pth", None, None, None,
               "Apache-2.0 (facebookresearch/dino)",
               "DINO ViT-S/16 backbone (torch.hub dino_vits16): DreamBench DINO, sha256 unknown"),
    *(WeightSpec(f"dinov2-{size}", f"https://dl.fbaipublicfiles.com/dinov2/dinov2_{size}/"
                 f"dinov2_{size}_pretrain.pth", f"dinov2_{size}_pretrain.pth", None, None, None,
                 "Apache-2.0 (facebookresearch/dinov2)",
                 f"DINOv2 {label} backbone (torch.hub dinov2_{size}): {use}, sha256 unknown")
      for size, label, use in (
          ("vits14", "ViT-S/14", "dinov2, dgm-eval --arch vits14"),
          ("vitb14", "ViT-B/14", "dgm-eval --arch vitb14"),
          ("vitl14", "ViT-L/14", "FD_DINOv2 (edm2, dgm-eval)"),
          ("vitg14", "ViT-g/14", "dgm-eval --arch vitg14"))),
    # The `clip` package checks a download against the sha256 in its URL (clip/clip.py).
    WeightSpec("clip-vit-l-14-336-openai",
               "https://openaipublic.azureedge.net/clip/models/3035c92b350959924f9f00213499208652"
               "fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt", "ViT-L-14-336px.pt",
               "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", None, None,
               "MIT (OpenAI CLIP)", "OpenAI CLIP ViT-L/14@336px (JIT archive): CMMD",
               ("openai_clip",)),
    WeightSpec("siglip-vit-b-16-webli", "https://huggingface.co/timm/ViT-B-16-SigLIP/resolve/main/"
               "open_clip_pytorch_model.bin", "ViT-B-16-SigLIP-webli.bin", None, None, None,
               "Apache-2.0 (Google big_vision SigLIP, open_clip conversion)",
               "SigLIP ViT-B/16 WebLI in open_clip format: siglip_i, siglip_t; sha256 unknown; "
               "siglip_t also needs the timm/ViT-B-16-SigLIP tokenizer (Hugging Face cache)",
               ()),
)}


def register_weight(spec: WeightSpec) -> None:
    """Add or replace a known weights file (plugins, tests)."""
    WEIGHTS[spec.name] = spec


def home() -> Path:
    """diffbench's own weights folder."""
    return diffbench_home() / "weights"


def library_cache_paths(s: WeightSpec) -> list[Path]:
    """Where the usual libraries would have put the file of `s`."""
    torch_home = os.environ.get("TORCH_HOME") or str(Path.home() / ".cache" / "torch")
    roots = {"torch_hub": Path(torch_home).expanduser() / "hub" / "checkpoints",
             "openai_clip": Path.home() / ".cache" / "clip"}
    return [roots[c] / s.filename for c in s.library_caches if c in roots]


def _unknown(name: str, where: str, named: Iterable[str] = ()) -> WeightsError:
    """An unknown weights name: a "did you mean" (the names it begins, else close spellings)
    and the command that lists them all."""
    known = sorted({*WEIGHTS, *LOCAL_NAMES, *named})
    close = sorted((n for n in known if n.startswith(name)), key=len)[:1] \
        or difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return WeightsError(f"{where}unknown weights '{name}'{hint} (known: "
                        f"{', '.join(sorted(known))}; `diffbench weights list`)")


def spec(name: str) -> WeightSpec:
    """The spec of a known name, or a WeightsError with a "did you mean"."""
    if name not in WEIGHTS:
        raise _unknown(name, "")
    return WEIGHTS[name]


# Names `--weights NAME=PATH` also takes that are never downloaded: the offline demo's
# classifier (shipped with diffbench) and lpips' v0.1 linear layers (from the lpips package).
LOCAL_NAMES = ("digits-classifier", "lpips-lin-alex", "lpips-lin-squeeze", "lpips-lin-vgg")


def check_names(explicit: Mapping[str, object] | None, named: Iterable[str] = ()) -> None:
    """Refuse an unknown name in ``--weights NAME=PATH`` before any work. Known: the registry,
    `LOCAL_NAMES`, and `named` (names a suite's metric arguments give, ``weights: my-dino``); a
    bare ``--weights PATH`` (name "") stands for every network the protocol reads."""
    named = set(named)
    for name, path in (explicit or {}).items():
        if name and name not in WEIGHTS and name not in LOCAL_NAMES and name not in named:
            raise _unknown(name, f"--weights {name}={path}: ", named)


def sha256_of(path: Path) -> str:
    """sha256 of a file (`fsutil.file_sha256`), remembered across processes per (path, size,
    mtime) in the weights home, so a checked multi-GB file is not read again next run."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = home() / ".verified.json"
    try:
        cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    except (OSError, json.JSONDecodeError):
        cache = {}
    if key in cache:
        return cache[key]
    cache[key] = file_sha256(path)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache))
    except OSError:
        pass  # a read-only home only costs a re-hash next time
    return cache[key]


def digest_is_official(s: WeightSpec, digest: str) -> bool | None:
    """Is `digest` the sha256 of the file `s` describes? Full digest when known, else the
    published prefix; None when neither is known (nothing to compare with)."""
    if s.sha256:
        return digest == s.sha256
    if s.sha256_prefix:
        return digest.startswith(s.sha256_prefix)
    return None


def check(s: WeightSpec, path: Path) -> None:
    """Raise WeightsError when `path` is not the file `s` describes."""
    actual = sha256_of(path)
    official = digest_is_official(s, actual)
    if official is None:
        logger.info("%s: no published checksum for %s; its sha256 %s is recorded with the "
                    "results", path, s.name, actual)
    elif not official and s.sha256:
        raise WeightsError(f"{path}: sha256 {actual} does not match {s.name} ({s.sha256}); "
                           f"the file is corrupt or another file; fetch or import it again")
    elif not official:
        raise WeightsError(f"{path}: sha256 {actual[:16]}… does not start with {s.name}'s "
                           f"published prefix {s.sha256_prefix}; fetch or import it again")


def is_official(name: str, path: Path) -> bool:
    """True when `path` passes the checksum of known weights `name`."""
    try:
        check(spec(name), path)
    except WeightsError:
        return False
    return True


def _missing(s: WeightSpec, why: str) -> WeightsError:
    return WeightsError(f"weights '{s.name}' ({s.filename}) not found{why}; run "
                        f"`diffbench weights fetch {s.name}`, or on a machine without internet "
                        f"copy the file and run `diffbench weights import {s.name} /path/to/"
                        f"{s.filename}` (or pass --weights {s.name}=PATH, or run `diffbench "
                        f"config set weights.{s.name} PATH`)")


def _given(name: str, explicit: dict[str, str | Path]) -> tuple[Path, str] | None:
    """The path the user named for `name` (option, then config) and how, or None."""
    if "" in explicit and name not in explicit:  # a bare --weights PATH
        explicit[name] = explicit[""]
    if name in explicit:
        return Path(explicit[name]).expanduser(), f"--weights {name}={explicit[name]}"
    configured = get_value(f"weights.{name}")
    if configured:
        return Path(str(configured)).expanduser(), f"{config_path()} (weights.{name})"
    return None


def resolve(name: str, explicit: dict[str, str | Path] | None = None,
            offline: bool | None = None) -> Path:
    """The verified local path of weights `name`, following the resolution order."""
    given = _given(name, dict(explicit or {}))
    if given is not None:
        path, source = given
        if not path.is_file():
            raise WeightsError(f"{source}: file not found ({path}); fix the path")
        if name in WEIGHTS and not is_official(name, path):
            # A file the user named is the user's choice (fine-tuned or test weights): it is
            # used, and its own sha256 goes into every fingerprint, so its numbers never pass
            # for numbers made with the official file.
            logger.warning("%s is not the official file (checksum differs); results will carry "
                           "its own sha256", source)
        return path
    s = spec(name)
    for candidate in (home() / s.filename, *library_cache_paths(s)):
        if candidate.is_file():
            check(s, candidate)
            return candidate
    if offline if offline is not None else is_offline():
        raise _missing(s, " and downloads are off (offline)")
    return fetch(name)


def fetch(name: str, force: bool = False, timeout: float = 60.0) -> Path:
    """Download weights into diffbench's folder (resuming a partial download), then verify."""
    s = spec(name)
    return download(s.url, home() / s.filename, lambda path: check(s, path), s.name, WeightsError,
                    f"on a machine without internet copy the file and run `diffbench weights "
                    f"import {s.name} /path/to/{s.filename}`", timeout, force)


def import_file(name: str, src: str | Path) -> Path:
    """Verify a file copied from elsewhere and place it in diffbench's folder."""
    s = spec(name)
    return import_copy(src, home() / s.filename, partial(check, s), WeightsError)


def locate(name: str) -> Path | None:
    """Where weights `name` already are locally (unverified; the config's path first), or None."""
    s = spec(name)
    configured = get_value(f"weights.{name}")
    given = [Path(str(configured)).expanduser()] if configured else []
    return next((candidate for candidate in (*given, home() / s.filename, *library_cache_paths(s))
                 if candidate.is_file()), None)


def verify(target: str | Path) -> Path:
    """Check known weights (by name, must be present) or a file (by path, against its name)."""
    if isinstance(target, str) and target in WEIGHTS:
        path = locate(target)
        if path is None:
            raise _missing(WEIGHTS[target], "")
        check(WEIGHTS[target], path)
        return path
    path = Path(target).expanduser()
    if not path.is_file():
        raise WeightsError(f"{target}: neither known weights nor a file; known: "
                           f"{', '.join(sorted(WEIGHTS))}")
    matches = [s for s in WEIGHTS.values() if s.filename == path.name]
    if not matches:
        raise WeightsError(f"{path}: file name matches no known weights; use "
                           f"`diffbench weights import NAME {path}` to check it as NAME")
    check(matches[0], path)
    return path


def list_weights() -> list[dict[str, str | None]]:
    """One row per known weights: name, file, where (None when absent), the known sha256 (full
    or its published prefix, hex; None when unknown), how it is checked (``sha256``: the full
    digest, ``prefix``: the published prefix of the digest, ``none``: nothing published, its
    digest is recorded with the results), licence, URL."""
    rows: list[dict[str, str | None]] = []
    for name, s in sorted(WEIGHTS.items()):
        where = locate(name)
        checked = "sha256" if s.sha256 else "prefix" if s.sha256_prefix else "none"
        rows.append({"name": name, "file": s.filename, "where": str(where) if where else None,
                     "sha256": s.sha256 or s.sha256_prefix, "check": checked,
                     "licence": s.licence, "url": s.url})
    return rows
