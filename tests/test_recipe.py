"""Training recipes searched with the architecture, and ``lr: auto`` (the range test)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml

from nasdepth import ArchConfig, StageConfig, TrainConfig, cross_validate, load_data
from nasdepth.cli import main
from nasdepth.data import Dataset
from nasdepth.errors import ConfigError, NasdepthError
from nasdepth.space import SearchSpace
from nasdepth.study import load_study, run_study
from nasdepth.study.record import read_record
from nasdepth.train.lr_find import choose, find_lr, sweep_steps
from tests.conftest import TINY_SPACE, write_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

LR_SPACE = {**TINY_SPACE, "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}}


@pytest.fixture(scope="module")
def flat_digits() -> Dataset:
    """Digits as 64 flat features: MLPs, fold-parallel on the CPU (fast)."""
    d = load_data("sklearn:digits")
    return Dataset(x=d.x.reshape(len(d.x), -1), y=d.y, name="digits-flat", num_classes=10)


MLP = ArchConfig(stages=(StageConfig(block="plain", depth=2, width=32, norm="none"),),
                 skip=False)


# --- the schema ---------------------------------------------------------------------------

def test_recipe_parameters_validate_sample_and_count() -> None:
    space = SearchSpace.from_dict({
        "depth": {"type": "int", "low": 1, "high": 2},
        "lr": {"choices": [1e-3, 1e-2]},
        "weight_decay": {"choices": [0, 1e-4]},
        "optimizer": {"choices": ["adamw", "sgd"]},
        "momentum": {"choices": [0.8, 0.9]},
    }, "inline")
    momentum = next(p for p in space.params if p.name == "momentum")
    assert momentum.when == {"optimizer": ("sgd",)}  # only sgd has momentum
    # 2 depths x 2 lr x 2 wd x (adamw + sgd x 2 momenta) = 24 candidates, 2 architectures
    assert space.size() == 24
    assert space.architecture_only().size() == 2
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        space.suggest(trial)
        training = space.training(trial.params, TrainConfig())
        assert training.lr == trial.params["lr"]
        assert training.weight_decay == trial.params["weight_decay"]
        assert training.optimizer == trial.params["optimizer"]
        assert ("momentum" in trial.params) == (training.optimizer == "sgd")
        seen.add(training.optimizer)
        study.tell(trial, 0.0)
    assert seen == {"adamw", "sgd"}


def test_augment_strengths_and_lr_auto_in_a_space() -> None:
    space = SearchSpace.from_dict({"depth": 2, "lr": "auto",
                                   "augment": {"flip": {"choices": [0.0, 0.5]}}}, "inline")
    training = space.training({"augment.flip": 0.5}, TrainConfig())
    assert training.lr_auto and training.augment.flip == 0.5


def test_trials_train_at_the_sampled_lr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    """The optimizer of every fold is built with the lr Optuna sampled for the trial."""
    built: list[float] = []
    real = torch.optim.AdamW

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, params: Any, lr: float = 1e-3, **kw: Any) -> None:
            built.append(float(lr))
            super().__init__(params, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    path = write_study(tmp_path, space=LR_SPACE, training={"epochs": 1, "batch_size": 128})
    st = run_study(path, progress=False, probes=False)
    trials = [t for t in st.trials if t.state.name == "COMPLETE"]
    assert len(trials) == 2
    lrs = [t.params["lr"] for t in trials]
    for t in trials:
        assert 1e-4 <= t.params["lr"] <= 0.1
        assert read_record(t).training["lr"] == t.params["lr"]
    assert set(built) == set(lrs)  # every optimizer at a sampled lr, none at the study's 0.01
    assert lrs[0] != lrs[1]


BAD_RECIPES = {
    "low > high": ({"lr": {"type": "float", "low": 0.1, "high": 1e-4, "log": True}},
                   ["'lr.low'", "0.1", "<= lr.high"]),
    "negative lr": ({"lr": -0.01}, ["'lr'", "-0.01", "a number > 0"]),
    "negative lr bound": ({"lr": {"type": "float", "low": -0.1, "high": 0.1}},
                          ["'lr.low'", "-0.1", "a number > 0"]),
    "optimizer typo": ({"optimizer": {"choices": ["adam_w", "sgd"]}},
                       ["'optimizer'", "adam_w", "adamw, sgd", "Did you mean 'adamw'"]),
    "float epochs": ({"epochs": {"type": "float", "low": 1, "high": 3}},
                     ["'epochs.type'", "int"]),
    "momentum without sgd": ({"optimizer": "adamw", "momentum": 0.9},
                             ["'momentum'", "only sgd has momentum"]),
}


@pytest.mark.parametrize("case", list(BAD_RECIPES))
def test_bad_recipe_distribution_exits_2_naming_file_key_value(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra, expected = BAD_RECIPES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"depth": 2, **extra}))
    assert main(["spaces", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for text in [str(path), *expected]:
        assert text in err, (text, err)


def test_a_key_fixed_under_training_and_searched_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_study(tmp_path, space=LR_SPACE)  # training: {lr: 0.01, ...}
    with pytest.raises(ConfigError, match="'training.lr'.*searches 'lr'"):
        load_study(path)
    assert main(["run", str(path)]) == 2
    assert "'training.lr'" in capsys.readouterr().err
    ok = write_study(tmp_path, space=LR_SPACE, training={"epochs": 1})
    assert load_study(ok).space.searched_recipe().keys() == {"lr"}


def test_spaces_check_prints_recipe_parameters(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"depth": {"type": "int", "low": 1, "high": 3},
                                    "lr": {"choices": [1e-3, 1e-2]},
                                    "batch_size": {"choices": [32, 64]}}))
    assert main(["spaces", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "batch_size" in out and "3 distinct architectures" in out
    line = next(t for t in out.splitlines() if "training recipe searched" in t)
    assert "lr" in line and "batch_size" in line and "recipe): 12" in line


# --- lr: auto ------------------------------------------------------------------------------

def test_sweep_budget_is_a_tenth_of_a_short_cv_and_100_steps_of_a_long_one() -> None:
    quick = TrainConfig(epochs=6, batch_size=64)
    assert sweep_steps(1198, quick, 3) == 25  # the quickstart: 324 training steps
    assert sweep_steps(1437, TrainConfig(epochs=20, batch_size=64), 5) == 100


def test_choice_rules_on_a_known_curve() -> None:
    lrs = [1e-4 * 10 ** (i / 20) for i in range(81)]  # 1e-4 .. 1
    # flat, falls fastest around 1e-2, bottoms out at 1e-1, then diverges
    import math

    losses = [2.0 - 1.5 / (1 + math.exp(-6 * (math.log10(lr) + 2))) for lr in lrs]
    losses = [v + (0 if lr < 0.1 else 20 * (math.log10(lr) + 1)) for v, lr in zip(
        losses, lrs, strict=True)]
    for rule in ("steepest", "min10", "blend"):  # each within 3x of 1e-2
        assert 1e-2 / 3 < choose(lrs, losses, rule) < 3e-2, rule


def test_lr_auto_lands_within_3x_of_the_best_fixed_lr(flat_digits: Dataset) -> None:
    """A small MLP on digits, 3 epochs at a constant rate: the range test against a grid."""
    training = TrainConfig(epochs=3, batch_size=64, schedule="none")
    grid = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
    scores = {lr: cross_validate(MLP, flat_digits, folds=3, seed=0,
                                 training=replace(training, lr=lr)).mean("val_log_loss")
              for lr in grid}
    best = min(scores, key=scores.__getitem__)
    auto = cross_validate(MLP, flat_digits, folds=3, seed=0,
                          training=replace(training, lr_auto=True))
    chosen = auto.settings["lr_find"]["lr"]
    assert auto.settings["training"]["lr"] == chosen  # every fold trained at it
    assert best / 3 <= chosen <= best * 3, (chosen, best, scores)
    # the auto-lr CV scores about as well as the best of the grid
    assert auto.mean("val_log_loss") < 2 * scores[best]


def test_same_seed_same_lr(flat_digits: Dataset) -> None:
    training = TrainConfig(epochs=3, batch_size=64)
    a = find_lr(MLP, flat_digits, training=training, folds=3, seed=1)
    b = find_lr(MLP, flat_digits, training=training, folds=3, seed=1)
    assert a.lr == b.lr and a.losses == b.losses
    assert a.steps_run == len(a.losses) > 10 and a.lrs[0] == pytest.approx(1e-7)


def test_lr_auto_in_a_study_stores_curve_and_choice(tmp_path: Path) -> None:
    path = write_study(tmp_path, training={"epochs": 1, "batch_size": 128, "lr": "auto"})
    st = run_study(path, progress=False, probes=False)
    for t in st.trials:
        rec = read_record(t)
        found = rec.lr_find
        assert found is not None and len(found["lrs"]) == len(found["losses"]) >= 10
        assert rec.training["lr"] == found["lr"]
        assert rec.training["lr_auto"] is True


def test_lr_find_cli_prints_the_choice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lr-find", "--data", "sklearn:digits", "--arch",
                 '{"stages": [{"block": "plain", "depth": 1, "width": 8}]}',
                 "--folds", "2", "--epochs", "2", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "chosen lr" in out and "rule: blend" in out


def test_lr_find_cli_bad_rule_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["lr-find", "--data", "sklearn:digits", "--rule", "steep"])
    with pytest.raises(NasdepthError):
        find_lr(MLP, load_data("sklearn:digits"), rule="steep")



# --- the report ----------------------------------------------------------------------------

def test_report_compares_each_depth_at_its_own_recipe(tmp_path: Path) -> None:
    """lr: auto with a patience-capped budget: the best-per-depth table shows each winner's
    lr (its range test's pick), the trials table the recipe, and the report draws the sweeps
    and says whether the winners were still improving at the cap."""
    from nasdepth.report import collect, write_report
    from nasdepth.report import tables as T

    space = {**TINY_SPACE, "depth": {"choices": [1, 2]}, "block": "plain", "skip": False}
    path = write_study(tmp_path, space=space, sampler="grid",
                       training={"epochs": 2, "patience": 1, "batch_size": 128, "lr": "auto"})
    st = run_study(path, progress=False, probes=False)
    tables = collect(st)
    best = T.best_per_depth(tables)
    assert list(best["depth"]) == [1, 2]
    for _, row in best.iterrows():
        found = tables.lr_finds[int(row["trial"])]
        assert row["lr"] == found["lr"]
        assert row["still_improving"] in (True, False)  # known: patience is on
    assert set(T.RECIPE_COLUMNS) <= set(tables.trials.columns)
    assert tables.trials["lr_auto"].all()
    out = tmp_path / "report"
    write_report(st, out, baselines=False)
    assert (out / "lr_find.png").is_file()
    html = (out / "index.html").read_text()
    assert "Each depth is compared at its own recipe" in html or "trained at learning rate" \
        in html
    csv = (out / "trials.csv").read_text().splitlines()[0]
    assert "lr" in csv.split(",") and "still_improving" in csv.split(",")


def test_still_improving_reads_patience_and_the_cap() -> None:
    from nasdepth.report.tables import still_improving

    training = {"epochs": 5, "patience": 2}
    assert still_improving([{"epochs": 5, "stopped_early": False}], training) is True
    assert still_improving([{"epochs": 3, "stopped_early": True}], training) is False
    assert still_improving([{"epochs": 5, "stopped_early": False}],
                           {"epochs": 5, "patience": 0}) is None


def test_sweep_takes_lr_auto() -> None:
    import argparse

    from nasdepth.cli import build_parser
    from nasdepth.cli.sweep import sweep_study

    argv = ["sweep", "--data", "sklearn:digits", "--depth", "2,4", "--lr", "auto"]
    args = build_parser(argv).parse_args(argv)
    assert isinstance(args, argparse.Namespace)
    assert sweep_study(args)["training"]["lr"] == "auto"
