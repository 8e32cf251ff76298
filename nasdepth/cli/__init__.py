"""``nasdepth`` command line: thin commands over the library functions.

:data:`COMMANDS` lists each command with its module and one-line help. A command module has
``register(parser)``, which adds the command's arguments and sets ``func`` on the parser, and
the functions that run it. Only the chosen command's module is imported, and command modules
import torch, optuna, pandas and the like inside the functions that need them: ``nasdepth
--help`` and a bad-input error answer at once. A :class:`NasdepthError` (bad user input) prints
one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nasdepth.errors import NasdepthError

#: command -> (module with ``register(parser)``, one-line help); one line per command
COMMANDS = {
    "arch": ("nasdepth.cli.arch", "print a preset architecture, its parameters and FLOPs"),
    "diagnose": ("nasdepth.cli.diagnose", "diagnose a stalled (or healthy) training run: "
                 "vanishing/exploding gradients, data-limited plateau, overfitting, ..."),
    "lr-find": ("nasdepth.cli.lr_find", "learning-rate range test for one architecture "
                "(what lr: auto runs per candidate)"),
    "export": ("nasdepth.cli.export", "refit a study's trial on all non-test data and save it "
               "as one model file"),
    "predict": ("nasdepth.cli.predict", "predict with an exported model; scores the data's "
                "labels where it has them"),
    "report": ("nasdepth.cli.report", "(re)build a study's report from its storage"),
    "run": ("nasdepth.cli.run", "run (or resume) a study, then write its report"),
    "spaces": ("nasdepth.cli.spaces", "search-space files: check them"),
    "sweep": ("nasdepth.cli.sweep", "run a grid over depth/width/block/skip given as flags"),
}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Every command listed, with the arguments of the one ``argv`` names (its first word)."""
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(
        prog="nasdepth",
        description="Search network depth and width with cross-validation; diagnose stalls.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).register(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NasdepthError as exc:
        print(f"nasdepth: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasdepth: interrupted; finished trials are stored, run again to resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
