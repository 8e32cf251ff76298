"""Architectures: every registered block builds for every input rank it allows."""

from __future__ import annotations

import pytest
import torch

from nasdepth.arch import BLOCKS, ArchConfig, StageConfig, build_model

SHAPES = {"flat": (20,), "1d": (3, 16), "2d": (1, 8, 8)}


@pytest.mark.parametrize("block", sorted(BLOCKS))
@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("rank", sorted(SHAPES))
def test_block_shapes_and_gradients(block: str, skip: bool, rank: str) -> None:
    if BLOCKS[block].conv_only and rank == "flat":
        pytest.skip("conv-only block")
    cfg = ArchConfig(stages=(StageConfig(block=block, depth=2, width=8),
                             StageConfig(block=block, depth=1, width=16, stride=2)), skip=skip)
    torch.manual_seed(0)
    model = build_model(cfg, SHAPES[rank], 5)
    out = model(torch.randn(4, *SHAPES[rank]))
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_config_round_trips_through_dict() -> None:
    cfg = ArchConfig(stages=(StageConfig(block="residual", depth=3, width=16),), skip=False)
    assert ArchConfig.from_dict(cfg.to_dict()) == cfg
