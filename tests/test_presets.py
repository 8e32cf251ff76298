"""Presets: the classic networks are points of the space, matching torchvision's own models
(parameters within 0.5%, FLOPs within 2% at 3x224x224 / 1000 classes), with small-input
variants that run on 8x8 and 32x32 data.

Counting happens on the meta device (shapes only): the FLOP rules need no arithmetic, so the
whole table costs seconds rather than minutes on a busy CPU, and no weights are ever loaded.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torchvision

from nasdepth.arch import PRESETS, ArchConfig, build_model, complexity, count_parameters, preset
from nasdepth.errors import ConfigError, UnknownNameError

REQUIRED = ["vgg16_bn", "resnet18", "resnet50", "resnext50_32x4d", "densenet121", "mobilenet_v2",
            "googlenet"]
# other members of the families (depths, widths, cardinalities, growth rates, no batch norm):
# the builder is general, not tuned to the seven above
OTHERS = ["resnet34", "resnet101", "wide_resnet50_2", "resnext101_32x8d", "densenet161",
          "densenet169", "vgg11", "vgg19_bn"]
IMAGENET = (3, 224, 224)


def torchvision_model(name: str) -> torch.nn.Module:
    # our GoogLeNet has no auxiliary heads; init_weights=False skips a needless init pass
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    return getattr(torchvision.models, name)(weights=None, **kwargs)


@pytest.mark.parametrize("name", REQUIRED)
def test_preset_matches_torchvision(name: str) -> None:
    with torch.device("meta"):
        theirs = complexity(torchvision_model(name), IMAGENET)
        ours = complexity(build_model(preset(name, IMAGENET, 1000), IMAGENET, 1000), IMAGENET)
    assert abs(ours["params"] / theirs["params"] - 1) <= 0.005, (ours, theirs)
    assert abs(ours["flops"] / theirs["flops"] - 1) <= 0.02, (ours, theirs)


@pytest.mark.parametrize("name", OTHERS)
def test_other_family_members_match_torchvision_parameters(name: str) -> None:
    # parameters only: FLOP counting is the slow part, and it is checked on the seven above
    with torch.device("meta"):
        theirs = count_parameters(torchvision_model(name))
        ours = count_parameters(build_model(preset(name, IMAGENET, 1000), IMAGENET, 1000))
    assert abs(ours / theirs - 1) <= 0.005, (ours, theirs)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json(name: str) -> None:
    for shape in (IMAGENET, (3, 32, 32)):
        cfg = preset(name, shape, 10)
        assert ArchConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("name", REQUIRED)
def test_small_variants_run_on_8x8_and_32x32(name: str) -> None:
    big = preset(name, IMAGENET, 1000)
    small = preset(name, (3, 32, 32), 10)
    assert small != big and preset(name, (3, 32, 32), 10, small=False) == big
    assert [s.block for s in small.stages] == [s.block for s in big.stages]
    assert [s.width for s in small.stages] == [s.width for s in big.stages]
    with torch.device("meta"):  # 32x32: shapes only
        out = build_model(small, (3, 32, 32), 10)(torch.empty(2, 3, 32, 32))
    assert out.shape == (2, 10)
    # digits-sized images with real weights: forward, backward, finite
    cfg = preset(name, (1, 8, 8), 10)
    torch.manual_seed(0)
    model = build_model(cfg, (1, 8, 8), 10)
    out = model(torch.randn(2, 1, 8, 8))
    out.square().mean().backward()
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_small_inputs_keep_a_map_to_pool() -> None:
    """On 8x8 a five-stage VGG would pool a 1-pixel map; the last stride is dropped instead."""
    cfg = preset("vgg16_bn", (1, 8, 8), 10)
    assert [s.stride for s in cfg.stages] == [1, 2, 2, 2, 1]
    assert cfg.stem == () and cfg.head_pool_size == 1
    assert [s.stride for s in preset("vgg16_bn", IMAGENET, 10).stages] == [1, 2, 2, 2, 2]


def test_summary_layers_give_the_names_depths() -> None:
    layers = {n: preset(n, IMAGENET, 1000).summary()["layers"]
              for n in ("resnet18", "resnet50", "vgg16_bn", "densenet121", "googlenet")}
    assert layers == {"resnet18": 18, "resnet50": 50, "vgg16_bn": 16, "densenet121": 121,
                      "googlenet": 22}


def test_skip_off_turns_resnet18_into_its_plain_twin() -> None:
    cfg = preset("resnet18", (3, 32, 32), 10)
    with torch.device("meta"):
        res = build_model(cfg, (3, 32, 32), 10)
        twin = build_model(replace(cfg, skip=False), (3, 32, 32), 10)
    # three projection shortcuts (64->128, 128->256, 256->512): 1x1 conv + batch norm
    projections = sum(cin * cout + 2 * cout for cin, cout in ((64, 128), (128, 256), (256, 512)))
    assert count_parameters(res) - count_parameters(twin) == projections


def test_one_dimensional_inputs_build_the_same_family() -> None:
    cfg = preset("resnet18", (3, 1000), 4)
    with torch.device("meta"):
        model = build_model(cfg, (3, 1000), 4)
        out = model(torch.empty(2, 3, 1000))
    assert out.shape == (2, 4) and isinstance(model.stem[0][0], torch.nn.Conv1d)


def test_bad_preset_requests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'densenet121'"):
        preset("densenet12", IMAGENET, 1000)
    with pytest.raises(ConfigError, match="'input_shape'"):
        preset("resnet18", (64,), 10)
    with pytest.raises(ConfigError, match="'num_classes'"):
        preset("resnet18", IMAGENET, 1)
