"""ShuffleNetV2 (Ma et al. 2018, "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design"), layout as torchvision's ``shufflenet_v2_x*`` (0.5x: 1,366,792 params).

Stride-1 unit: split channels in two (``torch.chunk``), transform one half with
1x1-dw3x3-1x1, concatenate, shuffle. Stride-2 unit: both branches see the whole input.
Small images (``image_size <= 64``): the stem conv uses stride 1 and the stem max-pool is an
``nn.Identity``, so the total downsampling is 8 and a 32x32 input ends at 4x4.
"""

from __future__ import annotations

import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.zoo.image_size import SMALL_IMAGE_MAX, check_image_size
from torchslim.zoo.registry import register_model

# Output channels of stem, stage2-4 and conv5 per width multiplier (Table 5 of the paper).
_WIDTHS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
_REPEATS = (4, 8, 4)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, g*c, H, W) -> (N, c*g, H, W), interleaving the g groups (ShuffleNet, Zhang et al. 2018)."""
    n, channels, h, w = x.size(0), x.size(1), x.size(2), x.size(3)
    x = x.view(n, groups, channels // groups, h, w)
    x = x.transpose(1, 2).contiguous()
    return x.view(n, channels, h, w)


def _conv_bn(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(out_ch)]


class ShuffleUnit(nn.Module):
    """(N, in, H, W) -> (N, out, H/stride, W/stride); stride 1 needs in == out."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        branch_ch = out_ch // 2
        if stride == 1:
            self.branch1 = None
            branch2_in = branch_ch
        else:
            self.branch1 = nn.Sequential(
                *_conv_bn(in_ch, in_ch, 3, stride, groups=in_ch),
                *_conv_bn(in_ch, branch_ch, 1),
                nn.ReLU(),
            )
            branch2_in = in_ch
        self.branch2 = nn.Sequential(
            *_conv_bn(branch2_in, branch_ch, 1),
            nn.ReLU(),
            *_conv_bn(branch_ch, branch_ch, 3, stride, groups=branch_ch),
            *_conv_bn(branch_ch, branch_ch, 1),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            x1, x2 = torch.chunk(x, 2, dim=1)
            out = torch.cat([x1, self.branch2(x2)], dim=1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """(N, C, S, S) -> (N, num_classes)."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...], small: bool) -> None:
        super().__init__()
        stem_ch = widths[0]
        self.conv1 = nn.Sequential(*_conv_bn(in_channels, stem_ch, 3, stride=1 if small else 2), nn.ReLU())
        self.maxpool = nn.Identity() if small else nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = stem_ch
        stages = []
        for repeats, out_ch in zip(_REPEATS, widths[1:4]):
            units = [ShuffleUnit(in_ch, out_ch, 2)]
            units += [ShuffleUnit(out_ch, out_ch, 1) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            in_ch = out_ch
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = nn.Sequential(*_conv_bn(in_ch, widths[4], 1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(widths[4], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(self.flatten(self.avgpool(self.conv5(x))))


@register_model(
    "shufflenetv2",
    input_shape=(3, 224, 224),
    num_classes=1000,
    description="ShuffleNetV2 (channel split, shuffle, depthwise), 0.5x: 1,366,792 params",
)
def shufflenetv2(
    *, in_channels: int = 3, num_classes: int = 1000, width_mult: float = 0.5, image_size: int = 224
) -> nn.Module:
    check_image_size("shufflenetv2", image_size, minimum=32)
    if not isinstance(width_mult, (int, float)) or width_mult not in _WIDTHS:
        choices = sorted(_WIDTHS)
        raise UserError(f"model 'shufflenetv2': width_mult must be one of {choices}, got {width_mult!r}")
    small = image_size <= SMALL_IMAGE_MAX
    return ShuffleNetV2(in_channels, num_classes, _WIDTHS[width_mult], small=small)
