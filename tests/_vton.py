"""Builders for try-on tests: tiny VITON-HD and DressCode datasets in their real layouts, generated
images named as the try-on scripts name them, and randomly initialised LPIPS backbones (files).
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (48, 64)  # (w, h): a 768×1024 test set scaled down 16×
VH_IDS = ["00006_00", "00008_00", "00013_00", "00017_00", "00034_00"]
DC_IDS = {"upper_body": ["000001", "000002", "000003"], "lower_body": ["013563", "013564"],
          "dresses": ["020714", "020715", "020716"]}


def smooth(rs: np.random.RandomState, size=SIZE, shift: int = 0) -> Image.Image:
    """An RGB image of upsampled noise with fine noise on top (w × h)."""
    base = np.clip(rs.randint(0, 256, (8, 6, 3)) + shift, 0, 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(base).resize(size, Image.BILINEAR)).astype(int)
    img = np.clip(img + rs.randint(-12, 13, img.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(img)


def write_vitonhd(root: Path, ids=VH_IDS, seed: int = 0, masks: bool = True) -> Path:
    """A VITON-HD root: test_pairs.txt (rotated garments), test/{image,cloth,agnostic-mask,
    image-densepose} and IDM-VTON's tagged json for all but the last garment."""
    rs = np.random.RandomState(seed)
    test = root / "test"
    folders = ["image", "cloth", "image-densepose"] + (["agnostic-mask"] if masks else [])
    for name in folders:
        (test / name).mkdir(parents=True, exist_ok=True)
    for i, ident in enumerate(ids):
        smooth(rs, shift=5 * i).save(test / "image" / f"{ident}.jpg", quality=95)
        smooth(rs, shift=-5 * i).save(test / "cloth" / f"{ident}.jpg", quality=95)
        smooth(rs).save(test / "image-densepose" / f"{ident}.jpg", quality=95)
        if masks:
            mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
            mask[10:40, 8:40] = 255
            Image.fromarray(mask).save(test / "agnostic-mask" / f"{ident}_mask.png")
    lines = [f"{a}.jpg {ids[(i + 1) % len(ids)]}.jpg" for i, a in enumerate(ids)]
    (root / "test_pairs.txt").write_text("\n".join(lines) + "\n")
    tags = {"data": [{"file_name": f"{ident}.jpg", "tag_info": [
        {"tag_name": "item", "tag_category": "t-shirts"},
        {"tag_name": "sleeveLength", "tag_category": "short sleeve"},
        {"tag_name": "neckLine", "tag_category": None}]} for ident in ids[:-1]]}
    (test / "vitonhd_test_tagged.json").write_text(json.dumps(tags))
    return root


def write_dresscode(root: Path, ids=DC_IDS, seed: int = 0) -> Path:
    """A DressCode root: per category images/ (_0 persons, _1 garments), pair files, densepose,
    masks, captions; plus the root-level pair files (all categories)."""
    rs = np.random.RandomState(seed)
    root_lines = {"paired": [], "unpaired": []}
    for c, (cat, cat_ids) in enumerate(ids.items()):
        base = root / cat
        for sub in ("images", "image-densepose", "agnostic-mask"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for i, ident in enumerate(cat_ids):
            smooth(rs, shift=10 * c + 3 * i).save(base / "images" / f"{ident}_0.jpg", quality=95)
            smooth(rs, shift=-10 * c).save(base / "images" / f"{ident}_1.jpg", quality=95)
            smooth(rs).save(base / "image-densepose" / f"{ident}_0.jpg", quality=95)
            Image.new("L", SIZE, 255).save(base / "agnostic-mask" / f"{ident}_0_mask.png")
        paired = [f"{i}_0.jpg {i}_1.jpg" for i in cat_ids]
        unpaired = [f"{a}_0.jpg {cat_ids[(k + 1) % len(cat_ids)]}_1.jpg"
                    for k, a in enumerate(cat_ids)]
        (base / "test_pairs_paired.txt").write_text("\n".join(paired) + "\n")
        (base / "test_pairs_unpaired.txt").write_text("\n".join(unpaired) + "\n")
        (base / "dc_caption.txt").write_text("\n".join(f"{i}_1.jpg a {cat} garment"
                                                       for i in cat_ids) + "\n")
        root_lines["paired"] += paired
        root_lines["unpaired"] += unpaired
    for name, lines in root_lines.items():
        (root / f"test_pairs_{name}.txt").write_text("\n".join(lines) + "\n")
    return root


def write_generated(folder: Path, names: list[str], seed: int = 1, size=SIZE) -> Path:
    """One image per file name (as IDM-VTON/CatVTON save them: <person>.jpg or .png)."""
    folder.mkdir(parents=True, exist_ok=True)
    rs = np.random.RandomState(seed)
    for i, name in enumerate(names):
        img = smooth(rs, size=size, shift=4 * (i % 5))
        if name.endswith(".jpg"):
            img.save(folder / name, quality=95)
        else:
            img.save(folder / name)
    return folder


@functools.cache
def backbone_weights(net: str, seed: int = 0) -> Path:
    """A torchvision backbone's random `features.*` tensors saved to a file (cached per session)."""
    import torch
    import torchvision

    builders = {"alex": torchvision.models.alexnet, "squeeze": torchvision.models.squeezenet1_1,
                "vgg": torchvision.models.vgg16}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        feats = builders[net](weights=None).features
    folder = tempfile.mkdtemp(prefix="diffbench-lpips-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / f"{net}-random.pth"
    torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
    return path


def weights_args(nets=("alex", "squeeze")) -> dict[str, str]:
    """--weights NAME=PATH pairs of random LPIPS backbones."""
    from diffbench.features.lpips import BACKBONE_WEIGHTS

    return {BACKBONE_WEIGHTS[n]: str(backbone_weights(n)) for n in nets}


@functools.cache
def reference_lpips(net: str):
    """The lpips package's LPIPS v0.1 with this session's random backbone loaded into it."""
    import lpips
    import torch

    from diffbench.features.lpips import TAPS

    model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(backbone_weights(net), weights_only=True)
    for k, _ in enumerate(TAPS[net]):
        for name, module in getattr(model.net, f"slice{k + 1}").named_children():
            module.load_state_dict({p: state[f"features.{name}.{p}"]
                                    for p in module.state_dict()})
    return model.eval()
