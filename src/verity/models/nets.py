"""Small networks trained from scratch: the low-level NPR branch and the two paper baselines.

All take RGB in [0, 1], shape (N, 3, H, W) with any H, W >= 32, and return one logit per image (N,).
Needs torch (the ``[train]`` extra); verity runs the exported ONNX graphs.

- :class:`NPRNet` -- verity's low-level branch: the neighbouring-pixel residual
  ``x - up(down(x))`` (nearest, factor 2; Tan et al., CVPR 2024) computed inside the graph, then a
  compact residual CNN (about 0.1 M parameters) with global average pooling.
- :class:`NPRResNet` -- the NPR paper's recipe at small scale: the residual fed to a ResNet stem and
  the first two ResNet stages (basic blocks here, widths 32/64 instead of ResNet-50's bottlenecks).
- :class:`SmallResNet` -- a CNNDetection-style classifier (Wang et al., CVPR 2020) on the RGB image:
  a ResNet-18-like network at quarter width (16-32-64-128) instead of ResNet-50.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """``x - up(down(x))`` with nearest 2x down/up-sampling; H and W are cropped to even sizes.

    Matches :func:`verity.ops.npr.npr_residual` (numpy) on the same crop.
    """
    h = x.shape[2] // 2 * 2
    w = x.shape[3] // 2 * 2
    x = x[:, :, :h, :w]
    d = x[:, :, 0::2, 0::2]
    up = d.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    return x - up


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with a 1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.proj is None else self.proj(x)))


class NPRNet(nn.Module):
    """verity's low-level branch: NPR residual -> compact residual CNN -> logit (N,).

    The residual is scaled by ``gain`` (it is small: a few grey levels). The stem is a 4x4
    convolution with stride 2 aligned to the 2x2 cells of the residual, so it sees every cell's four
    values together (where up-sampling leaves its signature) while halving the resolution at once;
    three residual stages follow, then global average pooling and a linear head.
    """

    def __init__(self, width: int = 24, gain: float = 8.0):
        super().__init__()
        self.gain = gain
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(
            BasicBlock(w, w, 2),
            BasicBlock(w, 2 * w, 2),
            BasicBlock(2 * w, 2 * w, 2),
        )
        self.fc = nn.Linear(2 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = npr_residual(x) * self.gain
        y = self.stages(self.stem(r))
        return self.fc(y.mean((2, 3)))[:, 0]


class NPRResNet(nn.Module):
    """NPR paper architecture at small scale: residual -> ResNet stem -> stages 1-2 -> pool -> linear."""

    def __init__(self, width: int = 32, gain: float = 8.0):
        super().__init__()
        self.gain = gain
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        self.layer1 = nn.Sequential(BasicBlock(w, w), BasicBlock(w, w))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w))
        self.fc = nn.Linear(2 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = npr_residual(x) * self.gain
        return self.fc(self.layer2(self.layer1(self.stem(r))).mean((2, 3)))[:, 0]


class SmallResNet(nn.Module):
    """CNNDetection-style RGB classifier: ResNet-18 layout at quarter width (about 0.7 M parameters)."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.register_buffer("mean", torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        layers = []
        cin = w
        for i, c in enumerate((w, 2 * w, 4 * w, 8 * w)):
            layers += [BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c)]
            cin = c
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))[:, 0]


#: Constructors by name, for the trainer and the tests.
NETS = {"npr": NPRNet, "npr_paper": NPRResNet, "cnndetection": SmallResNet}


class TinyAutoencoder(nn.Module):
    """A small convolutional autoencoder used to make content-matched fakes (B-Free idea).

    Encoder: two stride-2 convolutions (4x down-sampling) to a ``latent``-channel code; decoder:
    two 2x up-sampling steps, either nearest + 3x3 convolution (``up="nearest"``, as in the Stable
    Diffusion VAE decoder) or 4x4 transposed convolution (``up="deconv"``, as in DCGAN-style
    generators). Fully convolutional: any H, W divisible by 4.
    """

    def __init__(self, latent: int = 8, width: int = 32, up: str = "nearest"):
        super().__init__()
        w = width
        self.enc = nn.Sequential(
            nn.Conv2d(3, w, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 4, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, latent, 1),
        )

        def upblock(cin: int, cout: int) -> list[nn.Module]:
            if up == "nearest":
                return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU(inplace=True)]
            if up == "deconv":
                return [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.ReLU(inplace=True)]
            raise ValueError(f"unknown up-sampling {up!r}")

        self.dec = nn.Sequential(
            nn.Conv2d(latent, 2 * w, 3, 1, 1), nn.ReLU(inplace=True),
            *upblock(2 * w, w), *upblock(w, w),
            nn.Conv2d(w, 3, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(self.enc(x)))


class MaskedConv2d(nn.Conv2d):
    """Causal (raster-order) convolution of a PixelCNN: a pixel sees only the pixels above it and to
    its left. Mask ``"A"`` also hides the centre (first layer: the pixel being predicted), mask
    ``"B"`` keeps it (later layers: the centre holds features computed from the past only).
    """

    def __init__(self, cin: int, cout: int, k: int, mask: str):
        super().__init__(cin, cout, k, 1, k // 2)
        m = torch.ones(1, 1, k, k)
        c = k // 2
        m[:, :, c, c + (1 if mask == "B" else 0):] = 0
        m[:, :, c + 1:] = 0
        self.register_buffer("mask", m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, 1, self.padding)


class ZedNet(nn.Module):
    """Lossless predictive coder of 8-bit luma for the zero-shot (ZED-style) branch.

    Input (N, 1, H, W) float32 integer grey levels in [0, 255]; output (N, 2, H, W): the mean and the
    log-scale (natural log, grey levels) of a discretised Laplace distribution predicting every pixel
    from the pixels above and to its left only (masked convolutions: a 5x5 mask-A layer, then
    residual 3x3 mask-B layers). About 8 k parameters; trained on real photos only.

    With ``coarse=True`` the prediction is also conditioned on the image's own 2x reduction (the mean
    of each 2x2 cell, rounded, then repeated back to full size; computed inside the graph), as in a
    coarse-to-fine lossless coder where the coarser level is decoded first: every pixel is then
    predicted from the coarse level around it (unmasked 5x5 convolution) and the finer pixels above
    and to its left. H and W must be even.
    """

    def __init__(self, width: int = 16, depth: int = 3, min_log_scale: float = -3.0, max_log_scale: float = 4.2,
                 coarse: bool = False):
        super().__init__()
        self.inp = MaskedConv2d(1, width, 5, "A")
        self.coarse = nn.Conv2d(1, width, 5, 1, 2, bias=False) if coarse else None
        self.body = nn.ModuleList(MaskedConv2d(width, width, 3, "B") for _ in range(depth))
        self.out = nn.Conv2d(width, 2, 1)
        self.lo, self.hi = min_log_scale, max_log_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - 128.0) / 64.0
        h = self.inp(z)
        if self.coarse is not None:
            c = torch.floor(F.avg_pool2d(x, 2) + 0.5)
            c = c.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
            h = h + self.coarse((c - 128.0) / 64.0)
        h = F.relu(h)
        for layer in self.body:
            h = h + F.relu(layer(h))
        o = self.out(h)
        mu = o[:, :1] * 64.0 + 128.0
        ls = self.lo + (self.hi - self.lo) * torch.sigmoid(o[:, 1:])
        return torch.cat([mu, ls], 1)


def discretized_laplace_logp(x: torch.Tensor, mu: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """log P(x) in nats of integer values ``x`` under a Laplace(mu, b) discretised to unit bins.

    Matches :func:`verity.ops.zed.laplace_nll` (numpy); the range [0, 255] is not clipped (the
    statistics skip saturated pixels).
    """
    b = torch.exp(log_b)
    lo = (x - 0.5 - mu) / b
    hi = (x + 0.5 - mu) / b
    log_edge = torch.log(-torch.expm1(-1.0 / b)) - 0.6931471805599453  # + log(1/2)
    right = log_edge - lo.clamp(min=0.0)
    left = log_edge + hi.clamp(max=0.0)
    centre = torch.log((0.5 * -torch.expm1(lo.clamp(max=0.0)) + 0.5 * -torch.expm1(-hi.clamp(min=0.0))).clamp(min=1e-12))
    return torch.where(lo >= 0, right, torch.where(hi <= 0, left, centre))
