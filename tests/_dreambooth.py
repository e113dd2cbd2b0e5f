"""Builders for DreamBooth tests: a tiny dataset in google/dreambooth's layout, generated images,
and randomly initialised CLIP (open_clip ViT-B-32-quickgelu) and DINO (timm ViT-S/16) weight files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

OBJECT = ["in the jungle", "with a city in the background"]
LIVE = ["in the snow", "wearing a red hat"]
PROPERTY = "a red {0} {1}"


def prompts_text(classes: dict[str, str], object_contexts=OBJECT, live_contexts=LIVE) -> str:
    """A prompts_and_classes.txt in the real file's format (fewer prompts)."""
    def plist(contexts):
        rows = [f"'a {{0}} {{1}} {c}'.format(unique_token, class_token)" for c in contexts]
        rows.append(f"'{PROPERTY}'.format(unique_token, class_token)")
        return "prompt_list = [\n" + ",\n".join(rows) + "\n]\n"

    table = "\n".join(f"{s},{c}" for s, c in classes.items())
    return (f"Classes\n\nsubject_name,class\n{table}\n\nPrompts\n\nObject Prompts\n\n"
            f"{plist(object_contexts)}\nLive Subject Prompts\n\n{plist(live_contexts)}")


def smooth_image(rs: np.random.RandomState, size: tuple[int, int], shift: int = 0) -> Image.Image:
    """An RGB image of upsampled noise (w × h), so resizing has something to do."""
    base = np.clip(rs.randint(0, 256, (12, 12, 3)) + shift, 0, 255).astype(np.uint8)
    return Image.fromarray(base).resize(size, Image.BILINEAR)


def write_dataset(root: Path, subjects: dict[str, tuple[str, int]] | None = None,
                  seed: int = 0) -> Path:
    """`root` = a DreamBench 'dataset' folder: {subject: (class, n_images)} as JPEGs."""
    subjects = subjects or {"dog": ("dog", 3), "can": ("can", 2)}
    root.mkdir(parents=True, exist_ok=True)
    (root / "prompts_and_classes.txt").write_text(
        prompts_text({s: c for s, (c, _) in subjects.items()}))
    rs = np.random.RandomState(seed)
    for i, (subject, (_, n)) in enumerate(subjects.items()):
        (root / subject).mkdir(exist_ok=True)
        for j in range(n):
            # non-square, different sizes: the shorter-side resize and centre crop matter
            smooth_image(rs, (260 + 30 * j, 300 - 20 * j), 20 * i).save(
                root / subject / f"{j:02d}.jpg", quality=90)
    return root


def write_generated(folder: Path, keys: list[str], seed: int = 1) -> Path:
    """One PNG per request key (64×64, or 80×64 for every third)."""
    folder.mkdir(parents=True, exist_ok=True)
    rs = np.random.RandomState(seed)
    for i, key in enumerate(keys):
        smooth_image(rs, (80 if i % 3 == 0 else 64, 64), 10 * (i % 4)).save(folder / f"{key}.png")
    return folder


def make_clip_weights(path: Path, model: str = "ViT-B-32-quickgelu", seed: int = 0) -> Path:
    """A randomly initialised open_clip model's state dict (float16 safetensors, to stay small)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    net = open_clip.create_model(model, pretrained=None)
    save_file({k: v.detach().half().contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def make_timm_weights(path: Path, arch: str = "vit_small_patch16_224.dino", seed: int = 0,
                      **kwargs) -> Path:
    """A randomly initialised timm ViT (no head) state dict saved with torch.save."""
    import timm
    import torch

    torch.manual_seed(seed)
    net = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
    torch.save(net.state_dict(), path)
    return path
