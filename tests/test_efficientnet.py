"""EfficientNet's parts: squeeze-and-excitation as an option of every block that declares one
(``BlockRules.se_default``), stochastic depth, the ``mbconv`` block; the ``efficientnet_b*``
presets against torchvision's models, and torchvision checkpoints through ``load_weights``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from nasdepth.arch import (
    BLOCK_RULES,
    ArchConfig,
    StageConfig,
    build_model,
    check_block,
    count_parameters,
)
from nasdepth.arch.blocks.squeeze import DropPath, SqueezeExcite
from nasdepth.errors import ConfigError
from tests.test_weights import _randomized  # random 1-D tensors: every mapping counts

SE_BLOCKS = sorted(n for n, r in BLOCK_RULES.items() if r.se_default is not None)
SHAPES = {"1d": (3, 16), "2d": (3, 8, 8)}


def net(block: str, *, se: float | None, depth: int = 2, width: int = 16,
        **opts: object) -> ArchConfig:
    stage = StageConfig(block=block, depth=depth, width=width, se_ratio=se, **opts)  # type: ignore[arg-type]
    return ArchConfig(stages=(stage, replace(stage, depth=1, width=2 * width, stride=2)))


def gates(model: nn.Module) -> list[SqueezeExcite]:
    return [m for m in model.modules() if isinstance(m, SqueezeExcite)]


def test_se_blocks_are_the_ones_with_a_gate() -> None:
    assert set(SE_BLOCKS) == {"residual", "bottleneck", "grouped", "dwsep", "mbconv"}
    assert BLOCK_RULES["mbconv"].se_default == 0.25  # EfficientNet's; the others: off


@pytest.mark.parametrize("rank", sorted(SHAPES))
@pytest.mark.parametrize("block", SE_BLOCKS)
def test_se_on_and_off(block: str, rank: str) -> None:
    shape = SHAPES[rank]
    torch.manual_seed(0)
    off = build_model(net(block, se=0.0), shape, 5)
    torch.manual_seed(0)
    on = build_model(net(block, se=0.25), shape, 5)
    assert gates(off) == [] and len(gates(on)) == 3  # one gate per block
    # each gate: two 1x1 convs with biases, channels -> squeeze -> channels
    extra = sum(2 * g.fc1.in_channels * g.fc1.out_channels + g.fc1.out_channels
                + g.fc2.out_channels for g in gates(on))
    assert count_parameters(on) == count_parameters(off) + extra
    x = torch.randn(6, *shape, generator=torch.Generator().manual_seed(1))
    out = on(x)
    assert out.shape == (6, 5) and torch.isfinite(out).all()
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    for name, p in on.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for g in gates(on):  # the gate learns: its weights get a gradient that is not zero
        assert g.fc1.weight.grad.abs().sum() > 0 and g.fc2.weight.grad.abs().sum() > 0
    # the gates are on the path: closing one half-way (sigmoid(0) = 0.5) changes the output
    on.eval()
    before = on(x)
    with torch.no_grad():
        gates(on)[0].fc2.weight.zero_(), gates(on)[0].fc2.bias.zero_()
    assert not torch.allclose(on(x), before)


def test_mbconv_defaults_follow_efficientnet() -> None:
    model = build_model(ArchConfig(stages=(StageConfig(block="mbconv", depth=2, width=16,
                                                       activation="silu"),)), (3, 8, 8), 5)
    first = model.blocks[0]  # 16 (stem) -> 16: identity shortcut
    expand, dw, se, project = first.body
    assert expand[0].out_channels == 96 and dw[0].groups == 96  # expansion 6
    assert isinstance(se, SqueezeExcite) and se.fc1.out_channels == 4  # 16 // 4
    assert isinstance(dw[2], nn.SiLU) and isinstance(se.act, nn.SiLU)
    assert len(project) == 2 and first.has_shortcut  # linear projection (conv, norm)
    one = build_model(ArchConfig(stages=(StageConfig(block="mbconv", width=16, expansion=1.0,
                                                     se_ratio=0.0),)), (3, 8, 8), 5)
    assert len(one.blocks[0].body) == 2  # no expansion, no gate: depthwise + projection


def test_drop_path_drops_whole_samples_in_training_only() -> None:
    cfg = ArchConfig(stages=(StageConfig(block="mbconv", depth=1, width=8, drop_path=0.5),))
    torch.manual_seed(0)
    block = build_model(cfg, (3, 8, 8), 5).blocks[0]
    x = torch.randn(64, 8, 8, 8)
    block.train()
    torch.manual_seed(1)
    out = block(x)
    dropped = torch.isclose(out, x).flatten(1).all(1)  # the branch dropped: the input passes
    assert 10 < int(dropped.sum()) < 54
    block.eval()
    assert torch.equal(block(x), block(x))
    assert not torch.isclose(block(x), x).flatten(1).all(1).any()
    # no shortcut: nothing is dropped (dropping would cut the signal)
    plain = build_model(replace(cfg, skip=False), (3, 8, 8), 5).blocks[0]
    assert plain.drop_path.p == 0.0


def test_drop_path_under_vmap_draws_per_fold() -> None:
    layer = DropPath(0.5).train()
    x = torch.ones(3, 32, 4)
    torch.manual_seed(0)
    out = vmap(layer, randomness="different")(x)
    assert not torch.equal(out[0], out[1])  # folds draw their own masks
    model = build_model(ArchConfig(stages=(StageConfig(block="residual", width=8,
                                                       drop_path=0.2, se_ratio=0.5),)),
                        (3, 8, 8), 5)
    params, buffers = stack_module_state([model, model])

    def call(p: dict, b: dict, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, b), (xb,))

    y = vmap(call, randomness="different")(params, buffers, torch.randn(2, 4, 3, 8, 8))
    assert y.shape == (2, 4, 5) and torch.isfinite(y).all()


@pytest.mark.parametrize(("key", "value", "rank"), [
    ("se_ratio", 1.5, 2), ("se_ratio", -0.1, 2), ("se_ratio", 0.25, 0), ("drop_path", 1.0, 2),
    ("drop_path", -0.5, 2), ("expansion", 0.0, 2),
])
def test_bad_options_are_config_errors(key: str, value: float, rank: int) -> None:
    block = "residual" if rank == 0 else "mbconv"
    stage = replace(StageConfig(block=block, width=8), **{key: value})
    with pytest.raises(ConfigError, match=key):
        check_block(block, stage, width=8, stride=1, rank=rank)
    with pytest.raises(ConfigError, match=key):
        build_model(ArchConfig(stages=(stage,)), (20,) if rank == 0 else (3, 8, 8), 5)


# --- presets and torchvision checkpoints ---------------------------------------------------------

EFFNETS = ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3"]
IMAGENET = (3, 224, 224)


@pytest.mark.parametrize("name", EFFNETS)
def test_efficientnet_presets_match_torchvision(name: str) -> None:
    import torchvision

    from nasdepth.arch import complexity, preset

    with torch.device("meta"):  # shapes only: no memory, no init
        theirs = complexity(getattr(torchvision.models, name)(weights=None), IMAGENET)
        ours = complexity(build_model(preset(name, IMAGENET, 1000), IMAGENET, 1000), IMAGENET)
    assert ours["params"] == theirs["params"], (ours, theirs)
    assert abs(ours["flops"] / theirs["flops"] - 1) <= 0.02, (ours, theirs)


def test_efficientnet_checkpoint_round_trip(tmp_path: Path) -> None:
    import torchvision

    from nasdepth.arch import load_weights, preset
    from nasdepth.arch.weights import checkpoint_family, model_family, torchvision_key_map

    torch.manual_seed(0)
    tv = _randomized(torchvision.models.efficientnet_b0(weights=None))
    path = tmp_path / "b0.pth"
    torch.save(tv.state_dict(), path)
    assert checkpoint_family(tv.state_dict()) == "efficientnet"
    ours = build_model(preset("efficientnet_b0", IMAGENET, 1000), IMAGENET, 1000)
    assert model_family(ours) == "efficientnet"
    load_weights(ours, path)
    assert sorted(torchvision_key_map(ours).values()) == sorted(tv.state_dict())
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert float((tv(x) - ours.eval()(x)).abs().max()) <= 1e-4
    # the mobilenet_v2 map does not claim it (MBConv is a subclass of dwsep)
    mobile = build_model(preset("mobilenet_v2", IMAGENET, 1000), IMAGENET, 1000)
    assert model_family(mobile) == "mobilenet_v2"


@pytest.mark.parametrize("name", EFFNETS[1:])
def test_efficientnet_key_map_covers_every_torchvision_tensor(name: str) -> None:
    import torchvision

    from nasdepth.arch import preset
    from nasdepth.arch.weights import torchvision_key_map

    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)(weights=None).state_dict()
        model = build_model(preset(name, IMAGENET, 1000), IMAGENET, 1000)
    km = torchvision_key_map(model)
    assert sorted(km) == sorted(model.state_dict()) and sorted(km.values()) == sorted(theirs)
    ours = model.state_dict()
    for mine, key in km.items():
        assert ours[mine].shape == theirs[key].shape, (mine, key)


def test_efficientnet_checkpoint_through_the_transfer_path(tmp_path: Path) -> None:
    """A torchvision efficientnet_b0 state_dict as the frozen body of feature extraction on
    32x32 images (the preset in torchvision's layout): only the fresh classifier trains."""
    import torchvision

    from nasdepth.arch import preset
    from nasdepth.data import Dataset
    from nasdepth.train import TrainConfig, cross_validate
    from nasdepth.train.candidate import transfer_candidate
    from nasdepth.train.transfer import TransferConfig

    torch.manual_seed(0)
    path = tmp_path / "b0.pth"
    torch.save(torchvision.models.efficientnet_b0(weights=None).state_dict(), path)
    gen = torch.Generator().manual_seed(0)
    data = Dataset(torch.randn(16, 3, 32, 32, generator=gen), torch.arange(16) % 2, "rgb", 2,
                   ["a", "b"])
    arch = preset("efficientnet_b0", (3, 32, 32), 2, small=False)
    res = cross_validate(transfer_candidate(TransferConfig(str(path), "feature_extraction"),
                                            arch), data,
                         folds=2, training=TrainConfig(epochs=1, batch_size=8))
    assert res.folds["params"].iloc[0] == 1280 * 2 + 2  # the fresh classifier only
    assert np.isfinite(res.folds["val_log_loss"]).all()


def test_small_efficientnet_runs_on_digit_sized_images() -> None:
    from nasdepth.arch import preset

    cfg = preset("efficientnet_b0", (1, 16, 16), 10)
    assert cfg.stem[0].stride == 1 and all(s.activation == "silu" for s in cfg.stages)
    torch.manual_seed(0)
    model = build_model(cfg, (1, 16, 16), 10)
    out = model(torch.randn(2, 1, 16, 16))
    out.square().mean().backward()
    assert out.shape == (2, 10)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
