"""Search spaces: parsing, seeded sampling, conditions, grids, budgets, shipped files, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml

from nasdepth.arch import ArchConfig, build_model, count_parameters
from nasdepth.arch import complexity as arch_complexity
from nasdepth.arch import config_complexity as complexity
from nasdepth.cli import main
from nasdepth.data import load_data
from nasdepth.errors import ConfigError, NasdepthError
from nasdepth.space import SearchSpace, load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))
# the data each shipped space is meant for
DATA = {"tabular_mlp": "sklearn:breast_cancer",
        "sequence": {"source": "mnist1d", "n_samples": 200}}

EVERY_KIND = {
    "stages": 2,
    "depth": {"type": "int", "low": 2, "high": 6},
    "width": {"type": "int", "low": 8, "high": 64, "log": True},
    "kernel_size": {"type": "int", "low": 3, "high": 5, "step": 2},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "bottleneck_ratio": {"type": "float", "low": 0.25, "high": 0.75, "step": 0.25,
                         "when": {"block": ["bottleneck"]}},
    "width_multiplier": {"type": "float", "low": 1.0, "high": 4.0, "log": True},
    "block": {"type": "categorical", "choices": ["plain", "residual", "bottleneck"]},
    "skip": {"choices": [True, False]},
    "head_hidden": {"choices": [[], [32], [64, 32]]},
    "norm": "batch",
    "activation": {"value": "gelu", "when": {"block": ["residual"]}},
}


def space_of(d: dict[str, Any], name: str = "test.yaml") -> SearchSpace:
    return SearchSpace.from_dict(d, name)


def sample(space: SearchSpace, sampler: optuna.samplers.BaseSampler,
           n: int) -> list[tuple[dict[str, Any], ArchConfig]]:
    study = optuna.create_study(sampler=sampler)
    out = []
    for i in range(n):
        trial = study.ask()
        arch = space.suggest(trial)
        study.tell(trial, float(i % 3))
        out.append((dict(trial.params), arch))
    return out


@pytest.mark.parametrize("make_sampler", [
    lambda seed: optuna.samplers.RandomSampler(seed=seed),
    lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=3),
], ids=["random", "tpe"])
def test_every_kind_samples_reproducibly(make_sampler: Any) -> None:
    space = space_of(EVERY_KIND)
    first = sample(space, make_sampler(7), 12)
    again = sample(space, make_sampler(7), 12)
    other = sample(space, make_sampler(8), 12)
    assert [p for p, _ in first] == [p for p, _ in again]
    assert [a for _, a in first] == [a for _, a in again]
    assert [p for p, _ in first] != [p for p, _ in other]
    for params, arch in first:
        assert 2 <= arch.depth <= 6 and len(arch.stages) == 2
        assert 8 <= params["width"] <= 64 and arch.stages[0].width == params["width"]
        assert params["kernel_size"] in (3, 5)
        assert 0.0 <= params["dropout"] <= 0.3
        assert 1.0 <= params["width_multiplier"] <= 4.0
        assert arch.stages[1].width == round(params["width"] * params["width_multiplier"])
        assert arch.head_hidden in ((), (32,), (64, 32))
        assert arch.stages[0].norm == "batch"
        # the same values (Optuna's own record of them) give the same architecture
        assert space.to_arch(params) == arch


def test_conditional_parameters_exist_only_under_their_condition() -> None:
    space = space_of(EVERY_KIND)
    seen = set()
    for params, arch in sample(space, optuna.samplers.RandomSampler(seed=0), 40):
        block = params["block"]
        seen.add(block)
        assert ("bottleneck_ratio" in params) == (block == "bottleneck")
        if block == "bottleneck":
            assert params["bottleneck_ratio"] in (0.25, 0.5, 0.75)
            assert arch.stages[0].bottleneck_ratio == params["bottleneck_ratio"]
        # a fixed conditional value applies only under its condition
        assert arch.stages[0].activation == ("gelu" if block == "residual" else "relu")
    assert seen == {"plain", "residual", "bottleneck"}


def test_per_stage_parameters_override_shared_ones_and_follow_stage_conditions() -> None:
    space = space_of({
        "block": {"choices": ["plain", "bottleneck"]},
        "width": 16,
        "stages": [
            {"depth": {"type": "int", "low": 1, "high": 3}},
            {"depth": 2, "block": "bottleneck", "width": {"choices": [48, 64]},
             "bottleneck_ratio": {"choices": [0.25, 0.5], "when": {"block": ["bottleneck"]}}},
            {"depth": 1, "stride": 1},
        ],
    })
    assert [p.key for p in space.params] == [
        "block", "width", "stage1.depth", "stage2.depth", "stage2.block", "stage2.width",
        "stage2.bottleneck_ratio", "stage3.depth", "stage3.stride"]
    for params, arch in sample(space, optuna.samplers.RandomSampler(seed=1), 10):
        first, second, third = arch.stages
        assert first.depth == params["stage1.depth"] and first.width == 16
        assert first.block == params["block"]
        assert second.block == "bottleneck" and second.width == params["stage2.width"]
        # the stage's own block decides its condition, whatever the shared block is
        assert second.bottleneck_ratio == params["stage2.bottleneck_ratio"]
        assert (first.stride, second.stride, third.stride) == (1, 2, 1)
        assert third.width == 16 * 2**2
    # 3 shared-depth choices x 2 shared blocks x 2 widths x 2 ratios
    assert space.size() == 24


def test_shared_depth_is_the_total_split_over_stages() -> None:
    space = space_of({"stages": [{"width": 8}, {"width": 16}, {"width": 32}],
                      "depth": {"type": "int", "low": 3, "high": 10}})
    for total in range(3, 11):
        arch = space.to_arch({"depth": total})
        depths = [s.depth for s in arch.stages]
        assert sum(depths) == total and max(depths) - min(depths) <= 1
        assert depths == sorted(depths)  # later stages take the remainder
        assert [s.width for s in arch.stages] == [8, 16, 32]


@pytest.mark.parametrize(("spec", "size"), [
    # 3 depths x (plain + 2 bottleneck ratios)
    ({"depth": {"type": "int", "low": 1, "high": 3},
      "block": {"choices": ["plain", "bottleneck"]},
      "bottleneck_ratio": {"choices": [0.25, 0.5], "when": {"block": "bottleneck"}}}, 9),
    # int with step: 2, 4, 6, 8; float with step: 0, 0.1, 0.2, 0.3
    ({"depth": {"type": "int", "low": 2, "high": 8, "step": 2},
      "dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1}}, 16),
    # log-uniform ints are still finite: 1..8
    ({"depth": {"type": "int", "low": 1, "high": 8, "log": True}}, 8),
    ({"width": 8, "skip": True}, 1),
    ({"dropout": {"type": "float", "low": 0.0, "high": 0.5}}, None),
])
def test_grid_and_size_on_hand_counted_spaces(spec: dict[str, Any], size: int | None) -> None:
    space = space_of(spec)
    assert space.size() == size
    grid = space.grid()
    if size is None:
        assert grid is None
        return
    assert grid is not None and len(grid) == size
    assert len({space.to_arch(values) for values in grid}) == size


def test_float_step_grid_values() -> None:
    space = space_of({"dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1}})
    assert sorted(v["dropout"] for v in space.grid() or []) == [0.0, 0.1, 0.2, 0.3]


def test_param_budget_scales_width_to_the_largest_that_fits() -> None:
    budget = 20_000
    space = space_of({"input_shape": [1, 8, 8], "num_classes": 10, "stages": 2,
                      "depth": {"type": "int", "low": 2, "high": 6},
                      "block": {"choices": ["plain", "residual", "bottleneck"]},
                      "budget": {"max_params": budget, "width_divisor": 4}})
    for depth in (2, 6):
        for block in ("plain", "residual", "bottleneck"):
            arch = space.to_arch({"depth": depth, "block": block})
            params = count_parameters(build_model(arch, (1, 8, 8), 10))
            assert params <= budget
            wider = SearchSpace.from_dict({"stages": 2, "depth": depth, "block": block,
                                           "width": arch.width + 4}, "x").to_arch({})
            assert count_parameters(build_model(wider, (1, 8, 8), 10)) > budget
            assert arch.stages[1].width == 2 * arch.stages[0].width


def test_flop_budget_and_grouped_widths() -> None:
    space = load_space(ROOT / "search_spaces" / "mobile.yaml")
    assert space.budget is not None and space.budget.max_flops is not None
    for _params, arch in sample(space, optuna.samplers.RandomSampler(seed=3), 4):
        params, flops = complexity(arch, (1, 8, 8), 10)
        assert flops is not None and flops <= space.budget.max_flops
        # the budget's quick count (hooks, meta device) is the architecture package's count
        counted = arch_complexity(build_model(arch, (1, 8, 8), 10), (1, 8, 8))
        assert (params, flops) == (counted["params"], counted["flops"])
        for stage in arch.stages:
            if stage.block == "grouped":  # the budget kept the groups dividing the width
                assert stage.width % stage.cardinality == 0


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_space_validates_and_builds_for_its_data(path: Path) -> None:
    space = load_space(path)
    data = load_data(DATA.get(space.name, "sklearn:digits"))
    assert space.input_shape == tuple(data.input_shape)
    assert space.num_classes == data.num_classes
    assert space.describe()
    torch.manual_seed(0)
    for _params, arch in sample(space, optuna.samplers.RandomSampler(seed=0), 2):
        ArchConfig.from_dict(arch.to_dict())  # round-trips through JSON form
        model = build_model(arch, data.input_shape, data.num_classes).eval()
        with torch.no_grad():
            out = model(data.x[:4])
        assert out.shape == (4, data.num_classes) and torch.isfinite(out).all()
        if space.budget is not None and space.budget.max_params is not None:
            assert count_parameters(model) <= space.budget.max_params


def test_block_zoo_names_every_registered_block() -> None:
    from nasdepth.arch import BLOCKS

    # the zoo runs on 8x8 images: every block that takes 2-D inputs; the sequence-only
    # blocks (recurrent, attention) are covered by the sequence space, with the residual conv
    space = load_space(ROOT / "search_spaces" / "block_zoo.yaml")
    blocks = next(p for p in space.params if p.name == "block")
    assert set(blocks.choices) == {n for n, b in BLOCKS.items() if 2 in b.ranks}
    seq = load_space(ROOT / "search_spaces" / "sequence.yaml")
    seq_blocks = set(next(p for p in seq.params if p.name == "block").choices)
    only_1d = {n for n, b in BLOCKS.items() if 2 not in b.ranks}
    assert only_1d - {"rnn"} <= seq_blocks and "residual" in seq_blocks


def test_cli_check_prints_parameters_and_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces", "check", str(ROOT / "search_spaces" / "quickstart.yaml"),
                 str(ROOT / "search_spaces" / "tabular_mlp.yaml")]) == 0
    out = capsys.readouterr().out
    # 7 depths x 3 widths x 2 blocks x 2 skips x 2 norms x 2 activations
    assert "336 distinct architectures" in out
    assert "depth" in out and "2 .. 8" in out
    assert "tabular_mlp" in out and "sampled architectures build" not in out
    # --samples N also builds N sampled architectures (on the meta device)
    assert main(["spaces", "check", "--samples", "2",
                 str(ROOT / "search_spaces" / "tabular_mlp.yaml")]) == 0
    assert "2 sampled architectures build" in capsys.readouterr().out


GOOD = {"depth": {"type": "int", "low": 1, "high": 4},
        "block": {"choices": ["plain", "bottleneck"]}}
BAD = {
    "unknown parameter": ({**GOOD, "widht": 8}, ["'parameter'", "'widht'", "'width'"]),
    "unknown block": ({**GOOD, "block": {"choices": ["plain", "botleneck"]}},
                      ["'block'", "'botleneck'", "Did you mean 'bottleneck'"]),
    "unknown activation": ({**GOOD, "activation": "rellu"}, ["'activation'", "'relu'"]),
    "unknown norm": ({**GOOD, "norm": {"choices": ["batch", "groups"]}},
                     ["'norm'", "'groups'", "Did you mean 'group'"]),
    "unknown distribution key": ({**GOOD, "width": {"type": "int", "low": 8, "hihg": 9}},
                                 ["'width.hihg'", "'high'"]),
    "low above high": ({**GOOD, "width": {"type": "int", "low": 64, "high": 8}},
                       ["'width.low'", "<= width.high (8)", "64"]),
    "log with low 0": ({**GOOD, "dropout": {"type": "float", "low": 0.0, "high": 0.5,
                                            "log": True}}, ["'dropout.low'", "> 0"]),
    "condition not declared": (
        {"depth": 2, "bottleneck_ratio": {"choices": [0.25], "when": {"block": ["bottleneck"]}}},
        ["'bottleneck_ratio.when'", "'block'"]),
    "condition value unknown": (
        {**GOOD, "bottleneck_ratio": {"choices": [0.25], "when": {"block": ["bottlenek"]}}},
        ["'bottleneck_ratio.when.block'", "Did you mean 'bottleneck'"]),
    "int type with float bounds": ({**GOOD, "width": {"type": "int", "low": 8, "high": 9.5}},
                                   ["'width.high'", "an int"]),
    "float on an int key": ({**GOOD, "width": {"type": "float", "low": 8, "high": 9}},
                            ["'width.type'", "an int"]),
    "bad fixed type": ({**GOOD, "width": "wide"}, ["'width'", "an int", "'wide'"]),
    "bad choices": ({**GOOD, "skip": {"type": "categorical", "choices": "yes"}},
                    ["'skip.choices'", "a non-empty list"]),
    "bad bool": ({**GOOD, "skip": {"choices": ["yes", False]}}, ["'skip'", "true or false"]),
    "conv block on flat data": ({**GOOD, "input_shape": [30],
                                 "block": {"choices": ["plain", "dwsep"]}},
                                ["'block'", "'dwsep'", "flat"]),
    "impossible group count": ({"width": {"choices": [24, 32]}, "block": "grouped",
                                "cardinality": {"choices": [8, 16]}},
                               ["'cardinality'", "16", "width 24", "divides"]),
    "depth shared and per stage": ({"depth": 4, "stages": [{"depth": 2}, {}]},
                                   ["'stage1.depth'", "total"]),
    "unknown stage key": ({"stages": [{"blok": "plain"}]}, ["'stage1.blok'", "'block'"]),
    "budget without input": ({**GOOD, "budget": {"max_params": 1000}}, ["'input_shape'"]),
    "unknown budget key": ({**GOOD, "input_shape": [4], "budget": {"max_param": 1000}},
                           ["'budget.max_param'", "'max_params'"]),
    "dropout out of range": ({**GOOD, "dropout": {"choices": [0.1, 1.5]}},
                             ["'dropout'", "[0, 1)", "1.5"]),
    "recipe lr low > high": ({**GOOD, "lr": {"type": "float", "low": 0.1, "high": 1e-4,
                                             "log": True}}, ["'lr.low'", "<= lr.high"]),
    "recipe negative weight decay": ({**GOOD, "weight_decay": {"choices": [0, -1e-4]}},
                                     ["'weight_decay'", "-0.0001", ">= 0"]),
    "recipe optimizer typo": ({**GOOD, "optimizer": "adam_w"},
                              ["'optimizer'", "Did you mean 'adamw'"]),
    "recipe momentum condition": ({**GOOD, "optimizer": {"choices": ["adamw", "sgd"]},
                                   "momentum": {"choices": [0.9],
                                                "when": {"optimizer": ["adamw"]}}},
                                  ["'momentum.when.optimizer'", "only sgd"]),
    "unknown key lists recipe keys": ({**GOOD, "wieght_decay": 0.1},
                                      ["'parameter'", "wieght_decay", "label_smoothing",
                                       "Did you mean 'weight_decay'"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_space_is_one_line_naming_file_and_key(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, expected = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(NasdepthError):
        load_space(path)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    assert main(["spaces", "check", str(good), str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err
    for text in expected:
        assert text in err, (text, err)
    assert str(good) in captured.out  # the good file before it was checked and printed


def test_missing_and_invalid_files_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces", "check", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("depth: {type: int, low: 1\nwidth: [")
    assert main(["spaces", "check", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.yaml" in err and "YAML" in err


def test_conv_block_on_flat_data_fails_at_build_without_input_shape() -> None:
    # Without input_shape the space cannot know the rank: building says so instead.
    space = space_of({"block": "dwsep", "depth": 1, "width": 8})
    with pytest.raises(ConfigError, match="flat"):
        build_model(space.to_arch({}), (30,), 2)


def test_size_of_a_space_too_large_to_list_counts_combinations() -> None:
    space = load_space(ROOT / "search_spaces" / "tabular_mlp.yaml")
    with pytest.raises(ConfigError, match="grid"):
        space.grid()
    # depth 8 x width 241 (16..256) x (plain + residual + 2 bottleneck ratios) x skip 2
    # x norm 3 x activation 3 x dropout 4 (0, 0.1, 0.2, 0.3)
    assert space.size() == 8 * 241 * 4 * 2 * 3 * 3 * 4


def test_grid_sampler_visits_every_point_of_a_per_stage_space() -> None:
    space = space_of({
        "head_hidden": {"choices": [[], [16]]},
        "stages": [{"width": {"choices": [8, 16]}}, {"width": {"choices": [16, 32]}}],
    })
    grid = space.optuna_grid()
    assert grid == {"head_hidden": ["[]", "[16]"], "stage1.width": [8, 16],
                    "stage2.width": [16, 32]}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    seen = set()

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        seen.add((arch.head_hidden, arch.stages[0].width, arch.stages[1].width))
        return 0.0

    study.optimize(objective, n_trials=20)  # the sampler stops the study after the grid
    assert len(study.trials) == 8
    assert len(seen) == space.size() == 8
    assert ((16,), 16, 32) in seen and ((), 8, 16) in seen


def test_to_arch_rejects_values_the_space_does_not_have() -> None:
    space = load_space(ROOT / "search_spaces" / "quickstart.yaml")
    with pytest.raises(ConfigError, match="Did you mean 'depth'"):
        space.to_arch({"dpeth": 4})
    # fixed parameters fill in; an inactive conditional value is ignored
    arch = space.to_arch({"depth": 4, "width": 8, "block": "plain", "skip": True})
    assert arch.depth == 4 and arch.stages[0].norm == "batch" and len(arch.stages) == 2
