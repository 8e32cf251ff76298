"""Architectures: every registered block x skip x normalization x input rank it allows builds,
trains (a gradient reaches every parameter), is deterministic under a seed; ``skip`` alone
turns a residual network into its plain twin; bad input is a clear ``ConfigError``."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from nasdepth.arch import (
    ACTIVATION_NAMES,
    ACTIVATIONS,
    BLOCK_RULES,
    BLOCKS,
    INITS,
    NORMS,
    ArchConfig,
    Block,
    StageConfig,
    StemLayer,
    build_model,
    check_block,
    complexity,
    config_complexity,
    count_flops,
    count_parameters,
)
from nasdepth.cli import main as cli_main
from nasdepth.errors import ConfigError, NasdepthError, UnknownNameError

SHAPES = {"flat": (20,), "1d": (3, 16), "2d": (3, 8, 8)}
RANKS = {"flat": 0, "1d": 1, "2d": 2}
CLASSES = 5


def two_stage(block: str, *, norm: str = "batch", skip: bool = True, **opts: object) -> ArchConfig:
    # inception splits its width four ways: 32 keeps every branch at two channels or more
    width = 32 if block == "inception" else 16
    stage = StageConfig(block=block, depth=2, width=width, norm=norm, **opts)  # type: ignore[arg-type]
    return ArchConfig(stages=(stage, replace(stage, depth=1, width=2 * width, stride=2)),
                      skip=skip)


def run_once(cfg: ArchConfig, shape: tuple[int, ...], seed: int = 0
             ) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model(cfg, shape, CLASSES)
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(1))
    out = model(x)
    return model, out


def blocks_of(model: nn.Module) -> list[Block]:
    return [m for m in model.modules() if isinstance(m, Block)]


def allows(block: str, rank: str) -> bool:
    """Does ``block`` run on inputs of ``rank`` (its declared ranks; conv-only blocks not on
    flat data)?"""
    cls = BLOCKS[block]
    return RANKS[rank] in cls.ranks and not (cls.conv_only and rank == "flat")


# every block x skip x norm x input rank it allows (conv-only blocks on flat data: see
# test_conv_block_on_flat_data_is_a_config_error; sequence blocks on flat or 2-D data:
# test_block_on_a_rank_it_does_not_take_is_a_config_error)
MATRIX = [
    pytest.param(block, skip, norm, rank,
                 id=f"{block}-{'skip' if skip else 'noskip'}-{norm}-{rank}")
    for block in sorted(BLOCKS) for skip in (True, False) for norm in NORMS for rank in SHAPES
    if allows(block, rank)
]


@pytest.mark.parametrize(("block", "skip", "norm", "rank"), MATRIX)
def test_every_block_builds_trains_and_is_deterministic(block: str, skip: bool, norm: str,
                                                        rank: str) -> None:
    cfg = two_stage(block, norm=norm, skip=skip)
    model, out = run_once(cfg, SHAPES[rank])
    assert out.shape == (4, CLASSES) and torch.isfinite(out).all()
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    (out * weights).sum().backward()
    params = list(model.named_parameters())
    for name, p in params:
        assert p.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), name
    # a narrow branch behind a dead ReLU may get an exact zero; the network as a whole may not
    assert sum(bool(p.grad.abs().sum() > 0) for _, p in params) >= 0.9 * len(params)
    if not skip:
        assert not any(b.has_shortcut for b in blocks_of(model))
    model2, out2 = run_once(cfg, SHAPES[rank])
    assert torch.equal(out, out2)
    _, out3 = run_once(cfg, SHAPES[rank], seed=1)
    assert not torch.equal(out, out3)  # the seed, not a constant, decides the weights


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_with_dropout_and_kernel_size(activation: str) -> None:
    cfg = two_stage("residual", activation=activation, dropout=0.2, kernel_size=5)
    model, out = run_once(cfg, SHAPES["2d"])
    assert isinstance(model.blocks[0].act, ACTIVATIONS[activation])
    assert model.blocks[0].conv1[0].kernel_size == (5, 5)
    assert any(isinstance(m, nn.Dropout2d) for m in model.modules())
    out.sum().backward()
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("init", INITS)
def test_initialization_schemes(init: str) -> None:
    cfg = replace(two_stage("plain", norm="none"), init=init, head_hidden=(24,))
    torch.manual_seed(0)
    model = build_model(cfg, SHAPES["flat"], CLASSES)
    hidden = next(m for m in model.head if isinstance(m, nn.Linear))  # Linear(32 -> 24)
    w = hidden.weight.detach()
    torch.manual_seed(0)
    default = build_model(replace(cfg, init="default"), SHAPES["flat"], CLASSES).head[1].weight
    if init == "default":
        assert torch.equal(w, default)
        return
    assert not torch.equal(w, default) and torch.count_nonzero(hidden.bias) == 0
    if init == "orthogonal":  # rows are orthonormal
        assert torch.allclose(w @ w.T, torch.eye(24), atol=1e-5)
    if init == "kaiming":  # std sqrt(2 / fan_in), much wider than PyTorch's default
        assert 0.6 * (2 / 32) ** 0.5 < w.std() < 1.4 * (2 / 32) ** 0.5


# --- skip: a residual network and its plain twin ------------------------------------------------

def projection_params(model: nn.Module) -> int:
    return sum(count_parameters(b.shortcut) for b in blocks_of(model) if b.shortcut is not None)


@pytest.mark.parametrize("block", ["residual", "bottleneck", "grouped", "dwsep"])
def test_skip_alone_switches_to_the_plain_twin(block: str) -> None:
    cfg = ArchConfig(stages=tuple(
        StageConfig(block=block, depth=2, width=w, stride=s, expansion=2.0 if block == "dwsep"
                    else None) for w, s in ((16, 1), (32, 2), (64, 2))))
    shape = SHAPES["2d"]
    twin_cfg = replace(cfg, skip=False)
    assert cfg.to_dict() | {"skip": False} == twin_cfg.to_dict()  # one switch differs
    torch.manual_seed(0)
    res, twin = build_model(cfg, shape, CLASSES), build_model(twin_cfg, shape, CLASSES)
    # same parameters up to the projection shortcuts
    assert count_parameters(res) - projection_params(res) == count_parameters(twin)
    assert all(b.shortcut is None for b in blocks_of(twin))
    assert not any("shortcut" in name for name, _ in twin.named_modules())
    assert sum(b.has_shortcut for b in blocks_of(res)) >= 2
    # same weights, different function: the shortcuts carry signal
    missing = res.load_state_dict(twin.state_dict(), strict=False).missing_keys
    assert all("shortcut" in k for k in missing)
    res.eval(), twin.eval()
    x = torch.randn(3, *shape)
    assert not torch.allclose(res(x), twin(x))


@pytest.mark.parametrize("block", ["residual", "bottleneck", "grouped", "dwsep"])
def test_no_shortcut_path_is_left(block: str) -> None:
    """Silencing a block's last norm silences the whole plain-twin block, not a residual one."""
    for skip in (True, False):
        stage = StageConfig(block=block, depth=1, width=16)
        torch.manual_seed(0)
        model = build_model(ArchConfig(stages=(stage,), skip=skip), SHAPES["2d"], CLASSES)
        b = blocks_of(model)[0]  # 16 -> 16 channels: an identity shortcut when skip is on
        last_norm = [m for m in b.modules() if isinstance(m, nn.BatchNorm2d)][-1]
        with torch.no_grad():
            last_norm.weight.zero_(), last_norm.bias.zero_()
        b.eval()
        x1, x2 = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
        depends = not torch.allclose(b(x1), b(x2))
        assert depends == skip, (block, skip)


def test_dense_without_skip_does_not_concatenate() -> None:
    for skip, channels in ((True, 16 + 2 * 8), (False, 8)):
        cfg = ArchConfig(stages=(StageConfig(block="dense", depth=2, width=8),),
                         stem=(StemLayer(width=16),), skip=skip)
        model = build_model(cfg, SHAPES["2d"], CLASSES)
        assert [b.out_channels for b in blocks_of(model)][-1] == channels


# --- structure: stems, downsampling, transitions, heads, aux heads, layers ----------------------

def test_stem_and_pooled_downsampling_shapes() -> None:
    cfg = ArchConfig(
        stages=(StageConfig(block="plain", depth=1, width=8),
                StageConfig(block="residual", depth=1, width=16, stride=2, downsample="maxpool"),
                StageConfig(block="residual", depth=1, width=16, stride=2,
                            downsample="avgpool")),
        stem=(StemLayer("conv", 8, 7, 2), StemLayer("maxpool", None, 3, 2)))
    model = build_model(cfg, (3, 32, 32), CLASSES)
    sizes = []
    x = model.stem(torch.randn(1, 3, 32, 32))
    sizes.append(x.shape[-1])
    for b in model.blocks:
        x = b(x)
        sizes.append(x.shape[-1])
    assert sizes == [8, 8, 4, 2]
    assert isinstance(model.blocks[1].pre, nn.MaxPool2d)
    assert isinstance(model.blocks[2].pre, nn.AvgPool2d)
    assert model.blocks[1].conv1[0].stride == (1, 1)  # the pool strided, not the conv


def test_dense_transitions_compress_between_stages() -> None:
    stages = tuple(StageConfig(block="dense", depth=2, width=4, stride=s, compression=0.5)
                   for s in (1, 2))
    model = build_model(ArchConfig(stages=stages, stem=(StemLayer(width=8),)), (1, 8, 8), 3)
    names = [n for n, _ in model.named_blocks()]
    assert names[3] == "block2.Transition"
    transition = model.blocks[2]
    assert (transition.in_channels, transition.out_channels) == (16, 8)
    assert isinstance(model.head[0], nn.BatchNorm2d)  # pre-activation: final norm before pooling


def test_head_hidden_layers_pool_size_and_dropout() -> None:
    cfg = replace(two_stage("plain"), head_pool="max", head_pool_size=2, head_hidden=(12, 7),
                  head_dropout=0.5)
    model = build_model(cfg, SHAPES["2d"], CLASSES)
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32 * 4, 12), (12, 7),
                                                                   (7, CLASSES)]
    assert sum(isinstance(m, nn.Dropout) for m in model.head) == 2
    assert isinstance(model.head[0][0], nn.AdaptiveMaxPool2d)


def test_aux_heads_store_logits_in_training_mode_only() -> None:
    cfg = replace(two_stage("residual"), aux_heads=(0,), aux_weight=0.4)
    model = build_model(cfg, SHAPES["1d"], CLASSES)
    x = torch.randn(4, *SHAPES["1d"])
    out = model(x)
    assert len(model.aux_logits) == 1 and model.aux_logits[0].shape == out.shape
    loss = out.sum() + cfg.aux_weight * model.aux_logits[0].sum()
    loss.backward()
    assert all(p.grad is not None for p in model.aux.parameters())
    model.eval()
    model(x)
    assert model.aux_logits == []
    plain = build_model(two_stage("residual"), SHAPES["1d"], CLASSES)
    plain(x)
    assert plain.aux_logits == [] and len(plain.aux) == 0
    assert "aux" not in " ".join(n for n, _ in model.named_blocks())


def test_summary_counts_layers_and_keeps_its_keys() -> None:
    cfg = ArchConfig(stages=(StageConfig(block="residual", depth=3, width=16),
                             StageConfig(block="bottleneck", depth=2, width=32, stride=2)),
                     head_hidden=(10,))
    s = cfg.summary()
    assert {"depth", "width", "block", "skip", "layers"} <= set(s)
    assert (s["depth"], s["width"], s["block"]) == (5, 16, "residual+bottleneck")
    assert s["layers"] == 1 + 3 * 2 + 2 * 3 + 2
    model = build_model(cfg, SHAPES["2d"], CLASSES)
    weight_layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                     and not any(m is x for b in blocks_of(model) if b.shortcut is not None
                                 for x in b.shortcut.modules())]
    assert s["layers"] == len(weight_layers)


def test_config_round_trips_through_json() -> None:
    cfg = ArchConfig(
        stages=(StageConfig(block="inception", depth=1, width=16, branches=(4, 4, 8, 2, 2, 2),
                            wide_kernels=(3, 3)),
                StageConfig(block="dense", depth=3, width=8, growth_rate=4, expansion=0.0)),
        stem=(StemLayer("conv", 12, 5, 1), StemLayer("avgpool", None, 2, 2)), skip=False,
        head_hidden=(8,), aux_heads=(0,), init="xavier")
    back = ArchConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    m1, m2 = build_model(cfg, (2, 16, 16), 3), build_model(back, (2, 16, 16), 3)
    assert count_parameters(m1) == count_parameters(m2)


def test_complexity_counts_parameters_and_flops() -> None:
    cfg = ArchConfig(stages=(StageConfig(block="plain", depth=1, width=4, norm="none"),),
                     stem=())
    model = build_model(cfg, (2, 5), 3)  # conv1d 2->4 k3 on length 5, pool, linear 4->3
    c = complexity(model, (2, 5))
    assert c["params"] == count_parameters(model) == 2 * 4 * 3 + 4 + 4 * 3 + 3
    assert c["flops"] == 2 * (5 * 4 * 2 * 3) + 2 * (4 * 3)
    assert model.training  # restored


@pytest.mark.parametrize("rank", sorted(SHAPES))
def test_flop_rules_agree_with_pytorchs_flop_counter(rank: str) -> None:
    """Every block at every input rank it allows: the per-layer rules give the total of
    ``FlopCounterMode`` (which intercepts every matrix product and convolution)."""
    from torch.utils.flop_counter import FlopCounterMode

    for block in sorted(BLOCKS):
        if (BLOCKS[block].conv_only and rank == "flat") or RANKS[rank] not in BLOCKS[block].ranks:
            continue
        cfg = replace(two_stage(block), head_hidden=(12,))
        model = build_model(cfg, SHAPES[rank], CLASSES).eval()
        # The counter cannot see fused kernels: oneDNN's CPU LSTM (so PyTorch's step-by-step
        # kernel runs instead), attention's no-grad fast path (so gradients stay on) and the
        # CPU's fused scaled-dot-product kernel (its two L x L products are added here).
        tokens: list[tuple[int, int]] = []  # (L, E) of every attention call
        handles = [m.register_forward_hook(
            lambda m, i, o, seen=tokens: seen.append((o[0].shape[1], m.embed_dim)))
            for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)]
        with torch.backends.mkldnn.flags(enabled=False), \
                FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *SHAPES[rank]))
        for h in handles:
            h.remove()
        expected = counter.get_total_flops() + sum(4 * n * n * e for n, e in tokens)
        assert count_flops(model, SHAPES[rank]) == expected, block
        # a config counted without a model in hand: the same figures, the seed untouched
        torch.manual_seed(3)
        state = torch.random.get_rng_state()
        assert config_complexity(cfg, SHAPES[rank], CLASSES) == (
            count_parameters(model), expected)
        assert torch.equal(torch.random.get_rng_state(), state)
        assert config_complexity(cfg, SHAPES[rank], CLASSES, flops=False) == (
            count_parameters(model), None)


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "bad", "good"), [
    ("block", "residul", "residual"), ("activation", "rleu", "relu"), ("norm", "batchh", "batch"),
    ("downsample", "maxpol", "maxpool"),
])
def test_unknown_names_list_valid_names_and_the_closest(key: str, bad: str, good: str) -> None:
    cfg = ArchConfig(stages=(StageConfig(**{key: bad}),))  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError) as err:
        build_model(cfg, SHAPES["2d"], CLASSES)
    msg = str(err.value)
    assert f"'{key}'" in msg and f"Did you mean '{good}'?" in msg and good in err.value.valid


def test_unknown_init_and_config_key() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'xavier'"):
        build_model(ArchConfig(init="xavir"), SHAPES["2d"], CLASSES)
    with pytest.raises(UnknownNameError, match="Did you mean 'cardinality'"):
        ArchConfig.from_dict({"stages": [{"block": "grouped", "cardinalty": 4}]})


@pytest.mark.parametrize("block", sorted(b for b in BLOCKS if BLOCKS[b].conv_only))
def test_conv_block_on_flat_data_is_a_config_error(block: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_model(two_stage(block), SHAPES["flat"], CLASSES)
    assert isinstance(err.value, NasdepthError) and "flat" in str(err.value)
    assert "plain, residual" in str(err.value)


@pytest.mark.parametrize(("block", "rank"), [
    (b, r) for b in sorted(BLOCKS) for r in SHAPES if RANKS[r] not in BLOCKS[b].ranks])
def test_block_on_a_rank_it_does_not_take_is_a_config_error(block: str, rank: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_model(two_stage(block), SHAPES[rank], CLASSES)
    msg = str(err.value)
    assert "The 'block' value in the architecture must be one of" in msg
    assert f"runs on 1-D (N, C, L) inputs only). Got '{block}'." in msg
    assert "residual" in msg and block not in msg.split("must be")[1].split("(")[0]


def test_impossible_cardinality_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'cardinality'.*divides the stage width 24. Got 5"):
        build_model(ArchConfig(stages=(StageConfig(block="grouped", width=24, cardinality=5),)),
                    SHAPES["2d"], 3)
    model = build_model(ArchConfig(stages=(StageConfig(block="grouped", width=24,
                                                       cardinality=6),)), SHAPES["2d"], 3)
    assert blocks_of(model)[0].conv[0].groups == 6


@pytest.mark.parametrize(("stage", "key"), [
    (StageConfig(block="inception", width=16, branches=(4, 4, 8, 2, 2, 3)), "branches"),
    (StageConfig(block="inception", width=6), "width"),
    (StageConfig(block="dense", compression=1.5, stride=2), "compression"),
    (StageConfig(block="bottleneck", bottleneck_ratio=0.0), "bottleneck_ratio"),
    (StageConfig(depth=0), "depth"),
    (StageConfig(dropout=1.5), "dropout"),
])
def test_impossible_block_options_are_config_errors(stage: StageConfig, key: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'"):
        build_model(ArchConfig(stages=(stage,)), SHAPES["2d"], CLASSES)


def test_bad_aux_head_index() -> None:
    with pytest.raises(ConfigError, match="'aux_heads'"):
        build_model(replace(two_stage("plain"), aux_heads=(2,)), SHAPES["2d"], CLASSES)


def test_cli_arch_prints_counts_and_exits_2_on_bad_input(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert cli_main(["arch", "resnet18", "--input", "1x8x8", "--classes", "10", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    cfg = ArchConfig.from_dict(info["config"])
    assert info["params"] == count_parameters(build_model(cfg, (1, 8, 8), 10))
    assert info["flops"] > 0 and info["summary"]["layers"] == 18
    assert cli_main(["arch", "resnet18", "--input", "1x8x8", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert f"parameters {info['params']:,}" in out and "residual" in out
    assert cli_main(["arch", "resnet19"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Did you mean 'resnet18'?" in err and "densenet121" in err and "googlenet" in err
    assert cli_main(["arch", "resnet18", "--input", "3xfoo"]) == 2
    assert "--input" in capsys.readouterr().err


# Invalid options per block: (block, stage options, input rank, key the error names).
REFUSED = [
    ("bottleneck", {"bottleneck_ratio": 0.0}, 2, "bottleneck_ratio"),
    ("grouped", {"width": 24, "cardinality": 16}, 2, "cardinality"),
    ("dense", {"expansion": -1.0}, 2, "expansion"),
    ("dense", {"compression": 1.5}, 2, "compression"),
    ("inception", {"width": 6}, 2, "width"),
    ("inception", {"width": 16, "wide_kernels": ()}, 2, "wide_kernels"),
    ("dwsep", {"expansion": 0.0}, 2, "expansion"),
    ("gru", {"width": 15, "bidirectional": True}, 1, "width"),
    ("rnn", {"nonlinearity": "tahn"}, 1, "nonlinearity"),
    ("lstm", {"gate_bias": float("nan")}, 1, "gate_bias"),
    ("transformer", {"width": 30, "heads": 4}, 1, "heads"),
    ("transformer", {"positional": "learned"}, 1, "positional"),
    ("gru", {}, 2, "block"),
    ("dwsep", {}, 0, "block"),
    ("plain", {"dropout": 1.0}, 2, "dropout"),
]


@pytest.mark.parametrize(("block", "opts", "rank", "key"), REFUSED,
                         ids=[f"{b}-{k}" for b, _, _, k in REFUSED])
def test_the_rules_refuse_what_building_refuses(block: str, opts: dict[str, object], rank: int,
                                                key: str) -> None:
    """``check_block`` (no torch: what a search space is checked with) raises the error the
    block raises when it is built, for the same key."""
    stage = StageConfig(**{"block": block, "width": 16, "depth": 1, **opts})  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as by_rules:
        check_block(block, stage, width=stage.width, stride=1, rank=rank)
    cfg = ArchConfig(stages=(stage,), stem_width=16)
    shape = {0: (20,), 1: (3, 16), 2: (3, 8, 8)}[rank]
    with pytest.raises(ConfigError) as by_building:
        build_model(cfg, shape, CLASSES)
    assert by_rules.value.key == by_building.value.key == key
    assert str(by_rules.value) == str(by_building.value)


def test_every_block_reads_its_ranks_from_the_rules() -> None:
    assert set(BLOCKS) <= set(BLOCK_RULES)
    for name, cls in BLOCKS.items():
        assert (cls.ranks, cls.conv_only) == (BLOCK_RULES[name].ranks,
                                              BLOCK_RULES[name].conv_only), name
    assert list(ACTIVATIONS) == list(ACTIVATION_NAMES)


def test_global_average_pool_keeps_channels_last_gradients() -> None:
    """The head's global average pool gives adaptive pooling's values, and its backward hands
    the layer below a gradient in the input's channels-last layout (adaptive pooling's is
    NCHW, which sends a ReLU's backward down a ~30x slower mixed-layout path)."""
    from nasdepth.arch.layers import GlobalAvgPool2d

    x = torch.randn(4, 6, 5, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    out = GlobalAvgPool2d()(x)
    torch.testing.assert_close(out, torch.nn.AdaptiveAvgPool2d(1)(x))
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(grad, torch.full_like(x, 1 / 35))
    model = build_model(ArchConfig(stages=(StageConfig(block="plain", depth=1, width=8),)),
                        (1, 8, 8), 3).to(memory_format=torch.channels_last)
    seen = []
    relu = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)][-1]
    relu.register_full_backward_hook(lambda m, gi, go: seen.append(go[0]))
    model(torch.randn(2, 1, 8, 8).contiguous(memory_format=torch.channels_last)).sum().backward()
    assert seen and seen[0].is_contiguous(memory_format=torch.channels_last)
