"""``nasdepth`` command line: thin commands over the library functions.

Each command is a module with ``register(subparsers)`` that sets ``func`` on its parser.
A :class:`NasdepthError` (bad user input) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nasdepth.cli import arch, diagnose, lr_find, report, run, spaces, sweep
from nasdepth.errors import NasdepthError

# one line per command module (each has register(subparsers))
COMMANDS = [
    arch,
    diagnose,
    lr_find,
    report,
    run,
    spaces,
    sweep,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasdepth",
        description="Search network depth and width with cross-validation; diagnose stalls.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
