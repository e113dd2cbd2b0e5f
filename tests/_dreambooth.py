"""Builders for DreamBooth tests: a tiny dataset in google/dreambooth's layout, generated images,
and randomly initialised CLIP (open_clip ViT-B-32-quickgelu) and DINO (timm ViT-S/16) weight files.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
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


# Shared across test files (one pytest process): random weights are made once, reference models
# load once, and embeddings are cached by image content, so each file pays only for its own run.

@functools.cache
def weights() -> dict[str, str]:
    """--weights NAME=PATH pairs of random CLIP ViT-B-32-quickgelu and DINO ViT-S/16 files."""
    folder = Path(tempfile.mkdtemp(prefix="diffbench-dreambooth-"))
    atexit.register(shutil.rmtree, folder, True)
    return {"clip-vit-b-32-openai": str(make_clip_weights(folder / "clip.safetensors")),
            "dino-vits16": str(make_timm_weights(folder / "dino.pth"))}


class Direct:
    """The reference computation: open_clip / timm, one image at a time, their own transforms."""

    def __init__(self, paths: dict[str, str]):
        import open_clip
        import timm
        import torch
        from torchvision import transforms as T

        self.torch = torch
        self.clip, _, self.clip_tf = open_clip.create_model_and_transforms(
            "ViT-B-32-quickgelu", pretrained=paths["clip-vit-b-32-openai"])
        self.clip.eval()
        self.tokenizer = open_clip.get_tokenizer("ViT-B-32-quickgelu")
        self.dino = timm.create_model("vit_small_patch16_224.dino", pretrained=False,
                                      num_classes=0)
        self.dino.load_state_dict(torch.load(paths["dino-vits16"], weights_only=True))
        self.dino.eval()
        # the official DINO eval transform
        self.dino_tf = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
                                  T.CenterCrop(224), T.ToTensor(),
                                  T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
        self._images: dict[str, dict[str, np.ndarray]] = {}
        self._texts: dict[str, np.ndarray] = {}

    def _unit(self, x) -> np.ndarray:
        return self.torch.nn.functional.normalize(x.double(), dim=-1)[0].numpy()

    def image(self, path: str | Path) -> dict[str, np.ndarray]:
        """Unit CLIP and DINO embeddings of an image file (cached by content)."""
        data = Path(path).read_bytes()
        key = hashlib.sha256(data).hexdigest()
        if key not in self._images:
            img = Image.open(path).convert("RGB")
            with self.torch.no_grad():
                self._images[key] = {"clip": self._unit(self.clip.encode_image(
                    self.clip_tf(img)[None])), "dino": self._unit(self.dino(self.dino_tf(img)[None]))}
        return self._images[key]

    def text(self, text: str) -> np.ndarray:
        """Unit CLIP text embedding (cached)."""
        if text not in self._texts:
            with self.torch.no_grad():
                self._texts[text] = self._unit(self.clip.encode_text(self.tokenizer([text])))
        return self._texts[text]


@functools.cache
def direct() -> Direct:
    """The process-wide reference computation on `weights()`."""
    return Direct(weights())


def expected(samples, refs: dict[str, list[str]], token: str = "sks") -> dict[str, dict]:
    """DreamBench scores by the reference code: {metric: {"value", "subjects": {s: value}}}.

    Per generated image the mean cosine over its subject's references (DINO, CLIP-I) or the
    cosine with its prompt without the token (CLIP-T); per subject the mean; overall the mean
    over subjects.
    """
    ref_code = direct()
    groups: dict[str, list[str]] = {}
    for key in samples.keys:
        groups.setdefault(samples.condition(key)["subject"], []).append(key)
    out: dict[str, dict] = {m: {"subjects": {}} for m in ("dino", "clip_i", "clip_t")}
    for subject, keys in groups.items():
        gen = [ref_code.image(samples.path(k)) for k in keys]
        real = [ref_code.image(r) for r in refs[subject]]
        for metric, net in (("dino", "dino"), ("clip_i", "clip")):
            out[metric]["subjects"][subject] = np.mean(
                [np.mean([g[net] @ r[net] for r in real]) for g in gen])
        texts = [samples.condition(k)["prompt"].replace(f"{token} ", "") for k in keys]
        out["clip_t"]["subjects"][subject] = np.mean(
            [g["clip"] @ ref_code.text(t) for g, t in zip(gen, texts, strict=True)])
    for entry in out.values():
        entry["value"] = float(np.mean(list(entry["subjects"].values())))
    return out
