"""``nasdepth lr-find --data sklearn:digits --arch '{...}'``: the learning-rate range test that
``lr: auto`` runs, alone: prints the sweep and the rate it picks (optionally a PNG and JSON).

``--arch`` is a preset name (``resnet18``), a YAML/JSON file of an ``ArchConfig``, or the
mapping inline. The training flags (``--epochs``, ``--folds``, ``--batch-size``,
``--optimizer``, ``--weight-decay``) describe the study the rate is for: they set the recipe
and the sweep's budget (see :mod:`nasdepth.train.lr_find`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasdepth.errors import NasdepthError, check_int
from nasdepth.train.config import LR_RULES


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data spec, e.g. sklearn:digits")
    p.add_argument("--arch", default='{"stages": [{"block": "plain", "depth": 2, "width": 32}]}',
                   help="preset name, ArchConfig YAML/JSON file, or inline JSON/YAML mapping")
    p.add_argument("--folds", type=int, default=3, help="CV folds the rate is for (default 3)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per fold (default 10)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--optimizer", default="adamw", help="adamw or sgd")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay")
    p.add_argument("--seed", type=int, default=0, help="seed of splits, init and batches")
    p.add_argument("--steps", type=int, default=None,
                   help="sweep steps (default: 100, or 8%% of the CV's steps, at least 25)")
    p.add_argument("--rule", choices=LR_RULES, default="blend",
                   help="choice rule (default blend; see docs/search_spaces.md)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--plot", default=None, help="write the loss-against-lr curve to this PNG")
    p.add_argument("--json", default=None, help="write the sweep to this JSON file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from nasdepth.cli.arch import parse_arch
    from nasdepth.data import load_data
    from nasdepth.train import TrainConfig
    from nasdepth.train.lr_find import find_lr

    data = load_data(args.data, source="--data")
    arch = parse_arch(args.arch, data.input_shape, data.num_classes)
    training = TrainConfig.from_dict({
        "epochs": args.epochs, "batch_size": args.batch_size, "optimizer": args.optimizer,
        "weight_decay": args.weight_decay, "device": args.device}, "the command line")
    check_int(args.folds, "the command line", "--folds", 2)
    found = find_lr(arch, data, training=training, folds=args.folds, seed=args.seed,
                    steps=args.steps, rule=args.rule)
    print(f"{data.name}: range test on fold 0's training part ({found.n_train} rows, batch "
          f"{found.batch_size}, {found.optimizer}), {found.steps_run} of {found.steps} steps "
          f"from {found.start_lr:g} to {found.end_lr:g}"
          + (", stopped: the loss ran away" if found.diverged else "")
          + f", {found.seconds:.2f} s")
    marks = sorted({round(i * (found.steps_run - 1) / 9) for i in range(10)})
    print("  lr          loss (averaged over 0.75 decade)")
    for i in marks:
        print(f"  {found.lrs[i]:<10.3g}  {found.curve[i]:.4f}")
    print(f"chosen lr: {found.lr:.3g} (rule: {found.rule})")
    if args.json:
        Path(args.json).write_text(json.dumps(found.to_dict(), indent=1))
    if args.plot:
        from nasdepth.report.figures import lr_find_figure

        fig = lr_find_figure({"lr-find": found.to_dict()})
        if fig is None:
            raise NasdepthError("the sweep has too few points to draw")
        fig.savefig(args.plot, dpi=110, bbox_inches="tight")
        print(f"curve: {args.plot}")
    return 0
