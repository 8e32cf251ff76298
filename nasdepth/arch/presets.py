"""The classic families as points of the space: ``preset(name, input_shape, num_classes)``.

Every preset is data (an ``ArchConfig``) built by one small function per family from the
numbers of its paper / torchvision's implementation; for a 3x224x224 input and 1000 classes
the built network has torchvision's parameter count (to within VGG-BN's conv biases, 0.003%)
and FLOPs. Inputs smaller than 64 pixels get the small-input variant used on CIFAR-sized data
(3x3 stride-1 stem, no stem pooling, strides dropped where the map is already 1 pixel, a
global-average head).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

from nasdepth.arch.build import input_rank
from nasdepth.arch.config import ArchConfig, StageConfig, StemLayer
from nasdepth.errors import ConfigError, UnknownNameError

#: ``fn(small=...)``: the family's config, small-input variant or not
PresetFn = Callable[..., ArchConfig]
PRESETS: dict[str, PresetFn] = {}
SMALL_BELOW = 64  # inputs with a side under this many pixels get the small-input variant


def register_preset(name: str, fn: PresetFn) -> None:
    if name in PRESETS:
        raise ValueError(f"preset {name!r} is registered twice")
    PRESETS[name] = fn


def preset(name: str, input_shape: Sequence[int] = (3, 224, 224), num_classes: int = 1000, *,
           small: bool | None = None) -> ArchConfig:
    """The ``ArchConfig`` of the classic network ``name`` for ``input_shape``.

    ``small`` None picks the small-input variant when the smallest side is under 64.
    ``num_classes`` is checked here but lives in ``build_model``, as for every config.
    """
    if name not in PRESETS:
        raise UnknownNameError("the presets", "preset", name, PRESETS)
    rank = input_rank(input_shape)
    if rank == 0:
        raise ConfigError("the data", "input_shape", tuple(input_shape),
                          "(channels, length) or (channels, height, width): presets are "
                          "convolutional")
    if num_classes < 2:
        raise ConfigError("the data", "num_classes", num_classes, "an int >= 2")
    side = min(int(s) for s in input_shape[1:])
    if small is None:
        small = side < SMALL_BELOW
    return fit_strides(PRESETS[name](small=small), side)


def fit_strides(cfg: ArchConfig, side: int) -> ArchConfig:
    """Drop stage strides once the feature map is down to one pixel (8x8 inputs through a
    five-stage VGG), so that no stage pools nothing."""
    for layer in cfg.stem:
        side = math.ceil(side / layer.stride)
    stages = []
    for stage in cfg.stages:
        if stage.stride > 1 and side < 2:
            stage = replace(stage, stride=1)
        side = math.ceil(side / stage.stride)
        stages.append(stage)
    return replace(cfg, stages=tuple(stages))


def _strides(n: int) -> list[int]:
    return [1] + [2] * (n - 1)


# --- ResNet, wide ResNet, ResNeXt -------------------------------------------------------------

def _resnet_stem(small: bool, width: int = 64) -> tuple[StemLayer, ...]:
    """ResNet's and DenseNet's: a 7x7/2 conv and a 3x3/2 max pool (small inputs: a 3x3 conv)."""
    if small:
        return (StemLayer("conv", width, 3, 1),)
    return (StemLayer("conv", width, 7, 2), StemLayer("maxpool", None, 3, 2))


def resnet(block: str, depths: Sequence[int], *, small: bool, ratio: float = 0.25,
           cardinality: int = 4) -> ArchConfig:
    """ResNet family: basic (``residual``) blocks of widths 64..512 or bottleneck/grouped
    blocks of output widths 256..2048 whose inner width is ``ratio`` of the output."""
    base = 64 if block == "residual" else 256
    stages = tuple(
        StageConfig(block=block, depth=d, width=base * 2**i, stride=s, bottleneck_ratio=ratio,
                    cardinality=cardinality)
        for i, (d, s) in enumerate(zip(depths, _strides(len(depths)), strict=True))
    )
    return ArchConfig(stages=stages, stem=_resnet_stem(small))


for _name, _block, _depths, _ratio, _card in [
    ("resnet18", "residual", (2, 2, 2, 2), 0.25, 4),
    ("resnet34", "residual", (3, 4, 6, 3), 0.25, 4),
    ("resnet50", "bottleneck", (3, 4, 6, 3), 0.25, 4),
    ("resnet101", "bottleneck", (3, 4, 23, 3), 0.25, 4),
    ("resnet152", "bottleneck", (3, 8, 36, 3), 0.25, 4),
    ("wide_resnet50_2", "bottleneck", (3, 4, 6, 3), 0.5, 4),
    ("resnext50_32x4d", "grouped", (3, 4, 6, 3), 0.5, 32),  # 32 groups x 4 channels at 256
    ("resnext101_32x8d", "grouped", (3, 4, 23, 3), 1.0, 32),
]:
    register_preset(_name, partial(resnet, _block, _depths, ratio=_ratio, cardinality=_card))


# --- VGG ----------------------------------------------------------------------------------------

def vgg(depths: Sequence[int], *, small: bool, batch_norm: bool = True) -> ArchConfig:
    """Plain 3x3 stacks, max pooling between stages (and before the head), no stem.
    Without batch norm the convolutions carry biases, as in the original."""
    stages = tuple(
        StageConfig(block="plain", depth=d, width=w, stride=s, downsample="maxpool",
                    norm="batch" if batch_norm else "none")
        for d, w, s in zip(depths, (64, 128, 256, 512, 512), _strides(5), strict=True)
    )
    if small:
        return ArchConfig(stages=stages, stem=(), head_hidden=(512,), head_dropout=0.5)
    # torchvision: max pool 2/2 to 7x7, then an adaptive 7x7 average (the identity at 224):
    # one adaptive 7x7 max pool of the 14x14 map is the same operation.
    return ArchConfig(stages=stages, stem=(), head_pool="max", head_pool_size=7,
                      head_hidden=(4096, 4096), head_dropout=0.5)


VGG_DEPTHS: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
for _name, _vgg_depths in VGG_DEPTHS.items():
    register_preset(_name, partial(vgg, _vgg_depths, batch_norm=False))
    register_preset(f"{_name}_bn", partial(vgg, _vgg_depths, batch_norm=True))


# --- DenseNet -----------------------------------------------------------------------------------

def densenet(depths: Sequence[int], *, small: bool, growth: int = 32,
             stem_width: int = 64) -> ArchConfig:
    """DenseNet-BC: dense stages of ``growth`` channels per layer (bottleneck 4 x growth),
    transitions halving the channels and the resolution."""
    stages = tuple(
        StageConfig(block="dense", depth=d, width=growth, growth_rate=growth, expansion=4.0,
                    compression=0.5, stride=s)
        for d, s in zip(depths, _strides(len(depths)), strict=True)
    )
    return ArchConfig(stages=stages, stem=_resnet_stem(small, stem_width))


for _name, _depths, _growth, _stem in [
    ("densenet121", (6, 12, 24, 16), 32, 64), ("densenet169", (6, 12, 32, 32), 32, 64),
    ("densenet201", (6, 12, 48, 32), 32, 64), ("densenet161", (6, 12, 36, 24), 48, 96),
]:
    register_preset(_name, partial(densenet, _depths, growth=_growth, stem_width=_stem))


# --- MobileNetV2 --------------------------------------------------------------------------------

# (expansion t, width c, depth n, stride s), MobileNetV2 table 2
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(*, small: bool) -> ArchConfig:
    """Inverted residuals (``dwsep`` with expansion), ReLU6, a final 1x1 conv to 1280."""
    stages = tuple(
        StageConfig(block="dwsep", depth=n, width=c, stride=s, expansion=float(t),
                    activation="relu6")
        for t, c, n, s in MOBILENET_V2
    ) + (StageConfig(block="plain", depth=1, width=1280, kernel_size=1, activation="relu6"),)
    stem = (StemLayer("conv", 32, 3, 1 if small else 2),)
    return ArchConfig(stages=stages, stem=stem, head_dropout=0.2)


register_preset("mobilenet_v2", mobilenet_v2)


# --- GoogLeNet ----------------------------------------------------------------------------------

# inception 3a..5b: (1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection), stride
GOOGLENET = (
    ((64, 96, 128, 16, 32, 32), 1), ((128, 128, 192, 32, 96, 64), 1),
    ((192, 96, 208, 16, 48, 64), 2), ((160, 112, 224, 24, 64, 64), 1),
    ((128, 128, 256, 24, 64, 64), 1), ((112, 144, 288, 32, 64, 64), 1),
    ((256, 160, 320, 32, 128, 128), 1),
    ((256, 160, 320, 32, 128, 128), 2), ((384, 192, 384, 48, 128, 128), 1),
)


def googlenet(*, small: bool) -> ArchConfig:
    """GoogLeNet without auxiliary classifiers. Its "5x5" branch is one 3x3 conv, as in
    torchvision's implementation (``wide_kernels=(5,)`` gives the paper's)."""
    stages = tuple(
        StageConfig(block="inception", depth=1, width=b[0] + b[2] + b[4] + b[5], branches=b,
                    wide_kernels=(3,), stride=s, downsample="maxpool")
        for b, s in GOOGLENET
    )
    stem = ((StemLayer("conv", 192, 3, 1),) if small else (
        StemLayer("conv", 64, 7, 2), StemLayer("maxpool", None, 3, 2), StemLayer("conv", 64, 1),
        StemLayer("conv", 192, 3), StemLayer("maxpool", None, 3, 2)))
    return ArchConfig(stages=stages, stem=stem, head_dropout=0.2)


register_preset("googlenet", googlenet)


def googlenet_aux(*, small: bool) -> ArchConfig:
    """GoogLeNet with its two auxiliary classifiers as torchvision builds them
    (``aux_logits=True``): ``InceptionAux`` after inception 4a and 4d (stages 2 and 5), their
    losses weighted 0.3 in training (torchvision's reference recipe), ignored at evaluation.
    The ``googlenet`` preset stays without them, as torchvision's pre-trained checkpoints."""
    return replace(googlenet(small=small), aux_heads=(2, 5), aux_weight=0.3,
                   aux_head="inception")


register_preset("googlenet_aux", googlenet_aux)


# --- EfficientNet -------------------------------------------------------------------------------

# (expansion t, kernel k, stride s, width c, depth n): EfficientNet-B0, Tan & Le 2019 table 1
EFFICIENTNET_B0 = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                   (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
#: name -> (width multiplier, depth multiplier, head dropout), torchvision's b0..b3 (the
#: resolutions 224, 240, 260, 300 are the data's business: resize the inputs)
EFFICIENTNETS = {"efficientnet_b0": (1.0, 1.0, 0.2), "efficientnet_b1": (1.0, 1.1, 0.2),
                 "efficientnet_b2": (1.1, 1.2, 0.3), "efficientnet_b3": (1.2, 1.4, 0.3)}


def make_divisible(value: float, divisor: int = 8) -> int:
    """The nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% below
    ``value``: the channel rounding of the TensorFlow and torchvision MobileNets/EfficientNets."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def efficientnet(*, small: bool, width_mult: float = 1.0, depth_mult: float = 1.0,
                 dropout: float = 0.2, drop_path: float = 0.2) -> ArchConfig:
    """EfficientNet-B0 scaled by ``width_mult`` (channels rounded to multiples of 8) and
    ``depth_mult`` (blocks per stage rounded up): ``mbconv`` stages with SE 0.25 and SiLU,
    a 1x1 conv to 4x the last width, dropout, linear. torchvision raises stochastic depth
    linearly from 0 to ``drop_path`` over the blocks; a stage here takes its blocks' mean."""
    depths = [math.ceil(n * depth_mult) for *_, n in EFFICIENTNET_B0]
    total, done = sum(depths), 0
    stages = []
    for (t, k, s, c, _), n in zip(EFFICIENTNET_B0, depths, strict=True):
        rate = drop_path * (done + (n - 1) / 2) / total  # the mean of this stage's blocks
        done += n
        stages.append(StageConfig(block="mbconv", depth=n, width=make_divisible(c * width_mult),
                                  stride=s, kernel_size=k, expansion=float(t), se_ratio=0.25,
                                  activation="silu", drop_path=round(rate, 4)))
    last = 4 * stages[-1].width
    stages.append(StageConfig(block="plain", depth=1, width=last, kernel_size=1,
                              activation="silu"))
    stem = (StemLayer("conv", make_divisible(32 * width_mult), 3, 1 if small else 2),)
    return ArchConfig(stages=tuple(stages), stem=stem, head_dropout=dropout)


for _name, (_w, _d, _p) in EFFICIENTNETS.items():
    register_preset(_name, partial(efficientnet, width_mult=_w, depth_mult=_d, dropout=_p))
