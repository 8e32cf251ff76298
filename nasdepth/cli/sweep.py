"""``nasdepth sweep --data sklearn:digits --depth 2,4,8 --block plain,residual --skip on,off``.

Builds a grid study from flags (every combination runs once, ``grid`` sampler) and runs it like
``nasdepth run``; the study lands in ``studies/<name>.journal`` unless ``--storage`` says else.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from nasdepth.cli.run import add_study_flags, check_workers, overrides_from, run_and_report
from nasdepth.errors import ConfigError

#: the words --skip takes
ON = {"on": True, "true": True, "yes": True, "1": True,
      "off": False, "false": False, "no": False, "0": False}


def _ints(flag: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError("the command line", flag, text, "a comma list of ints") from None
    if not values or min(values) < 1:
        raise ConfigError("the command line", flag, text, "a comma list of ints >= 1")
    return values


def _bools(flag: str, text: str) -> list[bool]:
    words = [v.strip().lower() for v in text.split(",")]
    if any(w not in ON for w in words):
        raise ConfigError("the command line", flag, text, "a comma list of on/off")
    return [ON[w] for w in words]


def _lr(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or auto, not {text!r}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data spec, e.g. sklearn:digits")
    p.add_argument("--depth", default="2,4,8", help="comma list of depths (total blocks)")
    p.add_argument("--width", default="16", help="comma list of first-stage widths")
    p.add_argument("--block", default="plain,residual", help="comma list of block names")
    p.add_argument("--skip", default="on,off", help="skip connections: on, off or on,off")
    p.add_argument("--stages", type=int, default=1, help="stages (resolution halves after 1)")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size")
    p.add_argument("--lr", type=_lr, default=3e-3,
                   help="learning rate, or auto: a range test per candidate")
    add_study_flags(p)
    p.set_defaults(func=main)


def sweep_study(args: argparse.Namespace) -> dict[str, Any]:
    """The study mapping a sweep's flags describe (checked like a study file)."""
    space: dict[str, Any] = {
        "name": "sweep", "stages": args.stages,
        "depth": {"type": "categorical", "choices": _ints("--depth", args.depth)},
        "width": {"type": "categorical", "choices": _ints("--width", args.width)},
        "block": {"type": "categorical", "choices": _names(args.block)},
        "skip": {"type": "categorical", "choices": _bools("--skip", args.skip)},
    }
    from nasdepth.study.names import safe_name

    name = args.name or safe_name("sweep-" + str(args.data))
    return {
        "name": name, "data": args.data, "space": space, "sampler": "grid",
        "cv": {"folds": 3}, "training": {"epochs": 10, "batch_size": args.batch_size,
                                         "lr": args.lr},
        "budget": {"trials": 1_000_000},  # main: the grid's size unless --trials says
        "seed": 0,
    }


def main(args: argparse.Namespace) -> int:
    check_workers(args)
    from nasdepth.study.study_file import merge, study_from_dict

    raw = sweep_study(args)
    raw = merge(raw, {**overrides_from(args), "name": raw["name"]})
    cfg = study_from_dict(raw, Path("studies") / f"{raw['name']}.yaml", "the sweep flags")
    size = cfg.space.size()
    if args.trials is None and size is not None:  # the grid's points, whatever the sampler
        cfg = replace(cfg, trials=size)
        raw["budget"]["trials"] = size
    written = write_study_file(raw, cfg.path)
    status = run_and_report(cfg, args)
    if written:
        print(f"Study file: {cfg.path} (for nasdepth run, report, export and diagnose --study)")
    return status


#: the first line of a study file a sweep writes (a file without it is the user's: kept)
HEADER = "# written by `nasdepth sweep` from its flags\n"


def write_study_file(raw: dict[str, Any], path: Path) -> bool:
    """Write the sweep as a study file at ``path``, so that the commands that take a study file
    (``report``, ``export``, ``diagnose --study``, ``run`` to resume) take the sweep too. A
    file there that no sweep wrote is kept (False)."""
    import yaml

    from nasdepth.outpath import write_atomically
    from nasdepth.redact import redact

    if path.exists() and not path.read_text(encoding="utf-8").startswith(HEADER):
        print(f"nasdepth: warning: {path} exists and was not written by a sweep: kept as it is",
              file=sys.stderr)
        return False
    storage = raw.get("storage")
    if isinstance(storage, str) and redact(storage) != storage:  # a secret stays off the disk
        raw = {k: v for k, v in raw.items() if k != "storage"}
        print(f"nasdepth: note: {path} leaves out the storage (it holds a password): pass "
              f"--storage {redact(storage)} to the commands that read it", file=sys.stderr)
    text = HEADER + yaml.safe_dump(raw, sort_keys=False)
    write_atomically(path, lambda part: part.write_text(text, encoding="utf-8"))
    return True
