"""SSIM and LPIPS against the libraries the try-on protocols name, on the same inputs and weights.

SSIM: scikit-image (grayscale uint8, Gaussian weights, population covariance, range 255) and
torchmetrics (RGB in [0,1], range 1, 11-tap Gaussian σ 1.5) in float64, with both border
conventions, to 1e-6 (observed ~1e-15). LPIPS: the lpips package (v0.1, its shipped linear
weights) with the same random backbone loaded into it, to 1e-6 (observed ~1e-8).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from diffbench.errors import MetricInputError, WeightsError
from diffbench.features.lpips import LINEAR_SHA256, LPIPSNet, linear_weights_path
from diffbench.metrics.ssim import gaussian_window, pil_gray, ssim_batch, ssim_values
from tests._vton import backbone_weights, reference_lpips


def pairs(seed: int = 0):
    """Image pairs of several sizes: a noisy copy, an unrelated image, a flat one."""
    rs = np.random.RandomState(seed)
    out = []
    for h, w in ((64, 48), (37, 53), (120, 90)):
        a = rs.randint(0, 256, (h, w, 3)).astype(np.uint8)
        near = np.clip(a.astype(int) + rs.randint(-30, 31, a.shape), 0, 255).astype(np.uint8)
        out += [(a, near), (a, rs.randint(0, 256, (h, w, 3)).astype(np.uint8)),
                (np.full((h, w, 3), 128, np.uint8), near)]
    return out


def ssim_images(a: np.ndarray, b: np.ndarray, *, color: str = "rgb",
                border: str = "valid") -> float:
    """The metric's own compute (`ssim_values`, ground truth `b`) on one uint8 H×W×3 pair, at
    the protocol defaults: rgb in [0, 1] (range 1), or gray in [0, 255] (range 255)."""
    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]

    return float(ssim_values(t(b), t(a), color=color, data_range=255.0 if color == "gray" else 1.0,
                             sigma=1.5, k1=0.01, k2=0.03, border=border)[0])


def gray(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).convert("L"))


def as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255.0


def test_pil_gray_is_bit_exact():
    rs = np.random.RandomState(3)
    a = rs.randint(0, 256, (50, 70, 3)).astype(np.uint8)
    a[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                [1, 2, 3], [254, 1, 128], [128, 128, 128]]
    ours = pil_gray(torch.from_numpy(a).permute(2, 0, 1)[None])[0, 0].numpy()
    assert np.array_equal(ours, gray(a))


def test_ssim_gray_matches_scikit_image():
    for a, b in pairs():
        want = structural_similarity(gray(a), gray(b), data_range=255, gaussian_weights=True,
                                     use_sample_covariance=False)
        assert abs(ssim_images(a, b, color="gray") - want) < 1e-6


def test_ssim_rgb_matches_torchmetrics_both_borders():
    for a, b in pairs(1):
        ta, tb = as_tensor(a), as_tensor(b)
        full = tm_ssim(ta, tb, data_range=1.0, return_full_image=True)[1]
        # torchmetrics <= 1.4.1 cropped the reflect-padded border: the same crop of its map
        assert abs(ssim_images(a, b) - full[..., 5:-5, 5:-5].mean().item()) < 1e-6
        # torchmetrics >= 1.4.2 (installed here) averages the whole map
        assert abs(ssim_images(a, b, border="reflect") - tm_ssim(ta, tb, data_range=1.0).item()) \
            < 1e-6


def test_ssim_batched_strips_equal_whole_images():
    batch = pairs(2)[:2]
    x = torch.stack([as_tensor(a)[0] for a, _ in batch])
    y = torch.stack([as_tensor(b)[0] for _, b in batch])
    whole = ssim_batch(x, y, strip_rows=10_000)
    for rows in (1, 7, 32):
        assert torch.allclose(ssim_batch(x, y, strip_rows=rows), whole, atol=1e-12)
    single = [ssim_batch(x[i:i + 1], y[i:i + 1])[0] for i in range(2)]
    assert torch.allclose(torch.stack(single), whole, atol=1e-12)


def test_ssim_closed_forms():
    a, b = pairs()[0]
    assert ssim_images(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim_images(a, a, color="gray", border="reflect") == pytest.approx(1.0, abs=1e-12)
    assert ssim_images(a, b) == pytest.approx(ssim_images(b, a), abs=1e-12)
    window = gaussian_window()
    assert len(window) == 11 and sum(window) == pytest.approx(1.0, abs=1e-15)
    # a constant image against a constant image: luminance term only, contrast/structure = 1
    c1 = (0.01) ** 2
    x = torch.full((1, 1, 20, 20), 0.2, dtype=torch.float64)
    y = torch.full((1, 1, 20, 20), 0.6, dtype=torch.float64)
    want = (2 * 0.2 * 0.6 + c1) / (0.2 ** 2 + 0.6 ** 2 + c1)
    assert ssim_batch(x, y).item() == pytest.approx(want, abs=1e-12)


def test_ssim_bad_inputs():
    a, b = pairs()[0]
    with pytest.raises(MetricInputError, match="equal"):
        ssim_batch(as_tensor(a), as_tensor(b)[..., :-1])
    with pytest.raises(MetricInputError, match="window"):
        ssim_batch(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(MetricInputError, match="border"):
        ssim_batch(as_tensor(a), as_tensor(b), border="same")
    with pytest.raises(MetricInputError, match="uint8"):
        pil_gray(torch.zeros(1, 3, 4, 4))


def lpips_inputs(seed: int, n: int = 3, size=(64, 48)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 3, *size, generator=g) * 2 - 1
    x1 = (x0 + 0.3 * torch.randn(n, 3, *size, generator=g)).clamp(-1, 1)
    return x0, x1


@pytest.mark.parametrize("net", ["alex", "squeeze"])
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_lpips_matches_lpips_package(net):
    ours = LPIPSNet(net, backbone_weights(net))
    ref = reference_lpips(net)
    for seed, size in ((0, (64, 48)), (1, (128, 96)), (2, (37, 53))):
        x0, x1 = lpips_inputs(seed, size=size)
        with torch.no_grad():
            want = ref(x0, x1).flatten()
        got = ours(x0, x1)
        assert torch.allclose(got, want, atol=1e-6, rtol=0), (got - want).abs().max()
        assert got.min() > 0.01  # a real distance, not a degenerate zero
    x0, _ = lpips_inputs(5)
    assert ours(x0, x0).abs().max().item() == 0.0


@pytest.mark.slow
def test_lpips_vgg_matches_lpips_package():
    ours = LPIPSNet("vgg", backbone_weights("vgg"))
    x0, x1 = lpips_inputs(7, n=2, size=(32, 32))
    with torch.no_grad():
        want = reference_lpips("vgg")(x0, x1).flatten()
    assert torch.allclose(ours(x0, x1), want, atol=1e-6, rtol=0)


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_lpips_per_pair_values_do_not_depend_on_batch():
    ours = LPIPSNet("squeeze", backbone_weights("squeeze"))
    x0, x1 = lpips_inputs(3, n=4)
    whole = ours(x0, x1)
    single = torch.cat([ours(x0[i:i + 1], x1[i:i + 1]) for i in range(4)])
    assert torch.allclose(whole, single, atol=1e-6, rtol=0)


def test_lpips_weights_errors(tmp_path):
    bad = tmp_path / "not-alexnet.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(WeightsError, match="not torchvision alex weights"):
        LPIPSNet("alex", bad)
    with pytest.raises(MetricInputError, match="net"):
        LPIPSNet("resnet", bad)
    with pytest.raises(WeightsError, match="not found"):
        linear_weights_path("alex", tmp_path / "absent.pth")
    import hashlib
    assert hashlib.sha256(linear_weights_path("squeeze").read_bytes()).hexdigest() == \
        LINEAR_SHA256["squeeze"]
    ours = LPIPSNet("alex", backbone_weights("alex"))
    with pytest.raises(MetricInputError, match="equal shape"):
        ours(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 31))
