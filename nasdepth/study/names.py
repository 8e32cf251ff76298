"""Study names: checked before anything is written, since a name becomes file names.

A study's name names its journal (``studies/<name>.journal``) and its report folder
(``reports/<name>/``). A name such as ``../x``, ``/abs/x``, ``a/b`` or the empty name would put
them elsewhere, and a very long one fails in the file system (or, with a remote storage, only
after training). So a name is 1 to ``MAX_NAME`` characters of letters, digits, ``.``, ``_`` and
``-``, starting with a letter or a digit.
"""

from __future__ import annotations

import re
from pathlib import Path

from nasdepth.errors import ConfigError, NasdepthError

MAX_NAME = 100
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ALLOWED = (f"1 to {MAX_NAME} ASCII characters: letters, digits, '.', '_' or '-', starting with "
           "a letter or a digit (it names studies/<name>.journal and reports/<name>/)")
REPORTS = Path("reports")


def check_name(name: object, source: str) -> str:
    """``name`` where it is a safe study name; else a :class:`ConfigError` saying what is
    allowed (the default name, the study file's stem, is checked the same way)."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
        shown = name if not isinstance(name, str) or len(name) <= 60 else (
            f"{name[:40]}... ({len(name)} characters)")
        odd = sorted({c for c in name if ord(c) > 127}) if isinstance(name, str) else []
        extra = (f"; {', '.join(map(repr, odd[:5]))} {'is' if len(odd) == 1 else 'are'} not "
                 "ASCII: the name becomes file names and database keys, which must read the "
                 "same everywhere") if odd else ""
        raise ConfigError(source, "name", shown, ALLOWED + extra)
    return name


def safe_name(text: str) -> str:
    """``text`` made into a valid study name (for names nasdepth derives, e.g. a sweep's from
    its data spec): other characters become ``-``, the length is capped."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:MAX_NAME].rstrip("-.")
    return name or "study"


def report_dir(name: str, out: str | Path | None) -> Path:
    """The report folder: ``out`` where the user gave one, else ``reports/<name>`` (a checked
    name never leaves ``reports/``)."""
    if out is not None:
        return Path(out)
    path = REPORTS / check_name(name, "the study")
    if path.resolve().parent != REPORTS.resolve():  # belt and braces: never outside
        raise NasdepthError(f"The report folder for study '{name}' would leave {REPORTS}/.")
    return path
