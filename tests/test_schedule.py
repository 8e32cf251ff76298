"""The learning-rate schedules of ``TrainConfig.schedule`` (the default recipe's among them)."""

from __future__ import annotations

import pytest
import torch

from nasdepth import ArchConfig, TrainConfig, cross_validate, load_data
from nasdepth.train.config import SCHEDULES
from nasdepth.train.step import LR_FLOOR, make_optimizer, warmup_cosine_factor, wsd_factor


def test_warmup_cosine_warms_up_then_decays_to_the_floor() -> None:
    total = 200
    f = [warmup_cosine_factor(t, total) for t in range(total)]
    w = round(0.05 * total)
    assert f[0] == pytest.approx(1 / w)
    assert max(f) == pytest.approx(1.0) and f.index(max(f)) == w - 1
    after = f[w - 1:]
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))
    assert f[-1] == pytest.approx(LR_FLOOR, abs=0.01)
    assert min(f) >= LR_FLOOR - 1e-12


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_steps_and_stays_positive(schedule: str) -> None:
    cfg = TrainConfig(epochs=3, lr=1e-2, schedule=schedule).validate()
    p = torch.nn.Parameter(torch.zeros(2))
    opt, sched = make_optimizer([p], cfg, torch.device("cpu"), steps_per_epoch=5)
    lrs = []
    for _ in range(15):
        opt.step()
        if sched is not None:
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(lr >= 0 for lr in lrs)
    if schedule == "none":
        assert lrs == [1e-2] * 15


def test_warmup_cosine_trains_on_real_data() -> None:
    data = load_data("sklearn:breast_cancer")
    arch = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 2, "width": 32}]})
    training = TrainConfig.from_dict({"epochs": 4, "lr": 3e-3, "schedule": "warmup_cosine"})
    res = cross_validate(arch, data, folds=3, seed=0, training=training)
    last = res.history[res.history["epoch"] == 3]["lr"]
    # the last epoch's rate is near the floor, never zero
    assert (last > 0).all() and (last < 0.5 * 3e-3).all()
    assert res.mean() > 0.85


def test_wsd_holds_the_peak_then_decays_over_the_last_fifth() -> None:
    total = 100
    f = [wsd_factor(t, total) for t in range(total)]
    assert f[0] == pytest.approx(1 / 5)
    assert f[5:80] == [1.0] * 75
    tail = f[80:]
    assert all(a >= b for a, b in zip(tail, tail[1:], strict=False))
    assert f[-1] == pytest.approx(LR_FLOOR, abs=0.01)
    # a one-step budget still takes a positive step
    assert wsd_factor(0, 1) > 0 and warmup_cosine_factor(0, 1) > 0
