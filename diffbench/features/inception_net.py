"""The 2015 TF Inception network in its PyTorch port (pytorch-fid / torch-fidelity architecture).

Module names equal torch-fidelity's, so its weights file
``weights-inception-2015-12-05-6726825d.pth`` loads as is. The TF-compatibility patches of the
port are kept: average pools exclude padding (``count_include_pad=False``), the last block's pool
branch is a max pool, BatchNorm eps is 0.001 and the classifier has 1008 outputs.

BatchNorm can be folded into the preceding convolution (`fold_batchnorm`) for speed; this changes
results only by float rounding (measured in the tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm(eps=1e-3) + ReLU; `bn` becomes Identity once folded.

    Once folded and `prepack`ed, the CPU runs conv + bias + ReLU as one oneDNN call on weights
    reordered once into oneDNN's blocked layout (the plain path reorders them at every call and
    runs the ReLU as a separate pass over the output). Same primitive, same bits (tested),
    where the plain path takes oneDNN: PyTorch runs a 1×1 kernel on a batch under 16 with its
    own kernel when it has one thread, which rounds differently; the prepacked path always runs
    oneDNN, so its values do not depend on the thread count.
    """

    def __init__(self, cin: int, cout: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=0.001)
        self.prepacked = False
        self._packed: torch.Tensor | None = None  # oneDNN weight, made at the first CPU call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prepacked and x.device.type == "cpu":
            return self._fused(x)
        return F.relu(self.bn(self.conv(x)), inplace=True)

    def _fused(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if self._packed is None:
            # Reordered for this input's shape; oneDNN's result does not depend on the batch
            # size it was packed for (tested), so one packing serves every batch. A build or
            # CPU whose oneDNN lacks this path falls back to the plain one for good.
            try:
                self._packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                    c.weight.detach().to_mkldnn(), c.padding, c.stride, c.dilation, c.groups,
                    tuple(x.shape))
                return self._call_packed(x)
            except (RuntimeError, NotImplementedError):
                self.prepacked, self._packed = False, None
                return self.forward(x)
        return self._call_packed(x)

    def _call_packed(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return torch.ops.mkldnn._convolution_pointwise(
            x, self._packed, c.bias, c.padding, c.stride, c.dilation, c.groups, "relu", [], "")

    def fold(self) -> None:
        """Fold the (eval-mode) BatchNorm into the convolution."""
        bn = self.bn
        if not isinstance(bn, nn.BatchNorm2d):
            return
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv = nn.Conv2d(self.conv.in_channels, self.conv.out_channels, self.conv.kernel_size,
                         self.conv.stride, self.conv.padding, bias=True)
        conv.weight.data = self.conv.weight.data * scale.view(-1, 1, 1, 1)
        conv.bias.data = bn.bias - bn.running_mean * scale
        self.conv, self.bn = conv, nn.Identity()
        self._packed = None


def _avg(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor, tap: list | None = None) -> torch.Tensor:
        b1 = self.branch1x1(x)
        if tap is not None:
            tap.append(b1)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([b1, b7, d, self.branch_pool(_avg(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """Mixed_7b (average pool branch) and Mixed_7c (`max_pool=True`, the TF graph's quirk)."""

    def __init__(self, cin: int, max_pool: bool = False):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class InceptionNet(nn.Module):
    """The FID Inception network: pool3 (2048), logits_unbiased (1008) and ADM's sFID map."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.MaxPool_1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.MaxPool_2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.AvgPool = nn.AdaptiveAvgPool2d(output_size=(1, 1))
        self.fc = nn.Linear(2048, 1008)

    def fold_batchnorm(self) -> InceptionNet:
        """Fold every BatchNorm into its convolution (eval only)."""
        for module in self.modules():
            if isinstance(module, BasicConv2d):
                module.fold()
        return self

    def prepack(self, enable: bool = True) -> bool:
        """Run every (folded) conv + ReLU as one oneDNN call on prepacked weights on the CPU.

        Call after `fold_batchnorm` and after moving the weights; a no-op returning False where
        this torch has no oneDNN (or with enable=False, which restores the plain path). Other
        devices keep the plain path.
        """
        ok = (enable and torch.backends.mkldnn.is_available()
              and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
              and hasattr(torch._C._nn, "mkldnn_reorder_conv2d_weight"))
        convs = [m for m in self.modules() if isinstance(m, BasicConv2d)]
        ok = ok and all(isinstance(m.bn, nn.Identity) and m.conv.bias is not None for m in convs)
        for m in convs:
            m.prepacked, m._packed = ok, None
        return ok

    def logits_unbiased(self, pool3: torch.Tensor) -> torch.Tensor:
        """pool3 (N×2048) → the 1008 logits without the classifier's bias."""
        return pool3 @ self.fc.weight.T

    def forward(self, x: torch.Tensor, sfid: bool = True,
                logits: bool = True) -> dict[str, torch.Tensor]:
        """x: normalised N×3×299×299 → pool3, logits_unbiased (optionally) and sfid (optionally)."""
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1",
                     "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2", "Mixed_5b", "Mixed_5c",
                     "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c"):
            x = getattr(self, name)(x)
        tap: list[torch.Tensor] = []
        x = self.Mixed_6d(x, tap if sfid else None)
        for name in ("Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        pool3 = torch.flatten(self.AvgPool(x), 1)
        out = {"pool3": pool3}
        if logits:
            out["logits_unbiased"] = self.logits_unbiased(pool3)
        if sfid:
            # TF's mixed_6/conv:0 (NHWC) sliced [..., :7] and flattened: 17·17·7 = 2023 values.
            out["sfid"] = tap[0][:, :7].permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return out
